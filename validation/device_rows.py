"""Rows of the real-device measurements: step time, throughput, MFU (CPU and CUDA) and the CUDA
allocator at each phase, beside the accounting's predictions where it makes one."""

from __future__ import annotations

import accounting as acc
from accounting.config import ModelConfig
from accounting.timeline import memory_timeline
from validation.reasons import CUBLAS_WORKSPACE, CUDA_CONTEXT, RunContext, cuda_memory_reason, reason_for
from validation.rows import ComparisonRow

MODEL_FLOPS = ("model FLOPs = accounting.train_step_flops (forward + backward matmuls; no recompute, "
               "no optimizer)")
TIMED = ("median of the timed steps (model.trainer.training_step: forward + loss + backward + clip + "
         "AdamW + zero_grad) after one warm-up step")


def timing_rows(cfg: ModelConfig, batch_size: int, context_length: int, seconds: list[float],
                peak_flops_per_s: float | None, peak_source: str = "") -> list[ComparisonRow]:
    """Step time, tokens/s, achieved model FLOP/s and (with a known peak) MFU."""
    import statistics

    step = statistics.median(seconds)
    flops = acc.train_step_flops(cfg, batch_size, context_length)
    rows = [
        ComparisonRow("step time", "total", "seconds", None, step, TIMED,
                      f"{len(seconds)} timed steps, min {min(seconds):.4g} s, max {max(seconds):.4g} s"),
        ComparisonRow("throughput", "tokens/s", "tokens/s", None, batch_size * context_length / step,
                      "B*T tokens per median step"),
        ComparisonRow("throughput", "model FLOP/s", "flop/s", None, flops / step, MODEL_FLOPS),
    ]
    if peak_flops_per_s:
        rows.append(ComparisonRow("MFU", "total", "ratio", None, flops / step / peak_flops_per_s,
                                  f"{MODEL_FLOPS}; / dense peak {peak_flops_per_s:.4g} FLOP/s "
                                  f"({peak_source})"))
    return rows


def cuda_memory_rows(cfg: ModelConfig, mem, batch_size: int, context_length: int,
                     ctx: RunContext, memtrack_peak: int | None = None) -> list[ComparisonRow]:
    """The allocator's bytes (validation.cuda.CudaMemory) beside the accounting: the first step's
    phases (weights, what forward + loss leave alive, gradients, AdamW state) and the steady-state
    step's peak, accounting.timeline's (the batch excluded: it exists before the baseline), alone
    and plus the residuals measured on this GPU: `memtrack_peak` (MemTracker's peak on CUDA, whose
    storages are rounded to 512-byte blocks) minus the timeline's is the rounding."""
    n = acc.total_parameters(cfg)
    pure = ctx.dtype == "bfloat16-pure"
    size = 2 if pure else 4
    predicted: dict[str, int | None] = {"after weights": size * n, "activations": None,
                                        "gradients": size * n,
                                        "optimizer state": acc.adamw_state_bytes(cfg, "bfloat16" if pure else "float32"),
                                        "peak": None, "reserved": None}
    tl = None
    if not pure:
        tl = memory_timeline(cfg, batch_size, context_length, ctx.dtype, ctx.optimizer, ctx.checkpointing,
                             ctx.sdpa_backend)
        batch = 16 * batch_size * context_length  # token ids and targets, int64, before the baseline
        predicted["activations"] = tl.phase_end("loss").total - tl.events[0].total
        predicted["peak"] = tl.peak_bytes - batch
    convention = ("bytes from torch.cuda.memory_allocated / max_memory_allocated above the baseline "
                  "(the batch allocated, the model not); peak over a steady-state training_step")
    rows = []
    for name, symbolic in predicted.items():
        measured = getattr(mem, name.replace("after ", "").replace(" ", "_"))
        reason = (cuda_memory_reason(name, ctx) if symbolic is None
                  else reason_for("CUDA memory", name, ctx, symbolic, measured))
        rows.append(ComparisonRow("CUDA memory", name, "bytes", symbolic, measured, convention, reason))
    if tl is not None and memtrack_peak is not None:
        rounding = memtrack_peak - tl.peak_bytes
        with_residuals = predicted["peak"] + rounding
        rows.append(ComparisonRow(
            "CUDA memory", "peak, timeline + residuals", "bytes", with_residuals, mem.peak,
            f"the timeline's peak + the 512-byte rounding measured by MemTracker on CUDA "
            f"({rounding:,} bytes); the cuBLAS workspace is allocated before the baseline",
            reason_for("CUDA memory", "peak, timeline + residuals", ctx, with_residuals, mem.peak)))
    rows.append(ComparisonRow("CUDA memory", "CUDA context", "bytes", None, mem.context_bytes,
                              "device memory in use minus torch's reservation, after init", CUDA_CONTEXT))
    rows.append(ComparisonRow("CUDA memory", "cuBLAS workspace", "bytes", None, mem.cublas_workspace_bytes,
                              "allocator growth across a first tiny matmul", CUBLAS_WORKSPACE))
    return rows
