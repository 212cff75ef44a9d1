"""The issue's targets, read off the campaign's measurements (rows), met or missed. Imports no torch.

The thresholds are fixed here, before any GPU run, and are never tuned to a result:
  - exactness: every row of parameters, forward / backward matmul FLOPs, saved-for-backward bytes
    (implementation convention), AdamW state and the memory timeline (MemTracker) is equal, or
    differs for a NAMED reason (validation.reasons; "unexplained difference" misses the target);
  - memory: torch.cuda.max_memory_allocated within 3% of the timeline's peak plus the
    residuals measured in the same step (cuBLAS workspaces, allocator rounding), per probe;
  - largest batch: the batch the accounting says fits the GPU's free memory runs a step (no OOM);
  - throughput: our MFU >= 45% of the GPU table's dense bf16 peak, and our tokens/s >= 0.95x the
    torch-modules baseline's in the same run.
The row names below are the vocabulary the steps write and this module reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from validation.reasons import UNEXPLAINED
from validation.render import fmt_value
from validation.rows import ComparisonRow, Measurement

MEMORY_TOLERANCE = 0.03
MFU_GOAL = 0.45
BASELINE_GOAL = 0.95
EXACT_QUANTITIES = ("parameters", "forward matmul FLOPs", "backward matmul FLOPs",
                    "activations (implementation)", "AdamW state", "memory timeline")

DENSE_PEAK = "dense matmul peak"
STEP_MEMORY = "training step memory"
STEP_TIME = "training step time"
PEAK = "peak (max_memory_allocated)"
PEAK_AFTER_RESIDUALS = "peak vs predicted + measured residuals"
LARGEST = "largest batch"
PEAK_AT_PREDICTED = "peak at the predicted batch"
THROUGHPUT = "training throughput"
OURS, BASELINE = "ours", "torch modules"
RATIO = "ours / torch modules (tokens/s)"
OUT_OF_MEMORY = "out of memory"


def mfu_component(who: str, peak: str) -> str:
    """`ours: MFU vs the table's dense bf16 peak` (peak "table's") or `... the measured ...`."""
    return f"{who}: MFU vs the {peak} dense bf16 peak"


MFU_TABLE = mfu_component(OURS, "table's")


@dataclass(frozen=True)
class Target:
    """One target: `met` True / False, or None when it was not measured (its step did not run)."""

    name: str
    goal: str
    measured: str
    met: bool | None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


Named = Sequence[tuple[str, Measurement]]
"""(file name or step label, measurement) pairs, in plan order."""


def _find(measurements: Named, quantity: str, component: str) -> list[tuple[str, Measurement, ComparisonRow]]:
    return [(name, m, r) for name, m in measurements for r in m.rows
            if r.quantity == quantity and r.component == component]


def label(name: str, m: Measurement) -> str:
    """The step label a campaign measurement carries (settings["campaign_label"]), else `name`."""
    return str(m.settings.get("campaign_label") or name)


def exactness(measurements: Named) -> Target:
    per = [[r for r in m.rows if r.quantity in EXACT_QUANTITIES] for _, m in measurements]
    rows = [r for found in per for r in found]
    goal = ("parameters, matmul FLOPs, saved-for-backward bytes, AdamW state, the memory timeline "
            "(MemTracker): equal, or every difference named")
    if not rows:
        return Target("exact counts", goal, "no measurement ran", None)
    equal = sum(r.equal for r in rows)
    # a difference without a reason (one side missing) is as unexplained as UNEXPLAINED itself
    unexplained = [r for r in rows if not r.equal and r.reason in ("", UNEXPLAINED)]
    named = Counter((r.quantity, r.reason) for r in rows
                    if not r.equal and r.reason not in ("", UNEXPLAINED))
    measured = (f"{len(rows)} rows in {sum(map(bool, per))} measurements: {equal} equal, "
                f"{sum(named.values())} differ for a named reason, {len(unexplained)} unexplained")
    detail = "; ".join(f"{q} ({n} rows): {reason}" for (q, reason), n in named.items())
    if unexplained:
        detail = "unexplained: " + ", ".join(f"{r.quantity} / {r.component}" for r in unexplained) \
            + ("; " + detail if detail else "")
    return Target("exact counts", goal, measured, not unexplained, detail)


def memory(measurements: Named) -> list[Target]:
    goal = f"max_memory_allocated within {MEMORY_TOLERANCE:.0%} of predicted + measured residuals"
    out = []
    for name, m, row in _find(measurements, STEP_MEMORY, PEAK_AFTER_RESIDUALS):
        diff = row.rel_diff
        met = None if diff is None else abs(diff) <= MEMORY_TOLERANCE
        raw = next((r for r in m.rows if r.quantity == STEP_MEMORY and r.component == PEAK), None)
        measured = (f"{fmt_value(row.measured, 'bytes')} vs {fmt_value(row.symbolic, 'bytes')}: "
                    f"{'-' if diff is None else f'{diff:+.2%}'}")
        if raw is not None and raw.rel_diff is not None:
            measured += f" (before the residuals {raw.rel_diff:+.2%})"
        out.append(Target(f"peak memory, {label(name, m)}", goal, measured, met,
                          row.reason if met is False else ""))
    return out or [Target("peak memory", goal, "no training-step probe ran", None)]


def largest_batch(measurements: Named) -> Target:
    goal = "the batch the accounting says fits the free GPU memory runs one step without OOM"
    found = _find(measurements, LARGEST, PEAK_AT_PREDICTED)
    if not found:
        return Target("largest batch", goal, "step 4 did not run", None)
    name, m, row = found[-1]
    if row.measured is None and row.reason.startswith(OUT_OF_MEMORY):
        return Target("largest batch", goal, row.reason, False, row.convention)
    if row.measured is None:
        return Target("largest batch", goal, "ran; no allocator counters on this device", None,
                      row.convention)
    diff = row.rel_diff
    measured = (f"ran; peak {fmt_value(row.measured, 'bytes')} vs predicted "
                f"{fmt_value(row.symbolic, 'bytes')} ({'-' if diff is None else f'{diff:+.2%}'})")
    return Target("largest batch", goal, measured, True, row.convention)


def _threshold(measurements: Named, component: str, goal_value: float, name: str, goal: str,
               fmt) -> Target:
    found = _find(measurements, THROUGHPUT, component)
    if not found or found[-1][2].measured is None:
        return Target(name, goal, "not measured", None)
    value = found[-1][2].measured
    return Target(name, goal, fmt(value), value >= goal_value, found[-1][2].reason)


def throughput(measurements: Named) -> list[Target]:
    return [
        _threshold(measurements, MFU_TABLE, MFU_GOAL, "MFU, cs336-gpt2-small bf16 T=1024",
                   f"at least {MFU_GOAL:.0%} of the GPU table's dense bf16 peak", lambda v: f"{v:.2%}"),
        _threshold(measurements, RATIO, BASELINE_GOAL, "vs torch modules",
                   f"at least {BASELINE_GOAL}x the torch-modules baseline's tokens/s", lambda v: f"{v:.3f}x"),
    ]


def evaluate(measurements: Named) -> list[Target]:
    """Every target, in the issue's order, from the measurements of one campaign."""
    return [exactness(measurements), *memory(measurements), largest_batch(measurements),
            *throughput(measurements)]
