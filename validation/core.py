"""`measure(cfg, ...)`: the real model run with instruments, every number beside the accounting's.

What runs, in order (progress(phase, fraction) is called at each):
  1. build: TransformerLM(cfg) on `device` with parameters in `dtype` (no autocast: the
     model runs in `dtype` throughout, RMSNorm internals and the loss in float32 as written);
  2. one instrumented step (validation.run): parameters, forward / backward / non-matmul FLOPs,
     saved-for-backward bytes per component, weights, gradients, AdamW state and step FLOPs;
  3. cpu / cuda only: `steps` timed steps after a warm-up (step time, tokens/s, model FLOP/s,
     and on CUDA the MFU against accounting's GPU table);
  4. cuda only: the allocator at each phase, the CUDA context, the cuBLAS workspace.
On the meta device only shapes exist: steps 1-2 take seconds even for GPT-2 XL; no timing.
"""

from __future__ import annotations

import dataclasses

import torch

from accounting.config import ModelConfig
from accounting.hardware import match_gpu, matmul_dtype
from accounting.errors import UserError
from validation.compare import comparison_rows
from validation.device_rows import cuda_memory_rows, timing_rows
from validation.reasons import UNEXPLAINED, RunContext
from validation.rows import Measurement
from validation.run import TORCH_DTYPES, Progress, batch, build, instrumented_step
from validation.timing import hardware, time_steps


def _check(device: str, batch_size: int, context_length: int, dtype: str, steps: int) -> torch.device:
    for name, value in (("batch_size", batch_size), ("context_length", context_length), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    if dtype not in TORCH_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {dtype!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use meta, cpu or cuda") from None
    if dev.type not in ("meta", "cpu", "cuda"):
        raise UserError(f"device must be meta, cpu or cuda, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA is not available on this machine; use --device cpu or meta")
    return dev


def measure(cfg: ModelConfig, *, device: str = "meta", batch_size: int = 1,
            context_length: int | None = None, dtype: str = "float32", steps: int = 1,
            progress: Progress | None = None) -> Measurement:
    """Measure one training step of `cfg` (B = `batch_size` sequences of T = `context_length`
    tokens, default cfg.context_length) on `device` ("meta" | "cpu" | "cuda[:n]") in `dtype`
    ("float32" | "bfloat16"); `steps` timed steps on cpu / cuda. Returns every row (units in each
    row) with the hardware, config and settings. A T above cfg.context_length lengthens the config
    (only the RoPE tables grow). Raises ValueError on bad settings."""
    T = cfg.context_length if context_length is None else context_length
    dev = _check(device, batch_size, T, dtype, steps)
    if T > cfg.context_length:
        cfg = cfg.replace(context_length=T)
    report = progress or (lambda phase, done: None)
    ctx = RunContext(dev.type, cfg.attention, dtype, cfg.dropout > 0)
    report("build model", 0.0)
    cuda_fixed = _cuda_fixed(dev) if dev.type == "cuda" else (0, 0)
    model = build(cfg, str(dev), dtype)
    x, y = batch(cfg, batch_size, T, str(dev))
    raw = instrumented_step(model, x, y, report)
    rows = comparison_rows(cfg, raw, batch_size, T, ctx)
    notes = _attribution_notes(raw)
    if dev.type != "meta":
        report("timing", 0.6)
        del model
        model = build(cfg, str(dev), dtype)
        seconds = time_steps(model, x, y, steps)
        gpu = match_gpu(torch.cuda.get_device_name(dev)) if dev.type == "cuda" else None
        peak = gpu.peak(matmul_dtype(dtype, torch.backends.cuda.matmul.allow_tf32)) if gpu else None
        rows += timing_rows(cfg, batch_size, T, seconds, peak, gpu.name if gpu else "")
        del model
    if dev.type == "cuda":
        from validation.cuda import memory_phases

        report("CUDA memory", 0.8)
        mem = memory_phases(lambda: build(cfg, str(dev), dtype), x, y, *cuda_fixed)
        rows += cuda_memory_rows(cfg, mem, batch_size, T, ctx)
    report("done", 1.0)
    settings = {"batch_size": batch_size, "context_length": T, "dtype": dtype, "steps": steps,
                "device": str(dev), "sdpa_backend": ctx.sdpa_backend if cfg.attention == "sdpa" else None,
                "precision": f"parameters, gradients, AdamW state and activations in {dtype} (no autocast)"}
    unexplained = [f"{r.quantity} / {r.component}" for r in rows if r.reason == UNEXPLAINED]
    if unexplained:
        notes.append("unexplained differences: " + ", ".join(unexplained))
    return Measurement(rows, hardware(str(dev)), dataclasses.asdict(cfg), settings, notes)


def _cuda_fixed(dev: torch.device) -> tuple[int, int]:
    """The CUDA context and cuBLAS workspace, measured before the model touches the GPU."""
    from validation.cuda import context_bytes, cublas_workspace_bytes

    return context_bytes(dev), cublas_workspace_bytes(dev)


def _attribution_notes(raw) -> list[str]:
    notes = []
    for phase, parts, total in (("forward", raw.forward_matmul, raw.flop_counter_forward),
                                ("backward", raw.backward_matmul, raw.flop_counter_backward)):
        if sum(parts.values()) != total:
            notes.append(f"{phase} matmul FLOPs per component sum to {sum(parts.values())}, "
                         f"FlopCounterMode counted {total}")
    return notes
