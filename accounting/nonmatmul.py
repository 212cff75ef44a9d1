"""Non-matmul forward FLOPs (norms, RoPE, softmax, SiLU/gating, residual adds, cross-entropy): an
optional term, costed per element by accounting.conventions (op_flops / ELEMENTWISE_FLOPS) over
the aten ops the real model's forward and loss dispatch. Casts, copies, views, index/gather,
where, tril/ones cost 0. A fused kernel's internal work is not visible at dispatch and not counted
(sdpa: its scaling and softmax are inside the kernel).

Per call, with n = B*T:
  RMSNorm (d):   pow n*d, mean n*d (per input), +eps n, rsqrt n, *rms n*d, *weight n*d: 4nd + 2n
  LayerNorm (d): mean, -mean, square, mean, *rstd, *weight, +bias on n*d, +eps, rsqrt on n: 7nd + 2n
  bias add:      n * (the projection's output width), one per Linear with a bias
  learned positions: the add to the token embeddings, n*d
  dropout (p > 0): mask multiply and rescale, 2 per element (the draw and comparison cost 0)
  RoPE (q or k): 4 products + 1 sub + 1 add on half-width pairs: 3*n*d for q, 3*n*d*h_kv/h for k
  naive core:    *scale, amax (per input), -max, exp, sum (per input), /sum on (B,h,T,T): 6*B*h*T^2
  SwiGLU:        sigmoid, x*sigmoid, gate*W3x on (n, d_ff): 3*n*d_ff;  SiLU FFN: 2*n*d_ff;
                 GELU (tanh form): x^3, 0.044715*, +x, sqrt(2/pi)*, tanh, 1+, 0.5*x, product: 8*n*d_ff
  residual adds: 2 per block, n*d each (row "layers": the block's own forward)
Row names are the module paths the ops run in, aggregated over blocks (the shared RoPE module is
registered once, as layers.0.attn.rope).
  cross_entropy: amax, -max, exp, sum on (n, V): 4*n*V; log, -target, mean over n: 3n
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.parameters import (
    ATTENTION_PROJECTIONS, ffn_matrices, ffn_shape, has_bias, projection_width,
)
from accounting.rows import Row, make_rows
from accounting.symbols import B, L, T, V, d, d_ff, h, h_kv, values


_NORM = {"rmsnorm": 4 * B * T * d + 2 * B * T, "layernorm": 7 * B * T * d + 2 * B * T}
"""Per norm call: RMSNorm pow, mean, *rms, *weight (4nd), +eps, rsqrt (2n); LayerNorm mean, -mean,
square, mean, *rstd, *weight, +bias (7nd), +eps, rsqrt (2n)."""

_FFN = {"swiglu": (3, "SiLU, gating"), "silu": (2, "SiLU"),
        "gelu": (8, "GELU tanh form: pow, 3 muls, 2 adds, tanh, product")}
"""FLOPs per d_ff-wide element of the FFN's activation."""


@lru_cache(maxsize=256)
def nonmatmul_terms(norm: str, norm_position: str, positions: str, ffn: str, attention: str,
                    bias: str = "none", dropout: bool = False) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, forward non-matmul FLOPs formula, note), aggregated over the L blocks."""
    block: list[tuple[str, sp.Expr, str]] = []
    if norm != "none":
        block.append(("layers.ln1", _NORM[norm], ""))
    for p in ATTENTION_PROJECTIONS:
        if has_bias(bias, p):
            block.append((f"layers.attn.{p}", B * T * projection_width(p), "bias add"))
    if positions == "rope":
        block.append(("layers.attn.rope", 3 * B * T * d * (1 + h_kv / h), "q and k (k at h_kv heads)"))
    if attention == "naive":
        block.append(("layers.attn", 6 * B * h * T**2, "scale, softmax"))
        if dropout:
            block.append(("layers.attn.attn_dropout", 2 * B * h * T**2, "mask multiply, rescale"))
    else:
        block.append(("layers.attn", sp.Integer(0), "inside the fused sdpa kernel (not counted)"))
    if dropout:
        block.append(("layers.drop1", 2 * B * T * d, "mask multiply, rescale"))
    if norm != "none":
        block.append(("layers.ln2", _NORM[norm], ""))
    per_element, note = _FFN[ffn]
    block.append(("layers.ffn", per_element * B * T * d_ff, note))
    for w in ffn_matrices(ffn):
        if has_bias(bias, w):
            block.append((f"layers.ffn.{w}", B * T * ffn_shape(w)[1], "bias add"))
    if dropout:
        block.append(("layers.drop2", 2 * B * T * d, "mask multiply, rescale"))
    block.append(("layers", 2 * B * T * d, "two residual adds (in the block's own forward)"))
    terms: list[tuple[str, sp.Expr, str]] = []
    if positions == "learned":
        terms.append(("position_embeddings", B * T * d, "add to the token embeddings"))
    if dropout:
        terms.append(("embedding_dropout", 2 * B * T * d, "mask multiply, rescale"))
    terms += [(n, L * f, note) for n, f, note in block]
    if norm != "none" and norm_position == "pre":
        terms.append(("ln_final", _NORM[norm], ""))
    terms.append(("cross_entropy", 4 * B * T * V + 3 * B * T, "log-softmax, NLL mean"))
    return tuple(terms)


def nonmatmul_forward_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> list[Row]:
    """Non-matmul forward FLOPs per component (unit "flops")."""
    terms = nonmatmul_terms(cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.attention,
                            cfg.bias, cfg.dropout > 0)
    return make_rows(terms, values(cfg, batch_size, context_length), "flops")


def nonmatmul_forward_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Total non-matmul forward FLOPs (the optional term)."""
    return sum(r.value for r in nonmatmul_forward_rows(cfg, batch_size, context_length))
