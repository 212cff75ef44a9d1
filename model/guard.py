"""The memory guard: refuse a training step whose predicted peak exceeds the device's free memory.

`free_memory_bytes(device)`: the memory a new allocation can use now: on CPU psutil's available
RAM, on CUDA torch.cuda.mem_get_info's free bytes (memory other processes hold is not free). The
prediction is accounting.timeline's peak of one eager step of model.trainer.training_step
(torch.compile, DDP's gradient buckets and allocator caching are not in it), so the guard is a
first line: a step that passes can still be killed, one that fails would have been.

Under torchrun every rank checks its own step at its per-rank batch: for DDP the step with its
gradient buckets (`gradient_buckets=True`, accounting.timeline), for the sharded layouts (ZeRO-2/3,
tensor parallelism) the one-device step, an upper bound. On CPU the ranks of a node (LOCAL_WORLD_SIZE) share one RAM, so each gets an equal
part of the available RAM; on CUDA each rank has its own GPU.
"""

from __future__ import annotations

import os

import torch

from accounting.config import ModelConfig
from accounting.guard import FitCheck, InsufficientMemory, require_fit

__all__ = ["InsufficientMemory", "free_memory_bytes", "guard_step"]


def free_memory_bytes(device: str | torch.device) -> int:
    """Bytes free for new tensors on `device` ("cpu" | "cuda[:n]"); ValueError for others."""
    dev = torch.device(device)
    if dev.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    raise ValueError(f"no free-memory measure for device {str(dev)!r}")


def local_ranks() -> int:
    """Processes of this run on this node (torchrun's LOCAL_WORLD_SIZE; 1 without torchrun)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    except ValueError:
        return 1


def describe(device: str | torch.device, ranks: int = 1) -> str:
    dev = torch.device(device)
    if dev.type != "cpu":
        return f"{dev} (free device memory)"
    return f"{dev} (available RAM{f' / {ranks} ranks on this node' if ranks > 1 else ''})"


def guard_step(cfg: ModelConfig, batch_size: int, device: str | torch.device, *, dtype: str = "float32",
               optimizer: str = "reference", checkpointing: bool = False,
               context_length: int | None = None, gradient_buckets: bool = False) -> FitCheck | None:
    """Raise InsufficientMemory unless the step's predicted peak fits the free memory of `device`;
    None (no check) on devices without a measure (meta, mps), an unknown device string or an
    absent CUDA (the caller's own checks report those)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        return None
    if dev.type not in ("cpu", "cuda") or dev.type == "cuda" and not torch.cuda.is_available():
        return None
    # torch's CPU flash kernel has no dropout: sdpa with dropout runs its math decomposition there
    math_sdpa = dev.type == "cpu" and cfg.attention == "sdpa" and cfg.dropout > 0
    ranks = local_ranks() if dev.type == "cpu" else 1  # a node's CPU ranks share its RAM
    return require_fit(cfg, batch_size, free_memory_bytes(dev) // ranks, context_length=context_length,
                       dtype=dtype, optimizer=optimizer, checkpointing=checkpointing,
                       where=describe(dev, ranks), sdpa_backend="math" if math_sdpa else "fused",
                       gradient_buckets=gradient_buckets)
