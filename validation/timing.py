"""Wall-clock training steps (CPU and CUDA), throughput, MFU, and the hardware description.

A timed step is model.trainer.training_step (forward + loss + backward + clip + AdamW step +
zero_grad, the trainer's loop), with no instrument attached, after one untimed warm-up step. On
CUDA each step is timed with CUDA events; on CPU with time.perf_counter. Model FLOPs for throughput and MFU are accounting.train_step_flops (forward +
backward matmuls, no sdpa recompute, no optimizer), PaLM's definition.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable

import torch

from model.trainer import training_step


def mfu(model_flops_per_step: int, seconds_per_step: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilization = (model FLOPs / step time) / peak FLOP/s."""
    if not seconds_per_step > 0 or not peak_flops_per_s > 0:
        raise ValueError("step time and peak FLOP/s must be positive")
    return model_flops_per_step / seconds_per_step / peak_flops_per_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model, optimizer, x, y, autocast) -> None:
    loss, _ = training_step(model, optimizer, x, y, autocast=autocast, max_norm=1.0)
    del loss


def time_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, *,
               autocast: Callable = contextlib.nullcontext, optimizer: str = "reference") -> list[float]:
    """Seconds of each of `steps` timed training steps (after one warm-up step)."""
    from validation.memtrack import make_optimizer

    device = x.device
    opt = make_optimizer(model, optimizer)
    _step(model, opt, x, y, autocast)  # warm-up: kernels chosen, allocator and AdamW state populated
    _sync(device)
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            _step(model, opt, x, y, autocast)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)  # ms -> s
        else:
            t0 = time.perf_counter()
            _step(model, opt, x, y, autocast)
            times.append(time.perf_counter() - t0)
    return times


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str) -> dict:
    """Where the measurement ran: device, its name (GPU or CPU model), torch, CUDA, python,
    CPU count and the 1-minute load average (timings on a shared machine are noisy)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    return {
        "device": dev.type,
        "name": torch.cuda.get_device_name(dev) if cuda else _cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
    }
