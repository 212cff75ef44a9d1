"""Memory: the training step's peak against batch size (the peak's parts stacked, the overhead
margin on top, the GPU's memory as a line, your B and the largest B labelled), the step's memory
timeline at your B, the peak's composition, and what the forward saves for backward under both
activation conventions.

Every number is the report's (explorer.compute.report) or the same accounting evaluated at other
batch sizes: the chart at your B, the tables and the Overview agree. The convention,
checkpointing and the overhead margin are sidebar settings (in the URL).
"""

from __future__ import annotations

import streamlit as st

import accounting as acc
from explorer import charts, compute
from explorer.sidebar import widget_key
from explorer.state import Settings
from explorer.tables import component_table

_FUSED = "w_mem_fused"


def _on_fused() -> None:
    # the sidebar's attention field is the one source of truth; callbacks run before the widgets
    st.session_state[widget_key("attention")] = "sdpa" if st.session_state[_FUSED] else "naive"


def convention_text(report: acc.Report, settings: Settings) -> str:
    """One line: under which convention the peak and the largest batch hold."""
    cfg = report.config
    if settings.activations == "textbook":
        what = ("textbook convention: weights + gradients + AdamW m, v + CS336's activation list, all "
                "counted at once (a static sum; checkpointing not modelled in it)")
    else:
        what = ("implementation convention: the maximum of the step's memory timeline (forward, loss, "
                "backward, clipping, AdamW, zero_grad; live bytes after every allocating call)")
    return (f"{what}; {report.dtype}, attention={cfg.attention}, "
            f"checkpointing {'on' if settings.checkpointing else 'off'}. Bytes; GiB = 2³⁰ bytes.")


def _chart(report: acc.Report, settings: Settings, budget: compute.Budget) -> None:
    m = report.memory
    largest = m.largest_batch.batch_size if m.largest_batch else 0
    batches = tuple(compute.batch_axis(report.batch_size, largest))
    frame = compute.peak_by_batch(report.config, report.context_length, report.dtype, settings.activations,
                                  settings.checkpointing, batches)
    label = f"{budget.gpu}: {acc.fmt_bytes(budget.gpu_bytes)}"
    st.plotly_chart(charts.memory_vs_batch(
        frame, budget.gpu_bytes, label, [p for p in budget.overhead.parts if p[1]], report.batch_size, largest,
        f"Peak training memory vs batch size ({settings.activations} convention, {report.dtype}"
        f"{', checkpointed' if settings.checkpointing else ''})"), width="stretch")
    need = m.peak_bytes + budget.overhead.total_bytes
    fit = (f"Largest batch in {acc.fmt_bytes(m.budget_bytes)} usable: **B = {largest:,}**" if largest else
           f"Not even B = 1 fits in {acc.fmt_bytes(m.budget_bytes)} usable")
    over = f" + overhead {acc.fmt_bytes(budget.overhead.total_bytes)}" if budget.overhead.total_bytes else ""
    st.markdown(f"{fit}. Your batch B = {report.batch_size:,} peaks at **{acc.fmt_bytes(m.peak_bytes)}** "
                f"({acc.fmt_int(m.peak_bytes)} bytes){over}.")
    st.caption(convention_text(report, settings) + f" Overhead margin: {budget.overhead.source}.")
    if need > budget.gpu_bytes:
        st.error(f"B = {report.batch_size:,} overflows the GPU: {acc.fmt_bytes(need)} > "
                 f"{acc.fmt_bytes(budget.gpu_bytes)}.")
    if settings.checkpointing:
        st.caption(f"Checkpointing recomputes the blocks' forward: +{acc.fmt_flops(m.checkpoint_recompute_flops)} "
                   "per step.")


def _timeline(report: acc.Report, settings: Settings) -> None:
    frame = compute.timeline_frame(report.config, report.batch_size, report.context_length, report.dtype,
                                   settings.checkpointing)
    peak = report.memory.timeline.peak
    st.subheader(f"The step's memory timeline at B = {report.batch_size:,}")
    st.plotly_chart(charts.timeline_figure(frame, report.memory.budget_bytes,
                                           f"Live bytes over one training step (peak: {peak.phase}, {peak.name})"),
                    width="stretch")
    st.caption("What PyTorch's memory snapshot shows, predicted call by call (accounting.memory_timeline, equal "
               "to torch's MemTracker on CPU). Transients: the logits, gradients of activations, temporaries.")


def _activations(report: acc.Report, settings: Settings) -> None:
    st.subheader("What the forward and loss save for backward, by component")
    st.caption("Without checkpointing, at your B; the batch's token ids included. Not the peak: at the peak "
               "some of these are freed and gradients and temporaries are alive (the timeline above). "
               "textbook: the CS336 list × bytes of the run dtype. implementation: exactly what this model "
               "and its loss save (RMSNorm internals float32, token ids int64, causal mask bool), "
               "deduplicated by storage, parameters excluded.")
    cols = st.columns(2)
    for col, (name, rows) in zip(cols, report.memory.activations.items()):
        with col:
            st.markdown(f"**{name}**: {acc.fmt_bytes(sum(r.value for r in rows))}")
            component_table(compute.rows_frame(rows, acc.fmt_bytes))
    if settings.checkpointing:
        st.caption(f"With per-block checkpointing the forward keeps {acc.fmt_bytes(report.memory.checkpointed_bytes)} "
                   "(block inputs and what the head and loss save; implementation convention).")


def render(report: acc.Report, settings: Settings) -> None:
    budget = compute.budget(settings)
    st.session_state[_FUSED] = report.config.attention == "sdpa"
    st.toggle("Fused attention (sdpa)", key=_FUSED, on_change=_on_fused,
              help="torch's scaled_dot_product_attention keeps no (T, T) matrices for backward (it "
                   "recomputes the scores); sets the sidebar's attention field.")
    _chart(report, settings, budget)
    if settings.activations == "implementation":
        _timeline(report, settings)
    st.subheader(f"The peak at your batch, by part ({settings.activations} convention)")
    component_table(compute.rows_frame(report.memory.rows, acc.fmt_bytes))
    _activations(report, settings)
