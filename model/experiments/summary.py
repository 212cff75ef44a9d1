"""Typed results of an experiment: one `RunRecord` per training run, one `Summary` per subcommand.

`summary.json` is strict JSON (non-finite floats become null) and round-trips through
`Summary.to_dict` / `Summary.from_dict`. Units live in the field names: losses are mean
cross-entropy in nats per token, `tokens_per_s` is training tokens per second, `wall_seconds`
is seconds of wall-clock time. `CONVENTIONS` is written into every summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accounting.atomic import atomic_write_text
from accounting.errors import UserError
from accounting.json_io import read_json_file

SCHEMA_VERSION = 1
SUMMARY_NAME = "summary.json"

CONVENTIONS: dict[str, str] = {
    "loss": "mean next-token cross-entropy, nats per token (sgd-toy: mean square of the parameter)",
    "final_train_loss": "mean of the last 10 logged training-step losses (fewer if the run is shorter)",
    "best_train_loss": "lowest 10-step running mean of the training loss",
    "val_loss": "mean cross-entropy over eval_batches x batch_size windows of the held-out tail, "
                "the same windows at every evaluation of a run",
    "lr": "peak AdamW learning rate of a cosine schedule: linear warmup over 10% of the steps, "
          "cosine decay to lr/10 at the last step",
    "tokens_seen": "steps x batch_size x context_length (training tokens, no evaluation)",
    "tokens_per_s": "median over steps (the first excluded) of batch_size x context_length over the "
                    "wall-clock seconds between consecutive steps, float32 on the stated device and threads",
    "wall_seconds": "wall-clock seconds of the whole run, evaluations included",
    "parameters": "accounting.total_parameters: trainable parameters, a tied matrix once",
    "diverged": "a training or validation loss became NaN/inf or exceeded divergence_factor x the "
                "first step's training loss; the run is stopped there and the sweep goes on",
}


@dataclass(frozen=True)
class RunRecord:
    """One run. Loss fields are None when the run never reached them (e.g. diverged before eval)."""

    name: str
    variant: str
    config: dict[str, Any]
    lr: float
    batch_size: int | None
    steps_planned: int
    steps: int
    tokens_seen: int | None
    initial_loss: float | None
    final_train_loss: float | None
    best_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    tokens_per_s: float | None
    diverged: bool
    divergence: str | None
    end_reason: str
    wall_seconds: float
    parameters: int | None = None
    non_embedding_parameters: int | None = None
    log: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return strict_json(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise UserError(f"unknown run record field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Summary:
    """Everything `summary.json` holds for one subcommand run."""

    experiment: str
    settings: dict[str, Any]
    corpus: dict[str, Any] | None
    environment: dict[str, Any]
    runs: list[RunRecord] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "runs"}
        data["runs"] = [r.to_dict() for r in self.runs]
        return strict_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Summary":
        if data.get("schema_version") != SCHEMA_VERSION:
            raise UserError(f"summary schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")
        fields = dict(data)
        fields["runs"] = [RunRecord.from_dict(r) for r in data.get("runs", [])]
        return cls(**fields)

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write `out_dir/summary.json` atomically (strict JSON, indented); return its path."""
        path = Path(out_dir) / SUMMARY_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return path


def load_summary(path: str | os.PathLike[str]) -> Summary:
    """Read a summary.json (or the one inside a directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_NAME
    return Summary.from_dict(read_json_file(p, "summary"))


def strict_json(value: Any) -> Any:
    """A copy with NaN/inf floats replaced by None (strict JSON), tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
