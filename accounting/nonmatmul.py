"""Non-matmul forward FLOPs (norms, RoPE, softmax, SiLU/gating, residual adds, cross-entropy): an
optional term, costed per element by accounting.conventions (op_flops / ELEMENTWISE_FLOPS) over
the aten ops the real model's forward and loss dispatch. Casts, copies, views, index/gather,
where, tril/ones cost 0. A fused kernel's internal work is not visible at dispatch and not counted
(sdpa: its scaling and softmax are inside the kernel).

Per call, with n = B*T:
  RMSNorm (d):   pow n*d, mean n*d (per input), +eps n, rsqrt n, *rms n*d, *weight n*d: 4nd + 2n
  RoPE (q or k): 4 products + 1 sub + 1 add on half-width pairs: 3*n*d for q, 3*n*d*h_kv/h for k
  naive core:    *scale, amax (per input), -max, exp, sum (per input), /sum on (B,h,T,T): 6*B*h*T^2
  SwiGLU:        sigmoid, x*sigmoid, gate*W3x on (n, d_ff): 3*n*d_ff;  SiLU FFN: 2*n*d_ff
  residual adds: 2 per block, n*d each (row "layers": the block's own forward)
Row names are the module paths the ops run in, aggregated over blocks (the shared RoPE module is
registered once, as layers.0.attn.rope).
  cross_entropy: amax, -max, exp, sum on (n, V): 4*n*V; log, -target, mean over n: 3n
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.rows import Row, make_rows
from accounting.symbols import B, L, T, V, d, d_ff, h, h_kv, values


def _rmsnorm() -> sp.Expr:
    return 4 * B * T * d + 2 * B * T


@lru_cache(maxsize=256)
def nonmatmul_terms(norm: str, norm_position: str, positions: str, ffn: str, attention: str
                    ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, forward non-matmul FLOPs formula, note), aggregated over the L blocks."""
    block: list[tuple[str, sp.Expr, str]] = []
    if norm == "rmsnorm":
        block += [("layers.ln1", _rmsnorm(), ""), ("layers.ln2", _rmsnorm(), "")]
    if positions == "rope":
        block.append(("layers.attn.rope", 3 * B * T * d * (1 + h_kv / h), "q and k (k at h_kv heads)"))
    if attention == "naive":
        block.append(("layers.attn", 6 * B * h * T**2, "scale, softmax"))
    else:
        block.append(("layers.attn", sp.Integer(0), "inside the fused sdpa kernel (not counted)"))
    block.append(("layers.ffn", (3 if ffn == "swiglu" else 2) * B * T * d_ff, "SiLU, gating"))
    block.append(("layers", 2 * B * T * d, "two residual adds (in the block's own forward)"))
    terms = [(n, L * f, note) for n, f, note in block]
    if norm == "rmsnorm" and norm_position == "pre":
        terms.append(("ln_final", _rmsnorm(), ""))
    terms.append(("cross_entropy", 4 * B * T * V + 3 * B * T, "log-softmax, NLL mean"))
    return tuple(terms)


def nonmatmul_forward_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> list[Row]:
    """Non-matmul forward FLOPs per component (unit "flops")."""
    terms = nonmatmul_terms(cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.attention)
    return make_rows(terms, values(cfg, batch_size, context_length), "flops")


def nonmatmul_forward_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Total non-matmul forward FLOPs (the optional term)."""
    return sum(r.value for r in nonmatmul_forward_rows(cfg, batch_size, context_length))
