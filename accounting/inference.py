"""Inference, counted: the KV cache, prefill and decode FLOPs, bytes moved per step, as sympy
formulas per component in the request's sizes P (prompt tokens), G (new tokens) and t (the position
a decode step feeds). Imports no torch. The roofline and serving capacity built on these are in
accounting.inference_report; the conventions below are data (INFERENCE_CONVENTIONS), carried by
every report.

A request is B sequences, each a prompt of P tokens followed by G new tokens, run as this project's
model.sampling runs it:
  - the prefill: one forward over the P prompt tokens, which writes their K and V into the cache and
    computes the LM head on the last position only (the first new token's logits);
  - G - 1 decode steps: each feeds one token per sequence, at position t = P .. P + G - 2, writes
    its K and V, attends to t + 1 keys (the t cached and its own) and yields the next token.
The model sees S = P + G - 1 tokens (the last new token is sampled, never fed): S <= context_length,
where the RoPE tables (and the model's declared maximum) end.

Counting (one forward of q new tokens per sequence attending to k keys):
  - FLOPs: 2*m*n*p per matmul, dense (the prefill's causal P x P block counted in full, as in
    training): projections 2*B*q*d*(width) each, scores and weighted values 2*B*q*k*d each per
    block, FFN matrices 2*B*q*d*d_ff each, LM head 2*B*d*V (one position). Decode at position t:
    2*B*N_mm + 4*B*L*d*(t + 1), N_mm the matmul weights (the head counted even when tied).
  - bytes moved, for the whole batch: every matmul weight (the LM head too, even when tied) and every
    norm gain read in full, once per step; the token embedding is a gather: the B*q rows looked up;
    the KV cache read at every key attended (k per sequence and block, K and V, h_kv heads of d_k,
    including the K/V the step has just written: this model appends, then attends); the new K/V
    written (q per sequence). Activations, logits, RoPE tables and token ids are excluded
    (validation measures them as the residual).
  - KV cache: K and V of every token fed, every block: 2*L*B*S*d*h_kv/h elements in the KV dtype.
  - dtypes (SERVING_DTYPES): weights in the serving dtype; matmuls, activations and the KV cache
    in its compute dtype. int8 / int4 are weight-only what-ifs (this project's model does not run
    them): every parameter at 1 / 0.5 byte, no quantization scales or zero points counted (fp16
    scales per group of 128 weights would add 1/64 byte per weight), totals rounded up to whole
    bytes; compute and KV cache in bfloat16.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import sympy as sp

from accounting.config import ModelConfig
from accounting.conventions import DTYPE_BYTES
from accounting.errors import UserError
from accounting.parameters import (
    ATTENTION_PROJECTIONS, ffn_matrices, parameter_terms, projection_width,
    total_parameters_formula,
)
from accounting.rows import Row
from accounting.symbols import B, G, L, P, V, d, d_ff, h, h_kv, t, values


@dataclass(frozen=True)
class ServingDtype:
    """How a served model stores and computes: `weight_bits` per parameter element; `compute`, the
    dtype of the matmuls (whose peak FLOP/s applies), the activations and the KV cache; `what_if`:
    weight-only quantization this project's model does not run."""

    name: str
    weight_bits: int
    compute: str
    what_if: bool = False

    @property
    def kv_bytes(self) -> int:
        """Bytes per KV-cache element (the compute dtype's)."""
        return DTYPE_BYTES[self.compute]

    @property
    def weight_bytes_per_parameter(self) -> sp.Rational:
        return sp.Rational(self.weight_bits, 8)


SERVING_DTYPES: Mapping[str, ServingDtype] = MappingProxyType({s.name: s for s in (
    ServingDtype("float32", 32, "float32"),
    ServingDtype("bfloat16", 16, "bfloat16"),
    ServingDtype("float16", 16, "float16"),
    ServingDtype("int8", 8, "bfloat16", what_if=True),
    ServingDtype("int4", 4, "bfloat16", what_if=True),
)})
"""Serving dtypes by name: float32, bfloat16, float16, and the weight-only int8 / int4 what-ifs."""


def serving_dtype(name: str) -> ServingDtype:
    try:
        return SERVING_DTYPES[name]
    except KeyError:
        raise UserError(f"unknown dtype {name!r}; choose one of: {', '.join(SERVING_DTYPES)}") from None


@dataclass(frozen=True)
class InferenceConventions:
    """The counting rules of an inference result (printed by every report; JSON `conventions`)."""

    request: str = ("B sequences, each a prompt of P tokens then G new tokens; prefill = one forward "
                    "over the P prompt tokens (yields new token 1); G - 1 decode steps feed one token "
                    "each at positions t = P .. P+G-2; the model sees S = P + G - 1 tokens (the last "
                    "new token is never fed); S <= context_length")
    flops: str = ("2*m*n*p per matmul, dense (the prefill's causal P x P block in full); prefill: the "
                  "forward over P tokens, LM head on the last position only; decode step at position "
                  "t: one token per sequence attending to t + 1 keys (the t cached and its own): "
                  "2*B*N_matmul + 4*B*L*d*(t + 1)")
    kv_cache: str = ("K and V of every token fed, every block, h_kv heads of d_k = d/h: "
                     "2*L*B*S*d*h_kv/h elements in the compute dtype")
    weights: str = ("every parameter (a tied matrix once) at the weight dtype's width; int8 / int4: "
                    "weight-only what-ifs at 1 / 0.5 byte per parameter, no scales or zero points "
                    "counted, totals rounded up to whole bytes; their compute and KV cache bfloat16")
    bytes_moved: str = ("per step, whole batch: every matmul weight (the LM head even when tied) and "
                        "norm gain read once in full; the token embedding: the B*q rows gathered; the "
                        "KV cache read at every key attended (incl. the K/V just written); the new K/V "
                        "written. Excluded: activations, logits, RoPE tables, token ids")
    roofline: str = ("time >= max(FLOPs / dense peak FLOP/s of the compute dtype, bytes / HBM "
                     "bandwidth): a lower bound, not a prediction; time to first token = the "
                     "prefill's bound; time per output token = the mean bound of the G - 1 decode "
                     "steps; tokens/s = B / time per output token")
    serving_memory: str = ("weights + KV cache at S; activations, workspace, CUDA context and "
                           "fragmentation excluded; largest batch = floor((budget - weights) / KV "
                           "cache bytes per sequence)")
    memory_units: str = "bytes; GB = 10^9, GiB = 2^30; bandwidth in bytes/s (TB/s = 10^12 bytes/s)"

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


INFERENCE_CONVENTIONS = InferenceConventions()

SEQUENCE = P + G - 1
"""S, the tokens per sequence the model sees (and the cache holds)."""
LAST_DECODE_POSITION = P + G - 2
"""t of the last decode step (the one attending to all S keys)."""
_GATHERED = ("token_embeddings", "position_embeddings")
"""Tables a step gathers rows of instead of reading whole."""


# ---- formulas ---------------------------------------------------------------------------------
def _kv_width() -> sp.Expr:
    """K (or V) features per token per block: h_kv * d_k = d * h_kv / h."""
    return d * h_kv / h


@lru_cache(maxsize=64)
def step_flop_terms(ffn: str, queries: sp.Expr, keys: sp.Expr) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, matmul FLOPs, note) of one forward of `queries` new tokens per sequence attending to
    `keys` keys, the LM head on one position; aggregated over the L blocks."""
    terms = [(f"layers.attn.{p}", L * 2 * B * queries * d * projection_width(p), "")
             for p in ATTENTION_PROJECTIONS]
    terms.append(("layers.attn.scores", L * 2 * B * queries * keys * d, "QK^T over the keys, dense"))
    terms.append(("layers.attn.weighted_values", L * 2 * B * queries * keys * d, "softmax(.) V, dense"))
    terms += [(f"layers.ffn.{w}", L * 2 * B * queries * d * d_ff, "") for w in ffn_matrices(ffn)]
    terms.append(("lm_head", 2 * B * d * V, "the last position only"))
    return tuple(terms)


def prefill_flop_terms(cfg: ModelConfig) -> tuple[tuple[str, sp.Expr, str], ...]:
    """The prefill: P queries per sequence over P keys (dense)."""
    return step_flop_terms(cfg.ffn, P, P)


def decode_flop_terms(cfg: ModelConfig) -> tuple[tuple[str, sp.Expr, str], ...]:
    """One decode step at position t: 1 query per sequence over t + 1 keys."""
    return step_flop_terms(cfg.ffn, sp.Integer(1), t + 1)


def read_parameters_formula(cfg: ModelConfig) -> sp.Expr:
    """Parameters a step reads in full: every matmul weight and bias (the LM head even when tied)
    and every norm parameter; not the token and position tables, whose rows are gathered."""
    terms = parameter_terms(cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.bias,
                            cfg.tie_embeddings)
    read = sum((f for n, f, _ in terms if n not in _GATHERED), sp.Integer(0))
    return read + (V * d if cfg.tie_embeddings else 0)


def step_byte_terms(cfg: ModelConfig, dtype: ServingDtype, queries: sp.Expr, keys: sp.Expr
                    ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes, note) a forward of `queries` tokens per sequence over `keys` keys moves."""
    w, kv = dtype.weight_bytes_per_parameter, dtype.kv_bytes
    return (
        ("weights read", read_parameters_formula(cfg) * w,
         "matmul weights (LM head even when tied) and norm gains, once per step"),
        ("embedding rows read", (B * queries * d + (queries * d if cfg.positions == "learned" else 0)) * w,
         "the token embedding rows gathered (and the learned position rows, shared by the batch)"),
        ("KV cache read", 2 * L * B * keys * _kv_width() * kv, "K and V at every key attended"),
        ("KV cache written", 2 * L * B * queries * _kv_width() * kv, "the new tokens' K and V"),
    )


def prefill_byte_terms(cfg: ModelConfig, dtype: ServingDtype) -> tuple[tuple[str, sp.Expr, str], ...]:
    return step_byte_terms(cfg, dtype, P, P)


def decode_byte_terms(cfg: ModelConfig, dtype: ServingDtype) -> tuple[tuple[str, sp.Expr, str], ...]:
    return step_byte_terms(cfg, dtype, sp.Integer(1), t + 1)


def kv_cache_formula(cfg: ModelConfig, dtype: ServingDtype) -> sp.Expr:
    """KV-cache bytes for B sequences of S = P + G - 1 tokens."""
    return 2 * L * B * SEQUENCE * _kv_width() * dtype.kv_bytes


def kv_bytes_per_token_formula(cfg: ModelConfig, dtype: ServingDtype) -> sp.Expr:
    """KV-cache bytes per token of one sequence: 2*L*d*h_kv/h elements."""
    return 2 * L * _kv_width() * dtype.kv_bytes


def weight_bytes_formula(cfg: ModelConfig, dtype: ServingDtype) -> sp.Expr:
    """Bytes of every parameter (tied once) in the serving dtype."""
    return total_parameters_formula(cfg) * dtype.weight_bytes_per_parameter


# ---- evaluation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """B sequences of P prompt tokens and G new tokens (validated against the config)."""

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    subs: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def sequence_tokens(self) -> int:
        """S = P + G - 1, the tokens each sequence feeds through the model."""
        return self.prompt_tokens + self.new_tokens - 1

    @property
    def last_decode_position(self) -> int:
        return self.sequence_tokens - 1


def request(cfg: ModelConfig, batch_size: int, prompt_tokens: int, new_tokens: int) -> Request:
    """A checked request: positive integers, and S = P + G - 1 within the model's context_length."""
    for name, value in (("batch size", batch_size), ("prompt tokens", prompt_tokens),
                        ("new tokens", new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    seen = prompt_tokens + new_tokens - 1
    if seen > cfg.context_length:
        scheme = {"rope": "the RoPE tables"}.get(cfg.positions, "the model's positions")
        raise UserError(f"prompt tokens + new tokens - 1 = {seen:,} exceeds context_length "
                        f"{cfg.context_length:,} ({scheme} end there); raise --context-length")
    subs = values(cfg, batch_size)
    subs.update({P: prompt_tokens, G: new_tokens})
    return Request(batch_size, prompt_tokens, new_tokens, subs)


def exact(expr: sp.Expr, subs: Mapping[sp.Symbol, int]) -> int:
    """An integer formula's value; a fractional byte count (int4) rounded up to whole bytes."""
    value = sp.sympify(expr).xreplace({k: sp.Integer(v) for k, v in subs.items()})
    if not value.is_Rational:
        raise ValueError(f"formula {expr} has no exact value at these sizes: {value}")
    return int(value) if value.is_Integer else math.ceil(sp.Rational(value))


def rows_at(terms, subs: Mapping[sp.Symbol, int], unit: str) -> list[Row]:
    return [Row(name, sp.sympify(f), exact(f, subs), unit, note) for name, f, note in terms]


def _at_position(cfg: ModelConfig, req: Request, position: int) -> dict:
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise UserError(f"position must be a non-negative integer, got {position!r}")
    if position >= cfg.context_length:
        raise UserError(f"position {position:,} is past context_length {cfg.context_length:,}")
    return {**req.subs, t: position}


def prefill_flops_rows(cfg: ModelConfig, batch_size: int, prompt_tokens: int) -> list[Row]:
    """Prefill matmul FLOPs per component."""
    return rows_at(prefill_flop_terms(cfg), request(cfg, batch_size, prompt_tokens, 1).subs, "flops")


def decode_flops_rows(cfg: ModelConfig, batch_size: int, position: int) -> list[Row]:
    """Matmul FLOPs per component of the decode step feeding position `position` (t)."""
    req = request(cfg, batch_size, 1, 1)
    return rows_at(decode_flop_terms(cfg), _at_position(cfg, req, position), "flops")


def prefill_byte_rows(cfg: ModelConfig, batch_size: int, prompt_tokens: int,
                      dtype: str = "float32") -> list[Row]:
    """Bytes the prefill moves, by part (weights, embedding rows, KV read, KV written)."""
    req = request(cfg, batch_size, prompt_tokens, 1)
    return rows_at(prefill_byte_terms(cfg, serving_dtype(dtype)), req.subs, "bytes")


def decode_byte_rows(cfg: ModelConfig, batch_size: int, position: int, dtype: str = "float32") -> list[Row]:
    """Bytes the decode step at position t moves, by part."""
    req = request(cfg, batch_size, 1, 1)
    return rows_at(decode_byte_terms(cfg, serving_dtype(dtype)), _at_position(cfg, req, position), "bytes")


def kv_cache_bytes(cfg: ModelConfig, batch_size: int, sequence_tokens: int, dtype: str = "float32") -> int:
    """KV-cache bytes of `batch_size` sequences of `sequence_tokens` fed tokens (S)."""
    req = request(cfg, batch_size, sequence_tokens, 1)  # P = S, G = 1: S = P + G - 1
    return exact(kv_cache_formula(cfg, serving_dtype(dtype)), req.subs)


def weight_bytes(cfg: ModelConfig, dtype: str = "float32") -> int:
    """Bytes of the parameters in the serving dtype (int4 rounded up)."""
    return exact(weight_bytes_formula(cfg, serving_dtype(dtype)), values(cfg))
