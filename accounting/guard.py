"""Will the step fit? The predicted peak (accounting.timeline) against the memory a device has free.

`check_fits` returns a `FitCheck` with a one-line message naming both numbers and the largest batch
that fits; `require_fit` raises `InsufficientMemory` (a UserError, so every CLI of the project
reports it in one line and exits 2) when it does not. The CLIs call it before allocating anything
(model.guard measures the free memory: available RAM on CPU, free device memory on CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.format import fmt_bytes
from accounting.memory import largest_batch_size, peak_memory_bytes


class InsufficientMemory(UserError):
    """The predicted peak exceeds the free memory (the message is one line)."""


@dataclass(frozen=True)
class FitCheck:
    """`fits`: peak_bytes <= free_bytes. `largest_batch`: the largest B that fits the free memory
    (0: not even B = 1; None: not even the step's batch-independent memory)."""

    fits: bool
    peak_bytes: int
    free_bytes: int
    batch_size: int
    largest_batch: int | None
    where: str
    message: str


def check_fits(cfg: ModelConfig, batch_size: int, free_bytes: int, *, context_length: int | None = None,
               dtype: str = "float32", optimizer: str = "reference", checkpointing: bool = False,
               where: str = "the device", sdpa_backend: str = "fused",
               gradient_buckets: bool = False) -> FitCheck:
    """Compare the step's predicted peak with `free_bytes` (`where` names the memory, e.g. "cpu
    (available RAM)"; `sdpa_backend`: the kernel attention="sdpa" runs there, see
    accounting.timeline.memory_timeline; `gradient_buckets`: a DDP rank's step)."""
    step = dict(optimizer=optimizer, checkpointing=checkpointing, sdpa_backend=sdpa_backend,
                gradient_buckets=gradient_buckets)
    peak = peak_memory_bytes(cfg, batch_size, context_length, dtype, **step)
    try:
        largest = largest_batch_size(cfg, free_bytes, context_length, dtype,
                                     **step).batch_size if free_bytes > 0 else None
    except ValueError:
        largest = None
    fits = peak <= free_bytes
    fit_text = ("the largest batch that fits: none (the step's batch-independent memory alone does not)"
                if largest is None else "the largest batch that fits: none (not even B = 1)" if largest == 0
                else f"the largest batch that fits is {largest}")
    message = (f"the predicted peak of one training step, {fmt_bytes(peak)} ({peak:,} bytes) at batch size "
               f"{batch_size}, {'fits' if fits else 'exceeds'} the {fmt_bytes(free_bytes)} ({free_bytes:,} "
               f"bytes) free on {where}; {fit_text}")
    return FitCheck(fits, peak, free_bytes, batch_size, largest, where, message)


def require_fit(cfg: ModelConfig, batch_size: int, free_bytes: int, **kwargs) -> FitCheck:
    """check_fits, raising InsufficientMemory (message + "; --force runs anyway") when it does not fit."""
    check = check_fits(cfg, batch_size, free_bytes, **kwargs)
    if not check.fits:
        raise InsufficientMemory(check.message + "; --force runs anyway")
    return check
