"""A real training step's memory on the allocator, beside the accounting's memory timeline, with the
residuals measured in the same step; then a few timed steps.

The step is the trainer's (model.trainer.training_step): float32 master weights, bf16 autocast for
dtype "bfloat16", optional per-block activation checkpointing, model.FastAdamW (fused where
available), our cross_entropy, clipping at norm 1, zero_grad(set_to_none=True). Procedure (bytes
are torch.cuda.memory_allocated minus the baseline taken after a cleanup, before the batch exists):
  1. build the model and optimizer, run one step (AdamW state and cuBLAS workspaces now exist);
     read `start` (weights + RoPE tables + batch + AdamW state + workspaces);
  2. reset the peak counters; run one steady-state step, reading the allocator as the loss starts
     (`end_of_forward`: the logits alive) and the peaks at its end: allocated (`peak`), requested
     and reserved;
  3. clear cuBLAS workspaces: the drop in allocated bytes is their size.
Symbolic: accounting.memory_timeline of the same step (its start, the end of its forward, its
peak). Residuals, each measured: cuBLAS workspaces (3) and allocator rounding at the peak (max
allocated - max requested, both since the reset: every block is rounded up to a multiple of 512
bytes). The CUDA context lies outside the allocator (environment step).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

import accounting as acc
from accounting.config import ModelConfig
from model.trainer import training_step
from model.transformer import TransformerLM
from validation.campaign.common import Counters, NoCounters, adamw, autocast, sync, timed
from validation.campaign.targets import PEAK, PEAK_AFTER_RESIDUALS, STEP_MEMORY, STEP_TIME
from validation.reasons import ALLOCATOR_ROUNDING, CHECKPOINT_FORWARD, CUBLAS_WORKSPACE, CUDA_RESIDUALS
from validation.rows import ComparisonRow
from validation.run import batch

MAX_NORM = 1.0


@dataclass(frozen=True)
class Reading:
    """Allocator bytes above the baseline (None: no counters on this device)."""

    start: int | None            # after step 1 (no gradients: zero_grad set them to None)
    end_of_forward: int | None   # step 2, as the loss starts
    peak: int | None             # max allocated over step 2
    rounding_at_peak: int | None
    workspaces: int | None
    reserved_peak: int | None    # max reserved over step 2 (absolute)


@dataclass(frozen=True)
class Predicted:
    """The accounting's timeline of the step: bytes at its start, at the end of its forward, at
    its peak (and the peak event's name)."""

    start: int
    end_of_forward: int
    peak: int
    peak_event: str


def predicted(cfg: ModelConfig, batch_size: int, context_length: int, dtype: str, checkpointing: bool,
              optimizer: str) -> Predicted:
    """accounting.memory_timeline of the trainer's step (`optimizer` the AdamW implementation)."""
    tl = acc.memory_timeline(cfg, batch_size, context_length, dtype, optimizer, checkpointing)
    return Predicted(tl.events[0].total, tl.phase_end("forward").total, tl.peak_bytes, tl.peak.name)


def read_step(model: torch.nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, dtype: str,
              counters: Counters | NoCounters, base: tuple[int | None, int | None]) -> Reading:
    """Steps 1-3 of the module docstring on a built model (`base`: allocated and requested bytes
    before the batch was made)."""
    device = x.device
    a0, q0 = base
    cast = lambda: autocast(device, dtype)  # noqa: E731

    def above(value):
        return None if value is None or a0 is None else value - a0

    loss, _ = training_step(model, optimizer, x, y, autocast=cast, max_norm=MAX_NORM)
    del loss
    counters.sync()
    start = above(counters.allocated())
    counters.reset_peak()
    seen = {}

    def mark(phase: str) -> None:
        if phase == "loss":
            counters.sync()
            seen["end_of_forward"] = above(counters.allocated())

    loss, _ = training_step(model, optimizer, x, y, autocast=cast, max_norm=MAX_NORM, mark=mark)
    del loss
    counters.sync()
    peak_a, peak_q, peak_r = counters.peaks()
    rounding = None
    if None not in (peak_a, peak_q, a0, q0):
        rounding = (peak_a - peak_q) - (a0 - q0)
    return Reading(start, seen.get("end_of_forward"), above(peak_a), rounding,
                   counters.clear_workspaces(), peak_r)


def memory_rows(reading: Reading, p: Predicted, checkpointing: bool, convention: str) -> list[ComparisonRow]:
    """The probe's rows: each allocator reading beside the timeline, the residuals, and the
    target's comparison (peak vs the timeline's peak + measured residuals)."""
    r = reading
    sized = []
    if r.workspaces is not None:
        sized.append(f"cuBLAS workspaces {r.workspaces:,} bytes")
    if r.rounding_at_peak is not None:
        sized.append(f"allocator rounding {r.rounding_at_peak:,} bytes")
    measured_part = ("measured in this step: " + ", ".join(sized)) if sized else "residuals not measured"
    residuals = (r.workspaces or 0) + (r.rounding_at_peak or 0)
    forward_reason = f"{CUBLAS_WORKSPACE}; {ALLOCATOR_ROUNDING}" + (f"; {CHECKPOINT_FORWARD}"
                                                                     if checkpointing else "")

    def row(component, symbolic, measured, reason):
        differs = symbolic is not None and measured is not None and symbolic != measured
        return ComparisonRow(STEP_MEMORY, component, "bytes", symbolic, measured, convention,
                             reason if differs or symbolic is None else "")

    return [
        row("start of the step (weights, tables, batch, AdamW state)", p.start, r.start,
            f"{CUBLAS_WORKSPACE} ({measured_part}); {ALLOCATOR_ROUNDING}"),
        row("end of the forward (logits alive)", p.end_of_forward, r.end_of_forward, forward_reason),
        row("cuBLAS workspaces", None, r.workspaces,
            CUBLAS_WORKSPACE + " (freed and counted after the step)"),
        row("allocator rounding at the peak", None, r.rounding_at_peak,
            ALLOCATOR_ROUNDING + " (max allocated - max requested)"),
        row(PEAK, p.peak, r.peak, f"{measured_part}; {CUDA_RESIDUALS}"),
        row(PEAK_AFTER_RESIDUALS, None if r.peak is None else p.peak + residuals, r.peak,
            ("symbolic = the timeline's peak + the residuals " + measured_part if sized
             else "symbolic = the timeline's peak (no residual measured on this device)")
            + f"; {CUDA_RESIDUALS}"),
        row("peak reserved", None, r.reserved_peak,
            "the caching allocator reserves whole segments and keeps freed blocks (absolute bytes)"),
    ]


def probe(cfg: ModelConfig, batch_size: int, context_length: int, dtype: str, checkpointing: bool,
          device: torch.device, counters: Counters | NoCounters, *, timed_steps: int = 3,
          gpu=None, deadline=None) -> tuple[list[ComparisonRow], list[str]]:
    """Build the model on `device`, read one step's memory (module docstring), then time up to
    `timed_steps` steps (fewer when `deadline` runs short). Returns (rows, notes)."""
    counters.cleanup()
    base = (counters.allocated(), counters.requested())
    x, y = batch(cfg, batch_size, context_length, str(device))
    torch.manual_seed(0)
    model = TransformerLM(cfg, device=device, activation_checkpointing=checkpointing)
    optimizer = adamw(model.parameters())
    reading = read_step(model, optimizer, x, y, dtype, counters, base)
    expected = predicted(cfg, batch_size, context_length, dtype, checkpointing, optimizer.implementation)
    mode = (f"B={batch_size} T={context_length}, float32 master weights"
            + (", bf16 autocast" if dtype == "bfloat16" else "") + f", attention {cfg.attention}"
            + (", activation checkpointing" if checkpointing else "")
            + f", model.FastAdamW({optimizer.implementation}), clip at {MAX_NORM}")
    convention = (f"{mode}; allocator bytes above the baseline (before the batch); symbolic = "
                  f"accounting.memory_timeline of the same step (peak at '{expected.peak_event}')")
    rows = memory_rows(reading, expected, checkpointing, convention)
    notes = [] if counters.available else [f"training step memory: no allocator counters on {device.type}"]
    if timed_steps and (deadline is None or deadline.left() > 5):
        rows += _time_steps(model, optimizer, x, y, dtype, cfg, timed_steps, gpu, mode, deadline)
    return rows, notes


def _time_steps(model, optimizer, x, y, dtype, cfg, steps, gpu, mode, deadline) -> list[ComparisonRow]:
    """The trainer's steps, timed after the memory step."""
    device = x.device

    def step():
        training_step(model, optimizer, x, y, autocast=lambda: autocast(device, dtype), max_norm=MAX_NORM)

    sync(device)
    seconds = []
    for _ in range(steps):
        if seconds and deadline is not None and deadline.left() < 2:
            break
        seconds.append(timed(step, device))
    B, T = x.shape
    median = statistics.median(seconds)
    flops = acc.train_step_flops(cfg, B, T)
    conv = f"{mode}; median of {len(seconds)} steps after the memory step"
    rows = [ComparisonRow(STEP_TIME, "median step", "seconds", None, median, conv,
                          f"min {min(seconds):.4g} s, max {max(seconds):.4g} s"),
            ComparisonRow(STEP_TIME, "tokens/s", "tokens/s", None, B * T / median, conv)]
    if gpu is not None:
        from accounting.hardware import matmul_dtype

        kind = matmul_dtype(dtype, torch.backends.cuda.matmul.allow_tf32)
        rows.append(ComparisonRow(STEP_TIME, "MFU vs the table's dense peak", "ratio", None,
                                  flops / median / gpu.peak(kind), conv,
                                  f"accounting.train_step_flops / step / {gpu.name} {kind} peak "
                                  "(checkpointing's recompute is not model FLOPs)"))
    return rows
