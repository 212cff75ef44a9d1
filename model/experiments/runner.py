"""One training run of an experiment: `model.trainer.train` with a divergence watch and a JSONL log.

A run is stopped and marked diverged when its loss becomes NaN/inf (the trainer stops those
itself, reason "diverged") or when a training or validation loss exceeds `divergence_factor` x
the loss of its first step (the runner sets the trainer's stop_event; the trainer ends after
that step; a validation loss after the last step marks the run without stopping anything). Either
way the caller gets a `RunRecord` and the sweep goes on. Every step is logged (log_interval 1) so
the watch sees each loss; the log is written to `<out>/runs/<name>.jsonl`: a first line
{"type": "run", name, variant, model_config, train_config, parameters}, then the trainer's events
(see model.trainer), then {"type": "verdict", diverged, divergence}; non-finite floats are null.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from accounting.atomic import atomic_write_text
from accounting.config import ModelConfig
from model.experiments.summary import RunRecord, strict_json
from model.train_config import TrainConfig

DIVERGENCE_FACTOR = 1.5
SMOOTH_STEPS = 10  # window of final_train_loss / best_train_loss (see summary.CONVENTIONS)


@dataclass(frozen=True)
class RunSpec:
    """What to train: a name unique in the sweep, the variant label, and both configs."""

    name: str
    variant: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    extra: dict[str, Any] = field(default_factory=dict)


class _Watch:
    """on_event callback: collects events, stops the run when the loss runs away."""

    def __init__(self, factor: float):
        self.factor, self.stop = factor, threading.Event()
        self.events: list[dict[str, Any]] = []
        self.first_loss: float | None = None
        self.divergence: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = {"step": "loss", "eval": "val_loss"}.get(event["type"])
        if kind is None:
            return
        loss = event[kind]
        if self.first_loss is None:
            self.first_loss = loss
        elif self.divergence is None and not loss <= self.factor * self.first_loss:  # NaN counts
            what = "loss" if kind == "loss" else "validation loss"
            self.divergence = (f"{what} {loss:.4g} > {self.factor:g} x first loss {self.first_loss:.4g} "
                               f"at step {event['step']}")
            self.stop.set()


def train_run(spec: RunSpec, train_data: npt.NDArray, val_data: npt.NDArray | None, out_dir: Path, *,
              divergence_factor: float = DIVERGENCE_FACTOR, progress: bool = False) -> RunRecord:
    """Train `spec`, write its JSONL log under `out_dir/runs/`, return its record."""
    from accounting import non_embedding_parameters, total_parameters
    from model.trainer import train

    tcfg = spec.train_cfg.replace(log_interval=1, checkpoint_interval=0)
    watch = _Watch(divergence_factor)
    start = time.perf_counter()
    result = train(spec.model_cfg, tcfg, train_data, val_data, on_event=watch, stop_event=watch.stop,
                   progress=progress)
    wall = time.perf_counter() - start
    divergence = result.message if result.diverged else watch.divergence
    params = (total_parameters(spec.model_cfg), non_embedding_parameters(spec.model_cfg))
    log = Path("runs") / f"{spec.name}.jsonl"
    _write_log(out_dir / log, spec, tcfg, params, watch.events, divergence)
    return _record(spec, tcfg, watch, result.steps, result.reason, divergence, wall, params, log)


def _record(spec: RunSpec, tcfg: TrainConfig, watch: _Watch, steps: int, reason: str,
            divergence: str | None, wall: float, params: tuple[int, int], log: Path) -> RunRecord:
    losses = [e["loss"] for e in watch.events if e["type"] == "step" and math.isfinite(e["loss"])]
    vals = [e["val_loss"] for e in watch.events if e["type"] == "eval"]
    means = running_means(losses, SMOOTH_STEPS)
    tps = [e["tokens_per_s"] for e in watch.events if e["type"] == "step" and e["step"] > 1
           and e.get("tokens_per_s")]
    return RunRecord(
        name=spec.name, variant=spec.variant, config=spec.model_cfg.to_dict(), lr=tcfg.max_lr,
        batch_size=tcfg.batch_size, steps_planned=tcfg.steps, steps=steps,
        tokens_seen=steps * tcfg.batch_size * spec.model_cfg.context_length,
        initial_loss=watch.first_loss,
        final_train_loss=means[-1] if means else None,
        best_train_loss=min(means) if means else None,
        final_val_loss=vals[-1] if vals else None, best_val_loss=min(vals) if vals else None,
        tokens_per_s=statistics.median(tps) if tps else None,
        diverged=divergence is not None, divergence=divergence, end_reason=reason,
        wall_seconds=wall, parameters=params[0], non_embedding_parameters=params[1], log=log.as_posix(),
        extra=dict(spec.extra),
    )


def running_means(values: list[float], window: int) -> list[float]:
    """Mean of the last `window` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _write_log(path: Path, spec: RunSpec, tcfg: TrainConfig, params: tuple[int, int],
               events: list[dict[str, Any]], divergence: str | None) -> None:
    head = {"type": "run", "name": spec.name, "variant": spec.variant,
            "model_config": spec.model_cfg.to_dict(), "train_config": tcfg.to_dict(),
            "parameters": params[0], "non_embedding_parameters": params[1], **spec.extra}
    verdict = {"type": "verdict", "diverged": divergence is not None, "divergence": divergence}
    lines = [json.dumps(strict_json(_compact(e)), allow_nan=False) for e in (head, *events, verdict)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _compact(event: dict[str, Any]) -> dict[str, Any]:
    """Floats to 7 significant digits (float32 precision) to keep logs small."""
    return {k: float(f"{v:.7g}") if isinstance(v, float) and math.isfinite(v) else v
            for k, v in event.items()}
