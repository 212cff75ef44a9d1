"""Cached accounting for the views (no Streamlit): every number comes from `accounting`.

The sympy work is cached per (config, step, device) with functools.lru_cache (ModelConfig is a
frozen, hashable dataclass), so a widget change costs a dict look-up or one fresh report (a few ms).
Bytes per batch size use the fact that the accounting's memory is linear in B (accounting.memory):
two exact evaluations (B = 1, 2) give every B exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

import accounting as acc
from accounting.config import GPT2_PRESETS, ModelConfig, get_preset
from explorer.state import CUSTOM, Settings

CONTEXTS: tuple[int, ...] = tuple(2**k for k in range(8, 16))  # 256 .. 32,768 tokens
GROUP_LABELS = {"attention_projections": "attention projections (QKV, output)",
                "attention_core": "attention core (QKᵀ, softmax·V)", "ffn": "FFN", "lm_head": "LM head"}


@lru_cache(maxsize=256)
def _report(cfg: ModelConfig, batch_size: int, dtype: str, gpu: str, peak_tflops: float,
            memory_gib: float, mfu: float, steps: int) -> acc.Report:
    device = acc.custom_gpu(peak_tflops * 1e12, int(memory_gib * 2**30)) if gpu == CUSTOM else gpu
    return acc.build_report(cfg, batch_size=batch_size, dtype=dtype, gpu=device, mfu=mfu, steps=steps)


def report(settings: Settings) -> acc.Report:
    """The accounting report of `settings` (ValueError for an invalid config or setting)."""
    s = settings
    return _report(s.config(), s.batch_size, s.dtype, s.gpu, s.peak_tflops, s.memory_gib, s.mfu, s.steps)


def rows_frame(rows: list[acc.Row], fmt) -> pd.DataFrame:
    """Component rows as a table: exact value, readable value, share of the total, formula. Exact
    values beyond int64 (absurd sizes) become digit strings, which Arrow can carry."""
    whole = sum(r.value for r in rows) or 1
    exact: list = [r.value for r in rows]
    if any(abs(v) >= 2**63 for v in exact):  # beyond int64 (Arrow): exact digits as text
        exact = [f"{v:,}" for v in exact]
    return pd.DataFrame({
        "component": [r.name for r in rows],
        "exact": exact,
        "readable": [fmt(r.value) for r in rows],
        "share": [r.value / whole for r in rows],
        "formula": [formula_text(r.formula) for r in rows],
        "note": [r.note for r in rows],
    })


def formula_text(expr) -> str:
    """A formula as compact text for tables: 2·B·L·T·d^2 (st.latex shows the typeset form)."""
    return str(expr).replace("**", "^").replace("*", "·")


def table_height(rows: int) -> int:
    """Pixels that show a st.dataframe of `rows` rows without an inner scrollbar."""
    return 35 * (rows + 1) + 3


@lru_cache(maxsize=64)
def shares_vs_context(cfg: ModelConfig) -> pd.DataFrame:
    """Forward FLOP shares by group (accounting.flop_shares) at T = 256 .. 32,768, long form."""
    out = []
    for t in CONTEXTS:
        row = acc.flop_shares(cfg, t)
        out += [{"context_length": t, "group": GROUP_LABELS[g], "share": v} for g, v in row.shares.items()]
    return pd.DataFrame(out)


@lru_cache(maxsize=64)
def shares_across_sizes(context_length: int) -> pd.DataFrame:
    """Forward FLOP shares of the four GPT-2 sizes at one context length, long form."""
    out = []
    for name in GPT2_PRESETS:
        row = acc.flop_shares(get_preset(name).replace(context_length=context_length), context_length)
        out += [{"model": name, "group": GROUP_LABELS[g], "share": v} for g, v in row.shares.items()]
    return pd.DataFrame(out)


@dataclass(frozen=True)
class MemoryLine:
    """Bytes of one memory component as a + b*B (exact ints; B = batch size in sequences)."""

    name: str
    fixed: int
    per_sequence: int

    def at(self, batch_size: int) -> int:
        return self.fixed + self.per_sequence * batch_size


def _line(name: str, at1: int, at2: int) -> MemoryLine:
    return MemoryLine(name, 2 * at1 - at2, at2 - at1)


@lru_cache(maxsize=128)
def memory_lines(cfg: ModelConfig, dtype: str, convention: str, checkpointing: bool) -> tuple[MemoryLine, ...]:
    """Peak-memory components as exact lines in B: weights, [bf16 copy], gradients, AdamW state,
    then activations by component (or one checkpointed-activations line)."""
    one, two = acc.memory_rows(cfg, 1, dtype=dtype, convention=convention), \
        acc.memory_rows(cfg, 2, dtype=dtype, convention=convention)
    lines = [_line(a.name, a.value, b.value) for a, b in zip(one, two) if a.name != "activations"]
    if checkpointing:
        lines.append(_line("activations (per-block checkpointing)",
                           acc.checkpointed_activation_bytes(cfg, 1, convention=convention, dtype=dtype),
                           acc.checkpointed_activation_bytes(cfg, 2, convention=convention, dtype=dtype)))
    else:
        act1 = acc.activation_rows(cfg, 1, convention=convention, dtype=dtype)
        act2 = acc.activation_rows(cfg, 2, convention=convention, dtype=dtype)
        lines += [_line(f"activations: {a.name}", a.value, b.value) for a, b in zip(act1, act2)]
    return tuple(lines)


def largest_batch(lines: tuple[MemoryLine, ...], budget_bytes: int) -> int:
    """Largest B with sum(lines at B) <= budget (0 if even B = 1 does not fit; exact integer math)."""
    fixed = sum(line.fixed for line in lines)
    per = sum(line.per_sequence for line in lines)
    if fixed > budget_bytes or per <= 0:
        return 0
    return (budget_bytes - fixed) // per


def memory_frame(lines: tuple[MemoryLine, ...], batches: list[int]) -> pd.DataFrame:
    """Long-form bytes per component per batch size."""
    return pd.DataFrame([{"batch_size": b, "component": line.name, "bytes": line.at(b)}
                         for b in batches for line in lines])
