"""Steps 3 and 4: validation's measurement of each shape plus the training-step probe, and the
largest batch put to the test.

Step 3 takes every row `validation.core.measure` returns, whatever quantities it holds (rows added
to the measurement later appear here unchanged), and appends the probe's rows. Both run the
trainer's step: float32 master weights, bf16 autocast for "bfloat16", the same AdamW
implementation, and the shape's activation checkpointing; both compare against
accounting.memory_timeline of that step (measure with MemTracker and the allocator, the probe with
the allocator alone, cheap enough to try batch sizes).
"""

from __future__ import annotations

import dataclasses
import math

import accounting as acc
from validation.campaign.common import first_line, fused_available, is_oom
from validation.campaign.memory import probe
from validation.campaign.plan import file_stem, model_config
from validation.campaign.targets import LARGEST, OUT_OF_MEMORY, PEAK, PEAK_AT_PREDICTED, STEP_MEMORY
from validation.rows import ComparisonRow, Measurement

PROBE_NOTE = ("training step probe: float32 master weights, bf16 autocast where dtype is bfloat16, "
              "model.FastAdamW, our cross_entropy (the trainer's step)")


def optimizer_name() -> str:
    """The AdamW implementation the probe's model.FastAdamW uses (campaign.common.adamw)."""
    return "fused" if fused_available() else "foreach"


def campaign_settings(ctx, spec, label, B, T, extra=None) -> dict:
    sh = spec.shape
    tag = f"{sh.dtype} {sh.attention}" + (" checkpointing" if sh.checkpointing else "")
    return {"batch_size": B, "context_length": T, "dtype": sh.dtype, "steps": 3, "device": str(ctx.device),
            **(extra or {}), "campaign_step": spec.number, "campaign_key": spec.key,
            "campaign_label": f"{spec.number} {label} B={B} T={T} {tag}", "dry_run": ctx.dry_run,
            "activation_checkpointing": sh.checkpointing, "probe": PROBE_NOTE}


def measure_step(ctx, spec) -> None:
    """Step 3 (one shape): validation.core.measure (unless spec.measure is False), written at once;
    then the probe, written into the same file with measure's rows first."""
    from validation.core import measure

    sh = spec.shape
    cfg, B, T, label = model_config(sh, ctx.dry_run)
    stem = file_stem(label, ctx.gpu_tag, sh.dtype, B, T, sh.attention, sh.checkpointing)
    rows, notes, settings, hardware = [], [], {}, dict(ctx.facts)
    if spec.measure:
        ctx.counters.cleanup()  # frees the cuBLAS workspaces, so measure's own workspace row sees one
        m = measure(cfg, device=str(ctx.device), batch_size=B, context_length=T, dtype=sh.dtype, steps=3,
                    optimizer=optimizer_name(), checkpointing=sh.checkpointing, progress=lambda phase, done: ctx.phase(f"measure: {phase}"))
        rows, notes, settings = list(m.rows), list(m.notes), dict(m.settings)
        hardware.update(m.hardware)
        ctx.emit(stem, Measurement(rows, hardware, m.config,
                                   campaign_settings(ctx, spec, label, B, T, settings), notes))
        ctx.deadline.check("the training-step probe")
    ctx.phase("training-step probe")
    probe_rows, probe_notes = probe(cfg, B, T, sh.dtype, sh.checkpointing, ctx.device, ctx.counters,
                                    gpu=ctx.gpu, deadline=ctx.deadline)
    ctx.emit(stem, Measurement(rows + probe_rows, hardware, dataclasses.asdict(cfg),
                               campaign_settings(ctx, spec, label, B, T, settings), notes + probe_notes))


def _peak(rows: list[ComparisonRow]) -> int | None:
    return next((r.measured for r in rows if r.quantity == STEP_MEMORY and r.component == PEAK), None)


def _budget(ctx, cfg, T: int, dtype: str) -> tuple[int, str]:
    """The memory the prediction is made for: the device's free bytes after emptying torch's cache
    (the CUDA context and other processes already out); dry run: a nominal fixed + 3.5 sequences."""
    ctx.counters.cleanup()
    free = ctx.counters.free_bytes()
    if free is not None:
        return free, "free device memory after emptying torch's cache (cudaMemGetInfo)"
    fit = acc.largest_batch_size(cfg, 2**62, T, dtype, optimizer=optimizer_name())
    nominal = int(fit.fixed_bytes + 3.5 * fit.bytes_per_sequence)
    return nominal, "dry run: nominal budget of fixed + 3.5 sequences"


def _linear_fit(peaks: dict[int, int | None], budget: int) -> tuple[int | None, int | None, int | None]:
    """(fixed, per sequence, largest batch) of the measured peaks at B=1 and 2 (None if unmeasured)."""
    if peaks.get(1) is None or peaks.get(2) is None:
        return None, None, None
    per_seq = peaks[2] - peaks[1]
    fixed = peaks[1] - per_seq
    return fixed, per_seq, (math.floor((budget - fixed) / per_seq) if per_seq > 0 else None)


def _try_batch(ctx, cfg, B, T, dtype, component, predicted) -> tuple[list[ComparisonRow], bool]:
    """One probe at B as a LARGEST row (measured None and the OOM named when it ran out of memory)."""
    conv = (f"B={B}: max_memory_allocated of a training step above the baseline; "
            "symbolic: the accounting's peak")
    oom = None
    try:
        rows, _ = probe(cfg, B, T, dtype, False, ctx.device, ctx.counters, timed_steps=1, gpu=ctx.gpu,
                        deadline=ctx.deadline)
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        if not is_oom(exc):
            raise
        oom = f"{OUT_OF_MEMORY} at B={B}: {first_line(exc)}"
    if oom is not None:  # out of the except block: the traceback's frames (and tensors) are gone
        ctx.counters.cleanup()
        return [ComparisonRow(LARGEST, component, "bytes", predicted, None, conv, oom)], False
    peak = _peak(rows)
    reason = ("" if peak is None or peak == predicted else
              f"ran at B={B}; the rows '{STEP_MEMORY}' of this file name the difference")
    return [ComparisonRow(LARGEST, component, "bytes", predicted, peak, conv, reason)] + rows, True


def largest_batch_step(ctx, spec) -> None:
    """Step 4: solve the accounting's largest batch for the free memory, fit the measured peaks at
    B=1 and 2, run one step at the predicted batch (and, if that runs out of memory, at the
    measured fit's batch)."""
    sh = spec.shape
    cfg, _, T, label = model_config(sh, ctx.dry_run)
    budget, budget_note = _budget(ctx, cfg, T, sh.dtype)
    fit = acc.largest_batch_size(cfg, budget, T, sh.dtype, optimizer=optimizer_name())
    peaks = {}
    for b in (1, 2):
        ctx.deadline.check(f"the probe at B={b}")
        ctx.phase(f"probe at B={b}")
        peaks[b] = _peak(probe(cfg, b, T, sh.dtype, False, ctx.device, ctx.counters, timed_steps=0)[0])
    fixed_m, per_seq_m, batch_m = _linear_fit(peaks, budget)
    fit_conv = "symbolic: accounting.largest_batch_size; measured: the line through the peaks at B=1 and 2"
    rows = [ComparisonRow(LARGEST, "memory budget", "bytes", None, budget, budget_note),
            ComparisonRow(LARGEST, "batch size", "sequences", fit.batch_size, batch_m, fit_conv,
                          "" if batch_m in (None, fit.batch_size) else
                          f"the measured bytes per sequence and fixed bytes below ({fit.inequality})"),
            ComparisonRow(LARGEST, "fixed bytes", "bytes", fit.fixed_bytes, fixed_m, fit_conv,
                          "measured: includes cuBLAS workspaces and allocator rounding"),
            ComparisonRow(LARGEST, "bytes per sequence", "bytes", fit.bytes_per_sequence, per_seq_m, fit_conv,
                          "symbolic: the binding event's bytes per sequence; measured: the peak's "
                          "growth from B=1 to 2 (rounding and kernel workspaces included)")]
    if ctx.gpu is not None:
        nominal = acc.largest_batch_size(cfg, ctx.gpu.memory_bytes, T, sh.dtype, optimizer=optimizer_name())
        rows.append(ComparisonRow(LARGEST, "batch size in the table's memory", "sequences",
                                  nominal.batch_size, None,
                                  f"{ctx.gpu.name}: {ctx.gpu.memory_bytes:,} bytes"))
    stem = f"largest-batch_{file_stem(label, ctx.gpu_tag, sh.dtype, None, T, sh.attention)}"
    settings = campaign_settings(ctx, spec, label, fit.batch_size, T, {"memory_budget_bytes": budget})

    def emit():
        ctx.emit(stem, Measurement(rows, dict(ctx.facts), dataclasses.asdict(cfg), settings,
                                   [f"predicted: {fit.inequality} -> B = {fit.batch_size}"]))

    emit()
    ctx.deadline.check(f"the step at the predicted B={fit.batch_size}")
    ctx.phase(f"step at the predicted B={fit.batch_size}")
    predicted = acc.peak_memory_bytes(cfg, fit.batch_size, T, dtype=sh.dtype, optimizer=optimizer_name())
    more, ran = _try_batch(ctx, cfg, fit.batch_size, T, sh.dtype, PEAK_AT_PREDICTED, predicted)
    rows += more
    emit()
    if not ran and batch_m is not None and 0 < batch_m < fit.batch_size:
        ctx.deadline.check(f"the step at the measured fit's B={batch_m}")
        ctx.phase(f"step at the measured fit's B={batch_m}")
        more, _ = _try_batch(ctx, cfg, batch_m, T, sh.dtype, "peak at the measured fit's batch",
                             acc.peak_memory_bytes(cfg, batch_m, T, dtype=sh.dtype,
                                                   optimizer=optimizer_name()))
        rows += [r for r in more if r.quantity == LARGEST]
        emit()
