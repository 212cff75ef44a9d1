"""Small pieces the campaign's steps share: autocast, timing one call, the AdamW they train with,
the allocator's counters (CUDA) or their absence (CPU, meta), and one-line errors."""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext

import torch

from model.fast_optim import FastAdamW

OPTIMIZER_KWARGS = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def autocast(device: torch.device, dtype: str):
    """bf16 autocast with float32 master weights for dtype "bfloat16" (the trainer's way), else none."""
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of `fn`: CUDA events around it on CUDA (then synchronized), else
    perf_counter."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # ms -> s
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def wall(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call of `fn`, synchronized (for a first step that compiles)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def is_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError a library raised for the same cause."""
    text = str(exc)
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "ALLOC_FAILED" in text))


def fused_available() -> bool:
    """torch's fused AdamW kernel (CUDA since torch 2.0, CPU since 2.4)."""
    return hasattr(torch, "_fused_adamw_")


def adamw(params, implementation: str | None = None) -> FastAdamW:
    """model.FastAdamW (the project's AdamW update), fused where torch has the kernel."""
    impl = implementation or ("fused" if fused_available() else "foreach")
    return FastAdamW(params, implementation=impl, **OPTIMIZER_KWARGS)


def first_line(exc: BaseException) -> str:
    """`Type: first line of the message (at file:line)`: enough to rerun and find a failed step."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {message[:300]}{where}"


class Counters:
    """torch.cuda's allocator counters of one device, in bytes. `requested` (the bytes asked for,
    before the allocator rounds each block up to a multiple of 512) is None where torch does not
    report it; `clear_workspaces` frees the cuBLAS workspaces torch holds and returns their bytes
    (None where torch cannot clear them)."""

    available = True

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def cleanup(self) -> None:
        """Free what earlier work left: garbage, cuBLAS workspaces, cached blocks; reset the peaks."""
        gc.collect()
        self.sync()
        self.clear_workspaces()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)

    def _stat(self, key: str) -> int | None:
        value = torch.cuda.memory_stats(self.device).get(key)
        return None if value is None else int(value)

    def allocated(self) -> int:
        return int(torch.cuda.memory_allocated(self.device))

    def requested(self) -> int | None:
        return self._stat("requested_bytes.all.current")

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peaks(self) -> tuple[int, int | None, int]:
        """(max allocated, max requested or None, max reserved) since the last reset."""
        return (int(torch.cuda.max_memory_allocated(self.device)), self._stat("requested_bytes.all.peak"),
                int(torch.cuda.max_memory_reserved(self.device)))

    def clear_workspaces(self) -> int | None:
        clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear is None:
            return None
        self.sync()
        before = self.allocated()
        clear()
        self.sync()
        return before - self.allocated()

    def free_bytes(self) -> int:
        return int(torch.cuda.mem_get_info(self.device)[0])


class NoCounters:
    """The CPU and meta devices: no allocator counters (every reading None)."""

    available = False

    def sync(self) -> None:
        pass

    def cleanup(self) -> None:
        gc.collect()

    def allocated(self) -> None:
        return None

    def requested(self) -> None:
        return None

    def reset_peak(self) -> None:
        pass

    def peaks(self) -> tuple[None, None, None]:
        return None, None, None

    def clear_workspaces(self) -> None:
        return None

    def free_bytes(self) -> None:
        return None


def counters_for(device: torch.device) -> Counters | NoCounters:
    return Counters(device) if device.type == "cuda" else NoCounters()


class OverBudget(Exception):
    """A step ran past its wall-clock budget (raised between its phases, never inside a kernel)."""


class Deadline:
    """A step's wall-clock budget: `left()` seconds remain; `check(phase)` raises OverBudget once
    they are spent (call it between phases)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.budget, self.clock = seconds, clock
        self.end = clock() + seconds

    def left(self) -> float:
        return self.end - self.clock()

    def check(self, phase: str) -> None:
        if self.left() <= 0:
            raise OverBudget(f"over its {self.budget:.0f} s budget before {phase}")
