"""Parameter counts per component of the Transformer LM, as sympy formulas.

Structure (model/transformer.py), every variant of accounting.config.ModelConfig:
  token_embeddings          V x d
  position_embeddings       n_ctx x d                          (positions="learned" only)
  per block (x L):
    ln1, ln2                RMSNorm gain d, or LayerNorm gain + bias 2d (none when norm="none")
    attn.q_proj             d x d        (+ d bias when bias != "none")
    attn.k_proj, v_proj     h_kv*d_k x d = d*d*h_kv/h  (+ d*h_kv/h bias when bias != "none");
                            grouped-query attention shares each key/value head among h/h_kv
                            query heads
    attn.output_proj        d x d        (+ d bias when bias is "attention" or "all")
    ffn.w1 (, w3)           d_ff x d     (+ d_ff bias when bias="all"); w3 for SwiGLU only
    ffn.w2                  d x d_ff     (+ d bias when bias="all")
  ln_final                  as ln1, pre-norm models only (post-norm blocks end normalized)
  lm_head                   V x d, no bias, unless tied to token_embeddings (then counted once,
                            under token_embeddings)
RoPE's sin/cos are buffers, not parameters. A component's row holds its weight and its bias.

Non-embedding convention (Kaplan et al. 2020): all parameters except the token and position
embeddings; the LM head is kept (when tied it is the embedding, so it drops out too).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.rows import Row, make_rows
from accounting.symbols import L, V, d, d_ff, h, h_kv, n_ctx, values

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "output_proj")
_KV = ("k_proj", "v_proj")


def projection_width(name: str) -> sp.Expr:
    """Output features of an attention projection: d, or h_kv*d_k = d*h_kv/h for k_proj, v_proj."""
    return d * h_kv / h if name in _KV else d


def ffn_matrices(ffn: str) -> tuple[str, ...]:
    """FFN weight names: SwiGLU has w1, w2, w3; the two-matrix FFNs (SiLU, GELU) w1, w2."""
    return ("w1", "w2", "w3") if ffn == "swiglu" else ("w1", "w2")


def ffn_shape(name: str) -> tuple[sp.Expr, sp.Expr]:
    """(in, out) features of FFN matrix `name`."""
    return (d_ff, d) if name == "w2" else (d, d_ff)


def has_bias(bias: str, name: str) -> bool:
    """Whether projection / FFN matrix `name` adds a bias under the `bias` switch."""
    if name in ("q_proj", "k_proj", "v_proj"):
        return bias != "none"
    if name == "output_proj":
        return bias in ("attention", "all")
    return bias == "all"  # w1, w2, w3


def has_final_norm(cfg: ModelConfig) -> bool:
    """ln_final exists only for pre-norm models with a norm (post-norm blocks end normalized)."""
    return cfg.norm != "none" and cfg.norm_position == "pre"


def norm_parameters(norm: str) -> sp.Expr:
    """Parameters of one norm of width d: RMSNorm's gain, LayerNorm's gain and bias."""
    return {"rmsnorm": d, "layernorm": 2 * d}.get(norm, sp.Integer(0))


def _switches(cfg: ModelConfig) -> tuple[str, str, str, str, str, bool]:
    return cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.bias, cfg.tie_embeddings


@lru_cache(maxsize=256)
def parameter_terms(norm: str, norm_position: str, positions: str, ffn: str, bias: str,
                    tie_embeddings: bool) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, formula, note) per component, aggregated over the L blocks."""
    terms: list[tuple[str, sp.Expr, str]] = [("token_embeddings", V * d, "")]
    if positions == "learned":
        terms.append(("position_embeddings", n_ctx * d, "learned absolute positions"))
    norm_note = {"rmsnorm": "RMSNorm gain", "layernorm": "LayerNorm gain and bias"}.get(norm, "")
    if norm != "none":
        terms.append(("layers.ln1", L * norm_parameters(norm), norm_note))
    for p in ATTENTION_PROJECTIONS:
        width = projection_width(p)
        b = has_bias(bias, p)
        terms.append((f"layers.attn.{p}", L * (d * width + (width if b else 0)), "+ bias" if b else ""))
    if norm != "none":
        terms.append(("layers.ln2", L * norm_parameters(norm), norm_note))
    for w in ffn_matrices(ffn):
        n_in, n_out = ffn_shape(w)
        b = has_bias(bias, w)
        terms.append((f"layers.ffn.{w}", L * (n_in * n_out + (n_out if b else 0)), "+ bias" if b else ""))
    if norm != "none" and norm_position == "pre":
        terms.append(("ln_final", norm_parameters(norm), norm_note))
    if not tie_embeddings:
        terms.append(("lm_head", V * d, ""))
    return tuple(terms)


def parameter_rows(cfg: ModelConfig) -> list[Row]:
    """Parameters per component (unit "params"); tied LM head not listed (it is token_embeddings)."""
    return make_rows(parameter_terms(*_switches(cfg)), values(cfg), "params")


@lru_cache(maxsize=256)
def _formulas(norm: str, norm_position: str, positions: str, ffn: str, bias: str, tie: bool
              ) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    terms = parameter_terms(norm, norm_position, positions, ffn, bias, tie)
    total = sp.Add(*(f for _, f, _ in terms))
    non_embedding = total - V * d - (n_ctx * d if positions == "learned" else 0)
    weights = [d * projection_width(p) for p in ATTENTION_PROJECTIONS]
    weights += [sp.Mul(*ffn_shape(w)) for w in ffn_matrices(ffn)]
    matmul = L * sp.Add(*weights) + V * d
    return total, non_embedding, matmul


def total_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    return _formulas(*_switches(cfg))[0]


def non_embedding_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    """Total minus token_embeddings and position_embeddings (lm_head kept unless tied)."""
    return _formulas(*_switches(cfg))[1]


def matmul_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    """Weights that multiply activations: every projection/FFN matrix and the LM head (counted
    even when tied); no embedding lookups, no norm gains, no biases. The N of PaLM's 6N + 12LdT."""
    return _formulas(*_switches(cfg))[2]


def total_parameters(cfg: ModelConfig) -> int:
    """All trainable parameters (tied matrix once)."""
    return sum(r.value for r in parameter_rows(cfg))


def non_embedding_parameters(cfg: ModelConfig) -> int:
    """All parameters except the token and position embeddings (Kaplan's N)."""
    learned = cfg.context_length * cfg.d_model if cfg.positions == "learned" else 0
    return total_parameters(cfg) - cfg.vocab_size * cfg.d_model - learned
