"""Rows of the real-device measurements: step time, throughput, MFU (CPU and CUDA) and the CUDA
allocator at each phase, beside the accounting's predictions where it makes one."""

from __future__ import annotations

import accounting as acc
from accounting.config import ModelConfig
from accounting.conventions import DTYPE_BYTES
from validation.reasons import CUBLAS_WORKSPACE, CUDA_CONTEXT, RunContext, cuda_memory_reason, reason_for
from validation.rows import ComparisonRow

MODEL_FLOPS = ("model FLOPs = accounting.train_step_flops (forward + backward matmuls; no recompute, "
               "no optimizer)")
TIMED = "median of the timed steps (forward + loss + backward + AdamW + zero_grad) after one warm-up step"


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
                     ctx: RunContext) -> list[ComparisonRow]:
    """The allocator's bytes per phase (validation.cuda.CudaMemory) beside the accounting: weights,
    gradients, AdamW state and activations, and their sum as the peak."""
    size = DTYPE_BYTES[ctx.dtype]
    n = acc.total_parameters(cfg)
    activations = acc.activation_bytes(cfg, batch_size, context_length, "implementation", ctx.dtype)
    optimizer = acc.adamw_state_bytes(cfg, ctx.dtype)
    predicted = {
        "after weights": size * n, "activations": activations, "gradients": size * n,
        "optimizer state": optimizer, "peak": 2 * size * n + optimizer + activations,
        "reserved": None,
    }
    convention = ("bytes from torch.cuda.memory_allocated / max_memory_allocated above the baseline "
                  "before the model; peak over the second step with gradients kept")
    rows = []
    for name, symbolic in predicted.items():
        measured = getattr(mem, name.replace("after ", "").replace(" ", "_"))
        reason = (cuda_memory_reason(name, ctx) if symbolic is None
                  else reason_for("CUDA memory", name, ctx, symbolic, measured))
        rows.append(ComparisonRow("CUDA memory", name, "bytes", symbolic, measured, convention, reason))
    rows.append(ComparisonRow("CUDA memory", "CUDA context", "bytes", None, mem.context_bytes,
                              "device memory in use minus torch's reservation, after init", CUDA_CONTEXT))
    rows.append(ComparisonRow("CUDA memory", "cuBLAS workspace", "bytes", None, mem.cublas_workspace_bytes,
                              "allocator growth across a first tiny matmul", CUBLAS_WORKSPACE))
    return rows
