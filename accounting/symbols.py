"""The sympy symbols of the accounting, one place, each Python name equal to its printed name.

All are positive integers (sizes and counts). `FIELD_SYMBOLS` maps `ModelConfig` fields to symbols;
`B` (batch size, sequences) and `T` (the sequence length a step runs at, tokens) are not config
fields: `T` defaults to the config's `context_length`, which `n_ctx` (the rows of a learned
position table) always is.
"""

from __future__ import annotations

import sympy as sp

from accounting.config import ModelConfig
from accounting.errors import UserError

_INT = {"positive": True, "integer": True}

V = sp.Symbol("V", **_INT)        # vocabulary size (tokens)
T = sp.Symbol("T", **_INT)        # sequence length of the step (tokens)
L = sp.Symbol("L", **_INT)        # number of Transformer blocks
d = sp.Symbol("d", **_INT)        # d_model (features)
h = sp.Symbol("h", **_INT)        # attention heads (d_k = d / h)
h_kv = sp.Symbol("h_kv", **_INT)  # key/value heads (grouped-query attention; h_kv = h: multi-head)
d_ff = sp.Symbol("d_ff", **_INT)  # FFN inner width (features)
B = sp.Symbol("B", **_INT)        # batch size (sequences)
n_ctx = sp.Symbol("n_ctx", **_INT)  # rows of the learned position table (the config's context_length)
P = sp.Symbol("P", **_INT)        # prompt tokens per sequence (inference)
G = sp.Symbol("G", **_INT)        # new tokens generated per sequence (inference)
t = sp.Symbol("t", integer=True, nonnegative=True)  # position of the token a decode step feeds
# Parallel layouts (accounting.layout, accounting.parallel): not config fields either.
N_dp = sp.Symbol("N_dp", **_INT)  # data-parallel ranks (sharding degree of ZeRO / FSDP)
N_tp = sp.Symbol("N_tp", **_INT)  # tensor-parallel ranks
b = sp.Symbol("b", **_INT)        # sequences per data-parallel rank (b = B / N_dp)

FIELD_SYMBOLS: dict[str, sp.Symbol] = {
    "vocab_size": V,
    "context_length": T,
    "num_layers": L,
    "d_model": d,
    "num_heads": h,
    "num_kv_heads": h_kv,
    "d_ff": d_ff,
}
"""ModelConfig field -> symbol. (`context_length` is overridden by a step's own T.)"""

SIZE_SYMBOLS: tuple[sp.Symbol, ...] = (V, T, L, d, h, h_kv, d_ff, B, n_ctx)
INFERENCE_SYMBOLS: tuple[sp.Symbol, ...] = (P, G, t)
"""The request's sizes (accounting.inference): not config fields, set per request."""
PARALLEL_SYMBOLS: tuple[sp.Symbol, ...] = (N_dp, N_tp, b)

MEANINGS: dict[sp.Symbol, str] = {
    V: "vocabulary size (tokens)", T: "sequence length of the step (tokens)",
    L: "number of Transformer blocks", d: "d_model, the residual width (features)",
    h: "attention heads (d_k = d / h)", h_kv: "key/value heads (grouped-query; = h for multi-head)",
    d_ff: "FFN inner width (features)", B: "batch size (sequences)",
    n_ctx: "rows of the learned position table (the config's context_length)",
    P: "prompt tokens per sequence", G: "new tokens generated per sequence",
    t: "position of the token a decode step feeds (it attends to t + 1 keys)",
    N_dp: "data-parallel ranks (ZeRO / FSDP shard over them)", N_tp: "tensor-parallel ranks",
    b: "sequences per data-parallel rank (B / N_dp)",
}
"""What each size symbol stands for (tables of symbols print it)."""


def values(cfg: ModelConfig, batch_size: int = 1, context_length: int | None = None) -> dict[sp.Symbol, int]:
    """The substitution dict {symbol: int} for `cfg` at a step of `batch_size` x `context_length`.

    `context_length` defaults to `cfg.context_length`. Raises ValueError for non-positive sizes.
    """
    t = cfg.context_length if context_length is None else context_length
    for name, value in (("batch_size", batch_size), ("context_length", t)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    subs = {sym: getattr(cfg, field) for field, sym in FIELD_SYMBOLS.items()}
    subs[h_kv] = cfg.kv_heads  # num_kv_heads None means h_kv = h
    subs[n_ctx] = cfg.context_length  # the table's size, whatever T the step runs at
    subs[T] = t
    subs[B] = batch_size
    return subs
