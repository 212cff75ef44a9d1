"""How one training step is spread over GPUs: `Layout(world_size, strategy, tensor_parallel)`.

Imports neither torch nor sympy: the trainer, the validation, the report and the explorer share it.

- `world_size` N: processes (GPUs), = data-parallel ranks x tensor-parallel ranks.
- `tensor_parallel` K: Megatron's split of the attention and FFN projections over K ranks (the
  query/key/value and W1/W3 projections column-wise, the output projection and W2 row-wise); K
  must divide the heads h, the key/value heads h_kv and d_ff. The embedding, the norms and the LM
  head stay replicated over the K ranks.
- `strategy`, over the N / K data-parallel ranks:
    "ddp":   every rank holds the whole (TP-local) model, gradients all-reduced in buckets;
    "zero1": optimizer state sharded (accounted only: no trainer runs it);
    "zero2": FSDP2 `fully_shard(reshard_after_forward=False)`: parameters, gradients and optimizer
             state sharded; parameters gathered once per step and kept until the backward;
    "zero3": FSDP2 `fully_shard(reshard_after_forward=True)`: as zero2, but parameters are freed
             after each module's forward and gathered again in the backward.
The batch of a step is the global batch B = per-rank batch x data-parallel ranks (the ranks of one
tensor-parallel group read the same sequences).
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.config import ModelConfig
from accounting.errors import UserError

STRATEGIES: tuple[str, ...] = ("ddp", "zero1", "zero2", "zero3")
"""Data-parallel strategies the accounting knows."""
RUNNABLE_STRATEGIES: tuple[str, ...] = ("ddp", "zero2", "zero3")
"""Strategies the trainer and the validation run (ZeRO-1 is accounted only)."""


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Layout:
    """N = `world_size` processes: `strategy` over N / K data-parallel ranks x `tensor_parallel` K."""

    world_size: int = 1
    strategy: str = "ddp"
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        _positive_int("world size", self.world_size)
        _positive_int("tensor-parallel degree", self.tensor_parallel)
        if self.strategy not in STRATEGIES:
            raise UserError(f"parallel strategy must be one of {', '.join(STRATEGIES)}; "
                            f"got {self.strategy!r}")
        if self.world_size % self.tensor_parallel:
            raise UserError(f"tensor-parallel degree {self.tensor_parallel} must divide the world "
                            f"size {self.world_size}")

    @property
    def data_parallel(self) -> int:
        """Data-parallel ranks N / K (each holds a different slice of the global batch)."""
        return self.world_size // self.tensor_parallel

    @property
    def sharded(self) -> bool:
        """Parameters are DTensors (FSDP2 and/or tensor parallelism), not plain tensors."""
        return self.strategy in ("zero2", "zero3") or self.tensor_parallel > 1

    def check_model(self, cfg: ModelConfig) -> None:
        """UserError unless K divides the heads, the key/value heads and d_ff."""
        k = self.tensor_parallel
        for what, size in (("num_heads", cfg.num_heads), ("the key/value heads (num_kv_heads)",
                                                          cfg.kv_heads), ("d_ff", cfg.d_ff)):
            if size % k:
                raise UserError(f"tensor-parallel degree {k} must divide {what} ({size}): each "
                                f"rank holds whole heads and an equal share of the FFN")

    def check_runnable(self) -> None:
        """UserError for a layout the trainer and the validation cannot run (ZeRO-1; DDP, which
        takes no DTensors, with tensor parallelism over more than one data-parallel rank)."""
        if self.strategy not in RUNNABLE_STRATEGIES:
            raise UserError(f"{self.strategy} is accounted only; run {', '.join(RUNNABLE_STRATEGIES)}")
        if self.strategy == "ddp" and self.tensor_parallel > 1 and self.data_parallel > 1:
            raise UserError("ddp with tensor parallelism needs one data-parallel rank (world size = "
                            "the tensor-parallel degree); for a 2-D mesh use zero2 or zero3")

    def per_rank_batch(self, global_batch: int) -> int:
        """Sequences per data-parallel rank; UserError unless the ranks divide the batch."""
        _positive_int("batch size", global_batch)
        if global_batch % self.data_parallel:
            raise UserError(f"the global batch {global_batch} must be a multiple of the "
                            f"{self.data_parallel} data-parallel ranks (world size "
                            f"{self.world_size} / tensor-parallel {self.tensor_parallel})")
        return global_batch // self.data_parallel

    def describe(self) -> str:
        """'zero3 over 2 data-parallel ranks x tensor-parallel 2 (4 processes)'."""
        tp = f" x tensor-parallel {self.tensor_parallel}" if self.tensor_parallel > 1 else ""
        return (f"{self.strategy} over {self.data_parallel} data-parallel rank"
                f"{'s' if self.data_parallel != 1 else ''}{tp} ({self.world_size} process"
                f"{'es' if self.world_size != 1 else ''})")
