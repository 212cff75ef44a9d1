"""A real training step's memory on the allocator, beside the accounting's peak, with the residuals
measured in the same step; then a few timed steps.

The step is the trainer's: float32 master weights, bf16 autocast for dtype "bfloat16", optional
per-block activation checkpointing, model.FastAdamW (fused where available), our cross_entropy.
Procedure (bytes are torch.cuda.memory_allocated minus the baseline taken after a cleanup):
  1. build the model and optimizer, run one step (AdamW state and cuBLAS workspaces now exist),
     zero_grad(set_to_none=False): gradients stay allocated, as the accounting's peak assumes;
     read `fixed` (weights + gradients + AdamW state + workspaces);
  2. reset the peak counters; forward + loss; read `end_of_forward`;
  3. backward + AdamW step; read the peaks: allocated (`peak`), requested and reserved;
  4. clear cuBLAS workspaces: the drop in allocated bytes is their size.
Residuals, each measured: cuBLAS workspaces (4), allocator rounding at the peak (max allocated -
max requested, both since the reset: every block is rounded up to a multiple of 512 bytes), and
the transient above the end of the forward (peak - end_of_forward: the loss's (B, T, V) tensors,
gradient buffers). The CUDA context lies outside the allocator (environment step).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

import accounting as acc
from accounting.config import ModelConfig
from model.loss import cross_entropy
from model.transformer import TransformerLM
from validation.campaign.common import Counters, NoCounters, adamw, autocast, sync, timed
from validation.campaign.targets import PEAK, PEAK_AFTER_RESIDUALS, STEP_MEMORY, STEP_TIME
from validation.reasons import ALLOCATOR_ROUNDING, CUBLAS_WORKSPACE, LOGITS_UPCAST, TEMPORARIES
from validation.rows import ComparisonRow
from validation.run import batch

AUTOCAST = ("bf16 autocast casts per op; the accounting's bf16 activations are those of the model run "
            "in pure bf16 (validation.measure checks those exactly)")
CHECKPOINT_COPIES = ("with checkpointing each block's bf16 weight copies are made again in its "
                     "recompute and freed with it; the accounting keeps 2 bytes per parameter throughout")
HELD_LOGITS = ("the (B, T, V) logits, held by the training loop until its step ends (autograd does "
               "not save them, so they are no activation)")


@dataclass(frozen=True)
class Reading:
    """Allocator bytes above the baseline (None: no counters on this device)."""

    fixed: int | None            # after step 1, gradients kept
    end_of_forward: int | None
    peak: int | None             # max allocated over step 2
    rounding_at_peak: int | None
    workspaces: int | None
    reserved_peak: int | None    # max reserved over step 2 (absolute)


def predicted(cfg: ModelConfig, batch_size: int, context_length: int, dtype: str,
              checkpointing: bool) -> tuple[int, int]:
    """(weights + gradients + AdamW state, peak) by the accounting, in bytes; with checkpointing
    the activations are accounting.checkpointed_activation_bytes (as benchmarks/bench_training)."""
    rows = {r.name: r.value for r in acc.memory_rows(cfg, batch_size, context_length, dtype)}
    fixed = rows["weights"] + rows["gradients"] + rows["optimizer_state"]
    peak = sum(rows.values())
    if checkpointing:
        peak += (acc.checkpointed_activation_bytes(cfg, batch_size, context_length, dtype=dtype)
                 - rows["activations"])
    return fixed, peak


def read_step(model: torch.nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, dtype: str,
              counters: Counters | NoCounters, base: tuple[int | None, int | None]) -> Reading:
    """Steps 1-4 of the module docstring on a built model (`base`: allocated and requested bytes
    before it was built)."""
    device = x.device
    a0, q0 = base

    def above(value):
        return None if value is None or a0 is None else value - a0

    with autocast(device, dtype):
        logits = model(x)
    cross_entropy(logits, y).backward()
    del logits
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    counters.sync()
    fixed = above(counters.allocated())
    counters.reset_peak()
    with autocast(device, dtype):
        logits = model(x)  # (B, T, V)
    loss = cross_entropy(logits, y)
    counters.sync()
    end_of_forward = above(counters.allocated())
    loss.backward()
    del loss, logits
    optimizer.step()
    counters.sync()
    peak_a, peak_q, peak_r = counters.peaks()
    rounding = None
    if None not in (peak_a, peak_q, a0, q0):
        rounding = (peak_a - peak_q) - (a0 - q0)
    return Reading(fixed, end_of_forward, above(peak_a), rounding, counters.clear_workspaces(), peak_r)


def memory_rows(reading: Reading, fixed: int, peak: int, dtype: str, checkpointing: bool,
                convention: str) -> list[ComparisonRow]:
    """The probe's rows: each allocator reading beside the accounting, the residuals, and the
    target's comparison (peak vs predicted + measured residuals)."""
    r = reading
    at_forward = [HELD_LOGITS] + ([AUTOCAST] if dtype == "bfloat16" else []) \
        + ([CHECKPOINT_COPIES] if checkpointing else [])
    in_backward = [TEMPORARIES] + ([LOGITS_UPCAST] if dtype == "bfloat16" else [])
    sized = []
    if r.workspaces is not None:
        sized.append(f"cuBLAS workspaces {r.workspaces:,} bytes")
    if r.rounding_at_peak is not None:
        sized.append(f"allocator rounding {r.rounding_at_peak:,} bytes")
    measured_part = ("measured in this step: " + ", ".join(sized)) if sized else "residuals not measured"
    residuals = (r.workspaces or 0) + (r.rounding_at_peak or 0)
    transient = None if r.peak is None or r.end_of_forward is None else r.peak - r.end_of_forward

    def row(component, symbolic, measured, reason, conv=convention):
        differs = symbolic is not None and measured is not None and symbolic != measured
        return ComparisonRow(STEP_MEMORY, component, "bytes", symbolic, measured, conv,
                             reason if differs or symbolic is None else "")

    return [
        row("weights + gradients + AdamW state", fixed, r.fixed,
            f"{CUBLAS_WORKSPACE} ({measured_part}); {ALLOCATOR_ROUNDING}"),
        row("end of the forward (+ loss)", peak, r.end_of_forward,
            f"{measured_part}; not modelled: " + "; ".join(at_forward)),
        row("cuBLAS workspaces", None, r.workspaces,
            CUBLAS_WORKSPACE + " (freed and counted after the step)"),
        row("allocator rounding at the peak", None, r.rounding_at_peak,
            ALLOCATOR_ROUNDING + " (max allocated - max requested)"),
        row("transient above the end of the forward", None, transient, "; ".join(in_backward)),
        row(PEAK, peak, r.peak, f"{measured_part}; not modelled: " + "; ".join(at_forward + in_backward)),
        row(PEAK_AFTER_RESIDUALS, None if r.peak is None else peak + residuals, r.peak,
            ("symbolic = the accounting's peak + the residuals " + measured_part if sized
             else "symbolic = the accounting's peak (no residual measured on this device)")
            + "; what remains is not modelled: " + "; ".join(at_forward + in_backward)),
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
    torch.manual_seed(0)
    model = TransformerLM(cfg, device=device, activation_checkpointing=checkpointing)
    optimizer = adamw(model.parameters())
    x, y = batch(cfg, batch_size, context_length, str(device))
    reading = read_step(model, optimizer, x, y, dtype, counters, base)
    fixed, peak = predicted(cfg, batch_size, context_length, dtype, checkpointing)
    mode = (f"B={batch_size} T={context_length}, float32 master weights"
            + (", bf16 autocast" if dtype == "bfloat16" else "") + f", attention {cfg.attention}"
            + (", activation checkpointing" if checkpointing else "")
            + f", model.FastAdamW({optimizer.implementation})")
    convention = (f"{mode}; allocator bytes above the baseline, gradients kept allocated "
                  "(zero_grad(set_to_none=False)); symbolic = accounting.peak_memory_bytes"
                  + (" with checkpointed_activation_bytes" if checkpointing else ""))
    rows = memory_rows(reading, fixed, peak, dtype, checkpointing, convention)
    notes = [] if counters.available else [f"training step memory: no allocator counters on {device.type}"]
    if timed_steps and (deadline is None or deadline.left() > 5):
        rows += _time_steps(model, optimizer, x, y, dtype, cfg, timed_steps, gpu, mode, deadline)
    return rows, notes


def _time_steps(model, optimizer, x, y, dtype, cfg, steps, gpu, mode, deadline) -> list[ComparisonRow]:
    """Trainer-like steps (zero_grad(set_to_none=True)), timed after the memory step."""
    device = x.device

    def step():
        with autocast(device, dtype):
            logits = model(x)
        loss = cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

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
