"""`TrainConfig`: the optimizer, schedule and loop settings of one training run (no torch import)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from accounting.atomic import atomic_write_text
from accounting.json_io import read_json_file

DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("reference", "foreach", "fused")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run. Counts are optimizer steps; batch_size is sequences per step
    (per process under DDP); learning rates are per step of AdamW.

    - cosine_cycle_iters: end of the cosine decay (None = `steps`); min_lr afterwards.
    - grad_clip: max global L2 gradient norm (0 disables clipping).
    - eval_interval / checkpoint_interval / log_interval: every N steps (0 = only at the end for
      eval and checkpoint; log_interval must be >= 1).
    - dtype: "float32", or "bfloat16" = bf16 autocast for the forward pass with float32 master
      weights, gradients and optimizer state.
    - val_fraction: tail fraction of the training tokens held out when no validation data is given.
    - optimizer: "reference" (model.optim.AdamW, a loop over tensors), "foreach" or "fused"
      (model.fast_optim.FastAdamW: the same update over whole parameter lists); checkpoints are
      interchangeable between them.
    - activation_checkpointing: recompute each block's forward in backward (less memory, about
      one more forward of the blocks per step; TransformerLM.activation_checkpointing).
    """

    batch_size: int = 32
    steps: int = 1_000
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    cosine_cycle_iters: int | None = None
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_batches: int = 10
    checkpoint_interval: int = 100
    log_interval: int = 10
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    optimizer: str = "reference"
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("batch_size", "steps", "eval_batches", "log_interval"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_iters", "eval_interval", "checkpoint_interval", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.cosine_cycle_iters is not None:
            _check_int("cosine_cycle_iters", self.cosine_cycle_iters, minimum=0)
        for name in ("max_lr", "min_lr", "eps", "weight_decay", "grad_clip"):
            _check_number(name, getattr(self, name))
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed max_lr ({self.max_lr})")
        if len(self.betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        for name in ("compile", "activation_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a non-empty string, got {self.device!r}")
        if not (_is_number(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")

    @property
    def cycle_iters(self) -> int:
        """cosine_cycle_iters, defaulting to `steps`."""
        return self.steps if self.cosine_cycle_iters is None else self.cosine_cycle_iters

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A validated copy with some fields changed; unknown fields raise ValueError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown train config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"train config must be a JSON object, got {type(data).__name__}")
        return cls().replace(**data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TrainConfig":
        """Read a JSON file; a missing file, bad JSON or a bad field raise one-line errors."""
        return cls.from_dict(read_json_file(path, "train config"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as indented JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_number(name: str, value: Any) -> None:
    if not _is_number(value) or not value >= 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
