"""How forward FLOP shares move with model size and context length; where attention overtakes the FFN.

Groups of the forward matmul FLOPs: attention projections (q, k, v, output), attention core
(scores QK^T + weighted values, the T^2 terms), FFN (w1, w2[, w3]) and the LM head.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from accounting.config import ModelConfig
from accounting.flops import ATTENTION_CORE, forward_flops_rows, forward_terms
from accounting.symbols import T, values

GROUPS = ("attention_projections", "attention_core", "ffn", "lm_head")


def _group(name: str) -> str:
    if name in ATTENTION_CORE:
        return "attention_core"
    if name.startswith("layers.attn."):
        return "attention_projections"
    if name.startswith("layers.ffn."):
        return "ffn"
    return "lm_head"


@dataclass(frozen=True)
class ShareRow:
    """Forward FLOP shares (fractions of the forward total) of one config at one context length."""

    label: str
    context_length: int
    forward_flops: int
    shares: dict[str, float]


def flop_shares(cfg: ModelConfig, context_length: int | None = None, label: str = "") -> ShareRow:
    rows = forward_flops_rows(cfg, 1, context_length)
    whole = sum(r.value for r in rows)
    shares = {g: sum(r.value for r in rows if _group(r.name) == g) / whole for g in GROUPS}
    t = cfg.context_length if context_length is None else context_length
    return ShareRow(label, t, whole, shares)


def attention_crossover_formula(ffn: str) -> sp.Expr:
    """T at which the attention core's FLOPs equal the FFN's (sympy solve over T > 0)."""
    terms = forward_terms(ffn)
    core = sp.Add(*(f for n, f, _ in terms if n in ATTENTION_CORE))
    ffn_flops = sp.Add(*(f for n, f, _ in terms if _group(n) == "ffn"))
    (solution,) = sp.solve(sp.Eq(core, ffn_flops), T)
    return solution


def attention_crossover(cfg: ModelConfig) -> float:
    """Context length beyond which attention core FLOPs exceed the FFN's (3*d_ff/2 for SwiGLU,
    d_ff for SiLU)."""
    subs = values(cfg)
    return float(attention_crossover_formula(cfg.ffn).xreplace({k: sp.Integer(v) for k, v in subs.items()}))
