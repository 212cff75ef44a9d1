"""Measured numbers (validation.run.RawCounts) beside the accounting's symbolic ones, as rows.

Components are listed in the accounting's order, then any the accounting does not have. The
attention core of attention="sdpa" is one op ("layers.attn.core"), compared with the accounting's
scores + weighted_values.
"""

from __future__ import annotations

from collections.abc import Mapping

import accounting as acc
from accounting.config import ModelConfig
from accounting.conventions import DEFAULT_CONVENTIONS as CONV
from accounting.conventions import DTYPE_BYTES, element_bytes
from accounting.parameters import matmul_parameters_formula
from accounting.rows import evaluate
from accounting.symbols import values
from validation.reasons import NO_SYMBOLIC, TEXTBOOK, RunContext, reason_for
from validation.rows import ComparisonRow
from validation.run import RawCounts

_CORE = ("layers.attn.scores", "layers.attn.weighted_values")
MATMUL_CONVENTION = f"{CONV.matmul_flops}; {CONV.causal_attention}"


def _symbolic(rows: list, attention: str) -> dict[str, int]:
    """accounting rows as {component: value}; for sdpa the core's two matmuls become one."""
    out = {r.name: r.value for r in rows}
    if attention == "sdpa" and _CORE[0] in out:
        out = {k: v for k, v in out.items() if k not in _CORE}
        out["layers.attn.core"] = sum(r.value for r in rows if r.name in _CORE)
    return out


def component_rows(quantity: str, unit: str, convention: str, symbolic: Mapping[str, int],
                   measured: Mapping[str, int], ctx: RunContext, total_measured: int | None = None,
                   keep_zero: bool = False) -> list[ComparisonRow]:
    """One row per component (accounting's order first) plus a "total" row. `total_measured`
    overrides the sum of the measured components (e.g. FlopCounterMode's own total)."""
    names = list(symbolic) + [n for n in measured if n not in symbolic]
    rows = []
    for name in names:
        s, m = symbolic.get(name), measured.get(name, 0)
        if not keep_zero and not s and not m:
            continue
        rows.append(ComparisonRow(quantity, name, unit, s, m, convention,
                                  reason_for(quantity, name, ctx, s, m)))
    s_total = sum(symbolic.values())
    m_total = sum(measured.values()) if total_measured is None else total_measured
    rows.append(ComparisonRow(quantity, "total", unit, s_total, m_total, convention,
                              reason_for(quantity, "total", ctx, s_total, m_total)))
    return rows


def comparison_rows(cfg: ModelConfig, raw: RawCounts, batch_size: int, context_length: int,
                    ctx: RunContext) -> list[ComparisonRow]:
    """Every row of one instrumented step: parameters, FLOPs (forward, backward, non-matmul),
    activations (both conventions), weights, gradients and AdamW."""
    B, T, dt = batch_size, context_length, ctx.dtype
    att = cfg.attention
    rows = component_rows("parameters", "params", CONV.parameters,
                          {r.name: r.value for r in acc.parameter_rows(cfg)}, raw.parameters, ctx)
    rows += component_rows("forward matmul FLOPs", "flops", MATMUL_CONVENTION,
                           _symbolic(acc.forward_flops_rows(cfg, B, T), att), raw.forward_matmul, ctx,
                           total_measured=raw.flop_counter_forward)
    rows += component_rows("backward matmul FLOPs", "flops", f"{MATMUL_CONVENTION}; {CONV.backward_flops}",
                           _symbolic(acc.backward_flops_rows(cfg, B, T), att), raw.backward_matmul, ctx,
                           total_measured=raw.flop_counter_backward)
    rows += component_rows("non-matmul forward FLOPs", "flops", CONV.nonmatmul_flops,
                           {r.name: r.value for r in acc.nonmatmul_forward_rows(cfg, B, T)},
                           raw.forward_nonmatmul, ctx)
    m_bwd = sum(raw.backward_nonmatmul.values())
    rows.append(ComparisonRow("non-matmul backward FLOPs", "total", "flops", None, m_bwd,
                              CONV.nonmatmul_flops, NO_SYMBOLIC))
    impl = {r.name: r.value for r in acc.activation_rows(cfg, B, T, "implementation", dt,
                                                         sdpa_backend=ctx.sdpa_backend)}
    rows += component_rows("activations (implementation)", "bytes",
                           f"{CONV.activation_meaning}; real dtypes; sdpa kernel: {ctx.sdpa_backend}",
                           impl, raw.saved_bytes, ctx, keep_zero=True)
    textbook = acc.activation_bytes(cfg, B, T, "textbook", dt)
    measured_saved = sum(raw.saved_bytes.values())
    rows.append(ComparisonRow("activations (textbook)", "total", "bytes", textbook, measured_saved,
                              f"textbook: CS336 intermediates x {element_bytes(dt)} bytes ({dt}); "
                              "measured: the saved tensors", TEXTBOOK if textbook != measured_saved else ""))
    n = acc.total_parameters(cfg)
    pdt = "bfloat16" if dt == "bfloat16-pure" else "float32"  # autocast keeps float32 master weights
    size = DTYPE_BYTES[pdt]
    quantities = [
        ("weights", size * n, raw.weight_bytes, f"parameters x {size} bytes ({pdt}), tied once"),
        ("gradients", size * n, raw.gradient_bytes, f"one gradient per parameter, {pdt}"),
        ("AdamW state", acc.adamw_state_bytes(cfg, pdt), raw.adamw_state_bytes, CONV.optimizer),
        ("AdamW step FLOPs", acc.adamw_step_flops(cfg), raw.adamw_step_flops + raw.adamw_step_matmul_flops,
         f"{acc.adamw_flops_per_element()} FLOPs per parameter element under ELEMENTWISE_FLOPS"),
    ]
    if dt == "bfloat16":
        copy = 2 * evaluate(matmul_parameters_formula(cfg), values(cfg))
        quantities.insert(1, ("weights bf16 copy", copy, raw.weight_copy_bytes,
                              "autocast's bf16 copy of each matmul weight (the LM head included, the "
                              "embedding not cast), saved for backward; measured: casts of parameters"))
    for quantity, symbolic, measured, convention in quantities:
        unit = "flops" if "FLOPs" in quantity else "bytes"
        rows.append(ComparisonRow(quantity, "total", unit, symbolic, measured, convention,
                                  reason_for(quantity, "total", ctx, symbolic, measured)))
    return rows


TIMELINE_ROWS = ("start", "forward peak", "forward end", "loss peak", "loss end", "backward peak",
                 "backward end", "clip peak", "optimizer peak", "end", "peak")


def timeline_rows(cfg: ModelConfig, measured, batch_size: int, context_length: int, ctx: RunContext
                  ) -> list[ComparisonRow]:
    """Live bytes of one steady-state step, accounting.timeline beside MemTracker
    (validation.memtrack.MeasuredTimeline): at the start, each phase's maximum and end, the peak."""
    from accounting.timeline import memory_timeline

    tl = memory_timeline(cfg, batch_size, context_length, ctx.dtype, ctx.optimizer, ctx.checkpointing,
                         ctx.sdpa_backend)
    symbolic = {"start": tl.events[0].total, "end": tl.events[-1].total, "peak": tl.peak_bytes}
    got = {"start": measured.start, "end": measured.boundaries[-1][1], "peak": measured.peak}
    for phase in ("forward", "loss", "backward", "clip", "optimizer"):
        symbolic[f"{phase} peak"] = tl.phase_peak(phase).total
        got[f"{phase} peak"] = measured.phase_peak(phase)
        if phase in ("forward", "loss", "backward"):
            symbolic[f"{phase} end"] = tl.phase_end(phase).total
            got[f"{phase} end"] = measured.phase_end(phase)
    convention = (f"live bytes of one steady-state step of model.trainer.training_step ({ctx.optimizer} "
                  f"AdamW{', checkpointed blocks' if ctx.checkpointing else ''}"
                  f"{f', sdpa kernel: {ctx.sdpa_backend}' if cfg.attention == 'sdpa' else ''}): "
                  f"accounting.timeline vs MemTracker on {ctx.device}; the accounting's peak: "
                  f"{tl.peak.phase}, {tl.peak.name}")
    return [ComparisonRow("memory timeline", name, "bytes", symbolic[name], got[name], convention,
                          reason_for("memory timeline", name, ctx, symbolic[name], got[name]))
            for name in TIMELINE_ROWS]
