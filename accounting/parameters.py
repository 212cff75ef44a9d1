"""Parameter counts per component of the CS336 Transformer LM, as sympy formulas.

Structure (model/transformer.py): token_embeddings (V x d); per block: ln1, ln2 (RMSNorm gain, d
each, only when norm="rmsnorm"), attn.q_proj / output_proj (d x d, no bias), attn.k_proj / v_proj
(h_kv*d_k x d = d * d*h_kv/h: grouped-query attention shares each key/value head among h/h_kv
query heads),
ffn.w1 (d_ff x d), ffn.w2 (d x d_ff), ffn.w3 (d_ff x d, SwiGLU only); ln_final (d, only when
norm="rmsnorm" and norm_position="pre"); lm_head (V x d) unless tied to token_embeddings (then the
one matrix is counted once, under token_embeddings). RoPE sin/cos are buffers, not parameters.

Non-embedding convention (Kaplan et al. 2020): all parameters except token_embeddings; the LM head
is kept (when tied it is the embedding, so it drops out too).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.rows import Row, make_rows
from accounting.symbols import L, V, d, d_ff, h, h_kv, values

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "output_proj")
_KV = ("k_proj", "v_proj")


def projection_width(name: str) -> sp.Expr:
    """Output features of an attention projection: d, or h_kv*d_k = d*h_kv/h for k_proj, v_proj."""
    return d * h_kv / h if name in _KV else d


def ffn_matrices(ffn: str) -> tuple[str, ...]:
    """FFN weight names: SwiGLU has w1, w2, w3; SiLU has w1, w2."""
    return ("w1", "w2", "w3") if ffn == "swiglu" else ("w1", "w2")


def has_final_norm(cfg: ModelConfig) -> bool:
    """ln_final exists only for pre-norm RMSNorm models (post-norm blocks end normalized)."""
    return cfg.norm == "rmsnorm" and cfg.norm_position == "pre"


@lru_cache(maxsize=256)
def parameter_terms(norm: str, norm_position: str, ffn: str, tie_embeddings: bool
                    ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, formula, note) per component, aggregated over the L blocks."""
    terms: list[tuple[str, sp.Expr, str]] = [("token_embeddings", V * d, "")]
    if norm == "rmsnorm":
        terms.append(("layers.ln1", L * d, "RMSNorm gain"))
    terms += [(f"layers.attn.{p}", L * d * projection_width(p), "") for p in ATTENTION_PROJECTIONS]
    if norm == "rmsnorm":
        terms.append(("layers.ln2", L * d, "RMSNorm gain"))
    terms += [(f"layers.ffn.{w}", L * d * d_ff, "") for w in ffn_matrices(ffn)]
    if norm == "rmsnorm" and norm_position == "pre":
        terms.append(("ln_final", d, "RMSNorm gain"))
    if not tie_embeddings:
        terms.append(("lm_head", V * d, ""))
    return tuple(terms)


def parameter_rows(cfg: ModelConfig) -> list[Row]:
    """Parameters per component (unit "params"); tied LM head not listed (it is token_embeddings)."""
    terms = parameter_terms(cfg.norm, cfg.norm_position, cfg.ffn, cfg.tie_embeddings)
    return make_rows(terms, values(cfg), "params")


@lru_cache(maxsize=256)
def _formulas(norm: str, norm_position: str, ffn: str, tie: bool) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    terms = parameter_terms(norm, norm_position, ffn, tie)
    total = sp.Add(*(f for _, f, _ in terms))
    non_embedding = total - V * d
    matmul = sp.Add(*(f for n, f, _ in terms if n.startswith("layers.") and "ln" not in n)) + V * d
    return total, non_embedding, matmul


def total_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    return _formulas(cfg.norm, cfg.norm_position, cfg.ffn, cfg.tie_embeddings)[0]


def non_embedding_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    """Total minus token_embeddings (lm_head kept unless tied)."""
    return _formulas(cfg.norm, cfg.norm_position, cfg.ffn, cfg.tie_embeddings)[1]


def matmul_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    """Weights that multiply activations: every projection/FFN matrix and the LM head (counted
    even when tied); no embeddings lookup, no norm gains. The N of PaLM's 6N + 12LdT."""
    return _formulas(cfg.norm, cfg.norm_position, cfg.ffn, cfg.tie_embeddings)[2]


def total_parameters(cfg: ModelConfig) -> int:
    """All trainable parameters (tied matrix once)."""
    return sum(r.value for r in parameter_rows(cfg))


def non_embedding_parameters(cfg: ModelConfig) -> int:
    """All parameters except token_embeddings (Kaplan's N)."""
    return total_parameters(cfg) - cfg.vocab_size * cfg.d_model
