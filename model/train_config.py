"""`TrainConfig`: the optimizer, schedule and loop settings of one training run (no torch import)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from accounting.atomic import atomic_write_text
from accounting.config import config_field
from accounting.conventions import OPTIMIZERS, TRAINING_DTYPES
from accounting.errors import UserError
from accounting.json_io import read_json_file
from accounting.layout import RUNNABLE_STRATEGIES



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
    - threads: torch's CPU threads while the run trains (process-wide, restored afterwards);
      None = model.trainer.default_threads(): half the CPUs this process may use, shared among the
      node's torchrun ranks, at least 1 (torch's own default takes every core, which
      oversubscribes a busy machine).
    - parallel, tensor_parallel: the layout under torchrun (accounting.layout, model/parallelize.py):
      "ddp", "zero2" or "zero3" over the N / K data-parallel ranks, K = tensor_parallel ranks
      splitting the attention and FFN projections. batch_size is per data-parallel rank: the
      global batch is batch_size x N / K.
    """

    batch_size: int = config_field(
        32, "sequences per optimizer step PER DATA-PARALLEL RANK: under torchrun the global batch "
            "is batch_size x world size / tensor-parallel degree")
    steps: int = config_field(1_000, "optimizer steps to train (the run's total)")
    max_lr: float = config_field(1e-3, "peak learning rate (after warmup)")
    min_lr: float = config_field(1e-4, "learning rate at and after the end of the cosine decay")
    warmup_iters: int = config_field(100, "steps of linear warmup from 0 to max_lr")
    cosine_cycle_iters: int | None = config_field(
        None, "step where the cosine decay ends (default: steps)", type=int)
    betas: tuple[float, float] = config_field((0.9, 0.95), "AdamW (beta1, beta2)")
    eps: float = config_field(1e-8, "AdamW epsilon")
    weight_decay: float = config_field(0.1, "AdamW decoupled weight decay")
    grad_clip: float = config_field(1.0, "max global L2 gradient norm (0 disables clipping)")
    eval_interval: int = config_field(100, "steps between validation passes (0 = at the end only)")
    eval_batches: int = config_field(10, "batches per validation pass")
    checkpoint_interval: int = config_field(100, "steps between checkpoints (0 = at the end only)")
    log_interval: int = config_field(10, "steps between logged step events")
    device: str = config_field("cpu", "cpu, cuda, cuda:1, mps")
    dtype: str = config_field("float32", "float32, or bfloat16 autocast with float32 master weights",
                              choices=TRAINING_DTYPES)
    compile: bool = config_field(False, "torch.compile the model and the loss")
    seed: int = config_field(0, "seed of the initialisation and the batch sampler")
    val_fraction: float = config_field(
        0.1, "tail fraction of the training tokens held out when no validation data is given")
    optimizer: str = config_field("reference", "AdamW implementation (the same update)",
                                  choices=OPTIMIZERS)
    activation_checkpointing: bool = config_field(
        False, "recompute each block's forward in backward (less memory, ~1 more forward)")
    threads: int | None = config_field(
        None, "torch CPU threads while training (default: half the CPUs this process may use, "
        "divided among the node's torchrun ranks, at least 1)", type=int)
    parallel: str = config_field(
        "ddp", "under torchrun: ddp (DistributedDataParallel), zero2 / zero3 (FSDP2 fully_shard, "
               "reshard_after_forward False / True) over the data-parallel ranks",
        choices=RUNNABLE_STRATEGIES)
    tensor_parallel: int = config_field(
        1, "under torchrun: tensor-parallel degree K (Megatron split of the attention and FFN "
           "projections); must divide the world size, the heads, the key/value heads and d_ff")

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("batch_size", "steps", "eval_batches", "log_interval", "tensor_parallel"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_iters", "eval_interval", "checkpoint_interval", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.cosine_cycle_iters is not None:
            _check_int("cosine_cycle_iters", self.cosine_cycle_iters, minimum=0)
        if self.threads is not None:
            _check_int("threads", self.threads, minimum=1)
        for name in ("max_lr", "min_lr", "eps", "weight_decay", "grad_clip"):
            _check_number(name, getattr(self, name))
        if self.min_lr > self.max_lr:
            raise UserError(f"min_lr ({self.min_lr}) must not exceed max_lr ({self.max_lr})")
        if len(self.betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in self.betas):
            raise UserError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.dtype not in TRAINING_DTYPES:
            raise UserError(f"dtype must be one of {', '.join(TRAINING_DTYPES)}; got {self.dtype!r}")
        if self.parallel not in RUNNABLE_STRATEGIES:
            raise UserError(f"parallel must be one of {', '.join(RUNNABLE_STRATEGIES)}; "
                            f"got {self.parallel!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        for name in ("compile", "activation_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not self.device:
            raise UserError(f"device must be a non-empty string, got {self.device!r}")
        if not (_is_number(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")

    @property
    def cycle_iters(self) -> int:
        """cosine_cycle_iters, defaulting to `steps`."""
        return self.steps if self.cosine_cycle_iters is None else self.cosine_cycle_iters

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A validated copy with some fields changed; unknown fields raise ValueError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UserError(f"unknown train config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise UserError(f"train config must be a JSON object, got {type(data).__name__}")
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
        raise UserError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{name} must be {bound}, got {value}")


def _check_number(name: str, value: Any) -> None:
    if not _is_number(value) or not value >= 0 or value != value or value == float("inf"):
        raise UserError(f"{name} must be a finite number >= 0, got {value!r}")
