"""`measure(cfg, ...)`: the real model run with instruments, every number beside the accounting's.

What runs, in order (progress(phase, fraction) is called at each):
  1. build: TransformerLM(cfg) on `device` (validation.run: "float32"; "bfloat16", the
     trainer's autocast over a float32 model, on fake CPU tensors when device is "meta";
     "bfloat16-pure", a bf16 model without autocast);
  2. one instrumented step (validation.run): parameters, forward / backward / non-matmul FLOPs,
     saved-for-backward bytes per component, weights (and autocast's bf16 weight copies),
     gradients, AdamW state and step FLOPs;
  3. the memory timeline (validation.memtrack): MemTracker over one steady-state
     model.trainer.training_step with the chosen AdamW (`optimizer`) and `checkpointing`, beside
     accounting.timeline (not for "bfloat16-pure", which the trainer does not run);
  4. cpu / cuda only: `steps` timed training_steps after a warm-up (step time, tokens/s, model
     FLOP/s, and on CUDA the MFU against accounting's GPU table);
  5. cuda only: the allocator at each phase and over a steady-state step, the CUDA context, the
     cuBLAS workspace.
On the meta device only shapes exist: steps 1-3 take seconds even for GPT-2 XL; no timing.
"""

from __future__ import annotations

import dataclasses

import torch

from accounting.config import ModelConfig
from accounting.conventions import OPTIMIZERS
from accounting.errors import UserError
from accounting.hardware import match_gpu, matmul_dtype
from validation.compare import comparison_rows, timeline_rows
from validation.device_rows import cuda_memory_rows, timing_rows
from validation.memtrack import measure_timeline
from validation.reasons import UNEXPLAINED, RunContext
from validation.rows import Measurement
from validation.run import DTYPES, Progress, batch, build, instrumented_step, placement
from validation.timing import hardware, time_steps

PRECISION = {
    "float32": "parameters, gradients, AdamW state and activations in float32",
    "bfloat16": "torch.autocast(bfloat16) over float32 parameters, gradients and AdamW state (the trainer's)",
    "bfloat16-pure": "parameters, gradients, AdamW state and activations in bfloat16 (no autocast)",
}


def _check(device: str, batch_size: int, context_length: int, dtype: str, steps: int,
           optimizer: str = "reference") -> torch.device:
    for name, value in (("batch_size", batch_size), ("context_length", context_length), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    return measurable_device(device)


def measurable_device(device: str) -> torch.device:
    """`device` as a torch.device the instruments run on (meta, cpu, or an available cuda);
    UserError otherwise."""
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
            optimizer: str = "reference", checkpointing: bool = False, timeline: bool = True,
            progress: Progress | None = None) -> Measurement:
    """Measure one training step of `cfg` (B = `batch_size` sequences of T = `context_length`
    tokens, default cfg.context_length) on `device` ("meta" | "cpu" | "cuda[:n]") in `dtype`
    ("float32" | "bfloat16" = autocast | "bfloat16-pure"); `steps` timed steps on cpu / cuda;
    `optimizer` ("reference" | "foreach" | "fused") and `checkpointing` choose the training path
    of the memory timeline and the timed steps (timeline=False skips MemTracker: on meta it costs
    a few seconds at GPT-2 XL's size). Returns every row (units in each row) with the
    hardware, config and settings. A T above cfg.context_length lengthens the config (only the
    RoPE tables grow). Raises UserError on bad settings."""
    T = cfg.context_length if context_length is None else context_length
    dev = _check(device, batch_size, T, dtype, steps, optimizer)
    if T > cfg.context_length:
        cfg = cfg.replace(context_length=T)
    report = progress or (lambda phase, done: None)
    ctx = RunContext(dev.type, cfg.attention, dtype, optimizer, bool(checkpointing), cfg.dropout > 0)
    report("build model", 0.0)
    cuda_fixed = _cuda_fixed(dev) if dev.type == "cuda" else (0, 0)
    memtrack_peak = None
    with placement(str(dev), dtype) as where:
        model = build(cfg, where)
        x, y = batch(cfg, batch_size, T, where)
        raw = instrumented_step(model, x, y, report, autocast=where.autocast)
        rows = comparison_rows(cfg, raw, batch_size, T, ctx)
        del model
        if timeline and dtype != "bfloat16-pure":
            report("memory timeline", 0.55)
            model = build(cfg, where, checkpointing=checkpointing)
            timeline = measure_timeline(model, x, y, optimizer=optimizer, autocast=where.autocast,
                                        values=dev.type != "meta")
            rows += timeline_rows(cfg, timeline, batch_size, T, ctx)
            memtrack_peak = timeline.peak
            del model
    notes = _attribution_notes(raw)
    if dev.type != "meta":
        report("timing", 0.6)
        model = build(cfg, where, checkpointing=checkpointing)
        seconds = time_steps(model, x, y, steps, autocast=where.autocast, optimizer=optimizer)
        gpu = match_gpu(torch.cuda.get_device_name(dev)) if dev.type == "cuda" else None
        peak = gpu.peak(matmul_dtype(dtype, torch.backends.cuda.matmul.allow_tf32)) if gpu else None
        rows += timing_rows(cfg, batch_size, T, seconds, peak, gpu.name if gpu else "")
        del model
    if dev.type == "cuda":
        from validation.cuda import memory_phases

        report("CUDA memory", 0.8)
        mem = memory_phases(lambda: build(cfg, where, checkpointing=checkpointing), x, y, *cuda_fixed,
                            autocast=where.autocast, optimizer=optimizer)
        rows += cuda_memory_rows(cfg, mem, batch_size, T, ctx, memtrack_peak)
    report("done", 1.0)
    settings = {"batch_size": batch_size, "context_length": T, "dtype": dtype, "steps": steps,
                "device": str(dev), "sdpa_backend": ctx.sdpa_backend if cfg.attention == "sdpa" else None,
                "optimizer": optimizer, "activation_checkpointing": bool(checkpointing),
                "precision": PRECISION[dtype] + (" (fake CPU tensors: autocast has no meta backend)"
                                                 if ctx.fake else "")}
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
