"""A training run's throughput from its step events (no Streamlit): elapsed time, the run's average
and a smoothed recent rate.

Units: tokens/s of wall-clock time since the run's loop started (evaluations and checkpoints
included, as a user waiting for the run sees it); events are model.trainer's "step" events, whose
`tokens` count every token trained so far and `wall_s` the seconds since the loop started.
The trainer's own `tokens_per_s` covers only the last logging interval (a few steps), which on a
shared machine jumps by 40x from one interval to the next; the smoothed rate here is the mean over
the last `WINDOW_S` seconds instead (from the latest logged step at least that long ago, or from
the start). MFU = rate x matmul FLOPs per token / peak FLOP/s (computed where the peak is known).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

WINDOW_S = 10.0
"""Seconds of wall clock the smoothed rate averages over."""


@dataclass(frozen=True)
class Throughput:
    """Totals so far and two rates, tokens/s (None before the first logged step)."""

    steps: int
    tokens: int
    elapsed_s: float
    average_tokens_per_s: float | None
    recent_tokens_per_s: float | None


def throughput(events: Iterable[Mapping[str, Any]], window_s: float = WINDOW_S) -> Throughput:
    """Totals and rates of the run whose trainer events are `events` (other event types ignored)."""
    points = [(0, 0.0)]  # (tokens, wall_s) at the loop's start, then at each logged step
    steps = 0
    for e in events:
        if e.get("type") == "step" and e.get("wall_s") is not None:
            points.append((int(e["tokens"]), float(e["wall_s"])))
            steps = int(e["step"])
    tokens, now = points[-1]
    if len(points) == 1 or now <= 0:
        return Throughput(steps, tokens, now, None, None)
    since = next((p for p in reversed(points[:-1]) if now - p[1] >= window_s), points[0])
    recent = (tokens - since[0]) / (now - since[1])
    return Throughput(steps, tokens, now, tokens / now, recent)


def mfu(tokens_per_s: float | None, flops_per_token: float, peak_flops_per_s: float) -> float | None:
    """Model FLOPs utilization of a rate: tokens/s x FLOPs per token / peak FLOP/s."""
    return None if tokens_per_s is None else tokens_per_s * flops_per_token / peak_flops_per_s
