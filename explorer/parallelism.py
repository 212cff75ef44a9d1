"""Parallelism: the model on N GPUs. GPUs, strategy (DDP, ZeRO-1/2/3), tensor-parallel degree and
link -> the per-GPU memory stack of every strategy, the largest per-GPU batch, the communication
of a step beside its compute, and how memory and step time change with N. Every number comes from
accounting.parallel / accounting.communication (the sidebar's batch B is the global batch). Like
every setting, the view's four choices live in the URL (explorer.state: gpus, strategy,
tensor_parallel, link); K is held within [1, N]."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import accounting as acc
from accounting.errors import UserError
from accounting.hardware import LINKS
from accounting.layout import STRATEGIES, Layout
from accounting.parallel import timeline_applies
from accounting.parallel_report import ParallelSection, parallel_section
from explorer.sidebar import widget_key
from explorer.state import Settings, int_limits

_GPUS, _STRATEGY, _TP, _LINK = (widget_key(n) for n in ("gpus", "strategy", "tensor_parallel", "link"))
_GiB = 2**30
_COLORS = {"parameters": "#1f3b73", "weights": "#1f3b73", "buffers": "#5b7db1", "batch": "#f6c177",
           "gradients": "#7fa7d9", "optimizer_state": "#8c8c8c", "weights_bf16_copy": "#3a6fb0",
           "gathered_parameters": "#b5838d", "unsharded_gradients": "#e9c46a",
           "activations": "#f4a261", "transients": "#d1495b"}
"""DDP's stack is its timeline's peak event (weights, buffers, batch, transients); the others sum
their components."""
_STACK = ("parameters", "weights", "buffers", "batch", "weights_bf16_copy", "gradients", "optimizer_state",
          "gathered_parameters", "unsharded_gradients", "activations", "transients")
"""Bottom to top: the same kind at the same height in every strategy's bar."""


@lru_cache(maxsize=512)
def _section(cfg: acc.ModelConfig, layout: Layout, batch: int, dtype: str, peak: float, mfu: float,
             budget: int, steps: int, checkpointing: bool, link: str) -> ParallelSection:
    return parallel_section(cfg, layout, batch_size=batch, context_length=cfg.context_length,
                            dtype=dtype, peak_flops_per_s=peak, mfu=mfu, budget_bytes=budget,
                            steps=steps, link=link, checkpointing=checkpointing)


def _choices(settings: Settings) -> tuple[int, str, int, str]:
    """The view's widgets, seeded from `settings` (their K is already within [1, N])."""
    ss = st.session_state
    ss[_GPUS], ss[_STRATEGY], ss[_TP], ss[_LINK] = (settings.gpus, settings.strategy,
                                                    settings.tensor_parallel, settings.link)
    lo, hi = int_limits("gpus")
    c = st.columns(4)
    gpus = int(c[0].number_input("GPUs N", min_value=lo, max_value=hi, step=1, key=_GPUS,
                                 help="Processes, one per GPU: data-parallel ranks x tensor-parallel ranks."))
    strategy = c[1].selectbox("Strategy", STRATEGIES, key=_STRATEGY,
                              help="ddp: everything on every GPU; zero1: AdamW state sharded "
                                   "(accounted only); zero2 / zero3: FSDP2 with parameters gathered "
                                   "once per step / per use.")
    tp = int(c[2].number_input("Tensor-parallel K", min_value=1, max_value=gpus, step=1,
                               key=_TP, help="Megatron split of the attention and FFN projections; "
                                             "must divide N, the heads and d_ff."))
    link = c[3].selectbox("Link", tuple(LINKS), key=_LINK,
                          help="Per-direction bandwidth of each GPU for the ring formulas.")
    return gpus, strategy, tp, link


def _memory_stack(report: acc.Report, sections: dict[str, ParallelSection]) -> go.Figure:
    fig = go.Figure()
    names = {r.name for s in sections.values() for r in s.per_rank}
    for name in sorted(names, key=lambda n: _STACK.index(n) if n in _STACK else len(_STACK)):
        fig.add_trace(go.Bar(
            x=list(sections), name=name, marker_color=_COLORS.get(name),
            y=[next((r.value for r in s.per_rank if r.name == name), 0) / _GiB for s in sections.values()],
            hovertemplate="%{x}: %{y:.3g} GiB<extra>" + name + "</extra>"))
    budget = report.memory.budget_bytes
    fig.add_hline(y=budget / _GiB, line_dash="dash", line_color="crimson",
                  annotation_text=f"{report.training.gpu}: {acc.fmt_bytes(budget)}",
                  annotation_font_color="crimson")
    fig.update_layout(barmode="stack", title="Per-GPU memory at your batch, by strategy (rank 0)",
                      yaxis_title="GiB (2³⁰ bytes)", height=440, legend=dict(orientation="h", y=-0.2),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def _time_bars(s: ParallelSection) -> go.Figure:
    parts = {"compute": s.time.compute}
    for c in s.communication:
        key = f"{c.collective} ({c.group})"
        parts[key] = parts.get(key, 0.0) + c.seconds(s.link)
    fig = go.Figure(go.Bar(x=list(parts.values()), y=list(parts), orientation="h",
                           text=[acc.fmt_seconds(v) for v in parts.values()], textposition="auto"))
    fig.update_layout(title="One step on each GPU: compute beside communication (no overlap assumed)",
                      xaxis_title="seconds", yaxis=dict(autorange="reversed"), height=300,
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def _scaling(report: acc.Report, strategy: str, tp: int, per_rank: int, link: str, args) -> pd.DataFrame:
    """Weak scaling: the per-GPU batch held, N = K x 1, 2, 4, ... data-parallel ranks."""
    rows = []
    for dp in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        layout = Layout(dp * tp, strategy, tp)
        s = _section(report.config, layout, per_rank * dp, *args, link)
        tokens = per_rank * dp * report.context_length
        rows.append({"GPUs": dp * tp, "per-GPU peak (GiB)": s.peak_bytes / _GiB,
                     "compute (s)": s.time.compute, "communication (s)": s.time.communication,
                     "step, no overlap (s)": s.time.no_overlap,
                     "tokens/s (all GPUs)": tokens / s.time.no_overlap})
    return pd.DataFrame(rows)


def _scaling_chart(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for col, dash in (("compute (s)", "solid"), ("communication (s)", "dash"), ("step, no overlap (s)", "dot")):
        fig.add_trace(go.Scatter(x=frame["GPUs"], y=frame[col], name=col, mode="lines+markers",
                                 line=dict(dash=dash)))
    fig.add_trace(go.Scatter(x=frame["GPUs"], y=frame["per-GPU peak (GiB)"], name="per-GPU peak (GiB)",
                             yaxis="y2", mode="lines+markers", line=dict(color="crimson")))
    fig.update_layout(title="As N grows (per-GPU batch held)", height=420,
                      xaxis=dict(type="log", title="GPUs N"), yaxis=dict(title="seconds per step"),
                      yaxis2=dict(title="GiB", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=50, b=10))
    return fig


_DDP_PEAK = ("DDP: the maximum of the per-rank step's memory timeline with every gradient in DDP's "
             "buckets for the whole step (measured equal with MemTracker on gloo ranks).")
_SUM_PEAK = ("A sum: every state component with the activations alive at the start of the backward "
             "(not a per-rank memory timeline; the logits' gradient and AdamW's temporaries are not "
             "in it).")


def _metrics(s: ParallelSection) -> None:
    fit = s.largest
    c = st.columns(4)
    c[0].metric("Per-GPU peak memory", acc.fmt_bytes(s.peak_bytes),
                delta=None if s.peak_bytes <= s.budget_bytes else "exceeds the GPU", delta_color="inverse",
                help=f"{acc.fmt_int(s.peak_bytes)} bytes on rank 0 at b = {s.per_rank_batch} sequences. "
                     + (_DDP_PEAK if timeline_applies(s.layout) else _SUM_PEAK))
    c[1].metric("Largest per-GPU batch", "none" if fit is None else acc.fmt_int(fit.per_rank_batch),
                help="none fits" if fit is None else
                f"{acc.fmt_bytes(fit.fixed_bytes)} + {acc.fmt_bytes(fit.bytes_per_sequence)} × b ≤ "
                f"{acc.fmt_bytes(fit.budget_bytes)}; global batch {acc.fmt_int(fit.global_batch)}.")
    c[2].metric("Communication per step", acc.fmt_seconds(s.time.communication),
                help=f"{acc.fmt_bytes(s.communication_bytes)} sent per GPU per step (ring) on {s.link.name}.")
    c[3].metric(f"Training time on {s.layout.world_size} GPUs", acc.fmt_seconds(s.training_seconds),
                help=f"{acc.fmt_int(s.steps)} steps × (compute {acc.fmt_seconds(s.time.compute)} + "
                     f"communication {acc.fmt_seconds(s.time.communication)}); fully overlapped: "
                     f"{acc.fmt_seconds(s.training_seconds_overlapped)}.")


def render(report: acc.Report, settings: Settings) -> None:
    gpus, strategy, tp, link = _choices(settings)
    args = (report.dtype, report.training.peak_flops_per_s, report.training.mfu,
            report.memory.budget_bytes, report.training.steps, settings.checkpointing)
    try:
        layout = Layout(gpus, strategy, tp)
        s = _section(report.config, layout, report.batch_size, *args, link)
        others = {name: _section(report.config, Layout(gpus, name, tp), report.batch_size, *args, link)
                  for name in STRATEGIES}
    except UserError as exc:
        st.error(f"{exc}. Change N, K or the batch B (the global batch: split over the "
                 f"data-parallel ranks).")
        return
    st.markdown(f"**{layout.describe()}**: global batch B = {report.batch_size:,} → "
                f"b = {s.per_rank_batch:,} sequences per data-parallel rank.")
    _metrics(s)
    st.plotly_chart(_memory_stack(report, others), width="stretch")
    st.dataframe(pd.DataFrame([{"component": r.name, "bytes": r.value, "readable": acc.fmt_bytes(r.value),
                                "note": r.note} for r in s.per_rank]), hide_index=True, width="stretch")
    st.plotly_chart(_time_bars(s), width="stretch")
    st.dataframe(pd.DataFrame([{"collective": c.collective, "what": c.name, "phase": c.phase,
                                "ranks": c.ranks, "bytes per call": c.bytes, "calls": c.count,
                                "seconds": c.seconds(s.link)} for c in s.communication]),
                 hide_index=True, width="stretch")
    st.plotly_chart(_scaling_chart(_scaling(report, strategy, tp, s.per_rank_batch, link, args)),
                    width="stretch")
    st.info("  \n".join(f"• {n}" for n in s.notes) + f"  \n• link: {s.link.name}, {s.link.source}")
