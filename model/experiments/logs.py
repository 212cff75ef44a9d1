"""Reading a run's JSONL log back: the one reader of loss curves (charts, the explorer).

A log holds one JSON object per line: trainer events ({"type": "step", "step", "loss"},
{"type": "eval", "step", "val_loss"}, others ignored) or flat rows with "step" and
"train_loss" / "val_loss". Read defensively: a line that is not JSON, lacks an integer step, or
holds a non-numeric loss (null after a NaN) is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Curve:
    """Training loss at `step`, validation loss at `eval_step` (nats per token); `tokens_per_step`
    (from a step event's cumulative "tokens", None when the log has none) puts steps on a
    tokens axis."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    tokens_per_step: int | None = None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_curve(path: str | Path) -> Curve:
    """The loss curves of the JSONL log at `path` (OSError if it cannot be read)."""
    curve = Curve()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            continue
        if curve.tokens_per_step is None and step > 0 and isinstance(row.get("tokens"), int):
            curve.tokens_per_step = row["tokens"] // step
        train = row.get("train_loss", row.get("loss") if row.get("type") == "step" else None)
        for value, xs, ys in ((train, curve.step, curve.loss),
                              (row.get("val_loss"), curve.eval_step, curve.val_loss)):
            if (number := _number(value)) is not None:
                xs.append(step)
                ys.append(number)
    return curve
