"""Cached accounting for the views (no Streamlit): every number comes from `accounting`.

The sympy work is cached per (config, step, device) with functools.lru_cache (ModelConfig is a
frozen, hashable dataclass), so a widget change costs a dict look-up or one fresh report (a few ms).
One truth per number: every view draws `report(settings)`, the accounting report at the sidebar's
settings (the activation convention, checkpointing and the overhead margin included), and the
Memory view's chart is the same peak evaluated at other batch sizes (`peak_by_batch`), so the
chart at the user's B, the tables and the Overview agree by construction.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

import accounting as acc
from accounting.config import GPT2_PRESETS, ModelConfig, get_preset
from accounting.errors import UserError
from explorer.overhead import Overhead, default_overhead, given
from explorer.state import CUSTOM, Settings

CONTEXTS: tuple[int, ...] = tuple(2**k for k in range(8, 16))  # 256 .. 32,768 tokens
GROUP_LABELS = {"attention_projections": "attention projections (QKV, output)",
                "attention_core": "attention core (QKᵀ, softmax·V)", "ffn": "FFN", "lm_head": "LM head"}


@dataclass(frozen=True)
class Budget:
    """The GPU's memory (bytes, 2^30 = 1 GiB), the overhead margin the step cannot use, and what
    is left for the step (`usable_bytes`, the budget the largest batch is solved against)."""

    gpu: str
    gpu_bytes: int
    overhead: Overhead

    @property
    def usable_bytes(self) -> int:
        return self.gpu_bytes - self.overhead.total_bytes


def _device(gpu: str, peak_tflops: float, memory_gib: float) -> acc.GPU:
    return acc.custom_gpu(peak_tflops * 1e12, int(memory_gib * 2**30)) if gpu == CUSTOM else acc.get_gpu(gpu)


def overhead(settings: Settings) -> Overhead:
    """The overhead margin of `settings`: the user's, else explorer.overhead's default."""
    if settings.overhead_gib is not None:
        return given(settings.overhead_gib)
    return default_overhead(settings.gpu)


def budget(settings: Settings) -> Budget:
    """The memory budget of `settings` (UserError when the margin leaves nothing)."""
    device = _device(settings.gpu, settings.peak_tflops, settings.memory_gib)
    out = Budget(device.name, device.memory_bytes, overhead(settings))
    if out.usable_bytes <= 0:
        raise UserError(f"the overhead margin ({acc.fmt_bytes(out.overhead.total_bytes)}) leaves nothing of "
                        f"{device.name}'s {acc.fmt_bytes(out.gpu_bytes)}")
    return out


@lru_cache(maxsize=256)
def _report(cfg: ModelConfig, batch_size: int, dtype: str, gpu: str, peak_tflops: float, memory_gib: float,
            usable_bytes: int, mfu: float, steps: int, checkpointing: bool, activations: str) -> acc.Report:
    device = dataclasses.replace(_device(gpu, peak_tflops, memory_gib), memory_bytes=usable_bytes)
    return acc.build_report(cfg, batch_size=batch_size, dtype=dtype, gpu=device, mfu=mfu, steps=steps,
                            checkpointing=checkpointing, activations=activations)


def report(settings: Settings) -> acc.Report:
    """The accounting report of `settings`: the peak and the largest batch under the settings'
    activation convention and checkpointing, solved against the GPU's memory less the overhead
    margin (report.memory.budget_bytes is that usable memory). ValueError (UserError) for an
    invalid config or setting, and for what the accounting does not model yet."""
    s = settings
    return _report(s.config(), s.batch_size, s.dtype, s.gpu, s.peak_tflops, s.memory_gib,
                   budget(s).usable_bytes, s.mfu, s.steps, s.checkpointing, s.activations)


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


def batch_axis(current: int, largest: int, points: int = 12) -> list[int]:
    """Batch sizes for the memory chart (a categorical axis): powers of two from 1 to past both
    the current and the largest batch (thinned to about `points`), plus those two."""
    top = max(current, math.ceil(1.25 * largest), 2)
    powers = [2**k for k in range(top.bit_length() + 1) if 2**k <= 2 * top]
    stride = max(1, math.ceil(len(powers) / points))
    return sorted({*powers[::stride], current, *([largest] if largest else [])})


def _peak_parts(cfg: ModelConfig, batch_size: int, t: int, dtype: str, convention: str,
                checkpointing: bool) -> list[tuple[str, str, int]]:
    """(group, part, bytes) of the peak at one batch size: the peak event's categories of the
    memory timeline (implementation), or the textbook's static terms with its activations by
    component. Sums to accounting.peak_memory_bytes at these settings."""
    if convention == "implementation":
        peak = acc.memory_timeline(cfg, batch_size, t, dtype, checkpointing=checkpointing).peak
        return [(CATEGORY_GROUPS[c], c, b) for c, b in peak.bytes.items() if b]
    out = [(CATEGORY_GROUPS[r.name], r.name, r.value) for r in
           acc.memory_rows(cfg, batch_size, t, dtype, "textbook") if r.name != "activations"]
    out += [("activations", r.name, r.value) for r in
            acc.activation_rows(cfg, batch_size, t, "textbook", dtype) if r.value]
    return out


CATEGORY_GROUPS: dict[str, str] = {
    "weights": "weights", "buffers": "weights", "weights_bf16_copy": "weights", "gradients": "gradients",
    "optimizer_state": "optimizer", "batch": "activations", "activations": "activations",
    "transients": "transients"}
"""Legend group of each memory part (timeline categories; textbook rows use the same names)."""


@lru_cache(maxsize=128)
def peak_by_batch(cfg: ModelConfig, t: int, dtype: str, convention: str, checkpointing: bool,
                  batches: tuple[int, ...]) -> pd.DataFrame:
    """Long form (batch_size, group, part, bytes): the peak's composition at each batch size."""
    return pd.DataFrame([{"batch_size": b, "group": g, "part": p, "bytes": n}
                         for b in batches for g, p, n in _peak_parts(cfg, b, t, dtype, convention, checkpointing)])


@lru_cache(maxsize=64)
def timeline_frame(cfg: ModelConfig, batch_size: int, t: int, dtype: str, checkpointing: bool) -> pd.DataFrame:
    """The step's memory timeline at one batch size, long form (index, name, phase, category,
    bytes): every event of accounting.memory_timeline."""
    tl = acc.memory_timeline(cfg, batch_size, t, dtype, checkpointing=checkpointing)
    return pd.DataFrame([{"index": e.index, "name": e.name, "phase": e.phase, "category": c, "bytes": b}
                         for e in tl.events for c, b in e.bytes.items()])
