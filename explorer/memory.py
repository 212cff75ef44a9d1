"""Memory: the peak-training-memory stack against batch size, the GPU budget and the largest batch;
textbook vs implementation activation conventions side by side; fused-attention and activation-
checkpointing toggles."""

from __future__ import annotations

import math

import streamlit as st

import accounting as acc
from explorer import charts, compute
from explorer.sidebar import widget_key
from explorer.state import Settings
from explorer.tables import component_table

_FUSED, _CKPT, _CONV = "w_mem_fused", "w_mem_checkpointing", "w_mem_convention"


def _on_fused() -> None:
    # the sidebar's attention field is the one source of truth; callbacks run before the widgets
    st.session_state[widget_key("attention")] = "sdpa" if st.session_state[_FUSED] else "naive"


def _on_checkpointing() -> None:
    st.session_state["checkpointing"] = st.session_state[_CKPT]


def batch_axis(current: int, largest: int, points: int = 12) -> list[int]:
    """About `points` batch sizes from 1 to past both the current and the largest batch."""
    top = max(current, math.ceil(1.25 * largest), 2)
    step = max(1, math.ceil(top / points))
    return sorted({1, current, *(b for b in range(step, top + 1, step)), *([largest] if largest else [])})


def _toggles(report: acc.Report) -> tuple[bool, str]:
    st.session_state[_FUSED] = report.config.attention == "sdpa"
    st.session_state[_CKPT] = bool(st.session_state.get("checkpointing", False))
    c = st.columns(3)
    c[0].toggle("Fused attention (sdpa)", key=_FUSED, on_change=_on_fused,
                help="torch's scaled_dot_product_attention keeps no (T, T) matrices for backward "
                     "(it recomputes the scores); sets the sidebar's attention field.")
    checkpointing = c[1].toggle("Activation checkpointing (per block)", key=_CKPT, on_change=_on_checkpointing,
                                help="Keep only each block's input; recompute one block at a time in "
                                     "backward (one extra forward of the blocks).")
    convention = c[2].radio("Activations counted as", ("implementation", "textbook"), horizontal=True,
                            key=_CONV, help="implementation: the tensors this model really saves "
                            "(checked with saved_tensors_hooks); textbook: the CS336 list, in the run dtype.")
    return checkpointing, convention


def _stack(report: acc.Report, checkpointing: bool, convention: str) -> None:
    m = report.memory
    lines = compute.memory_lines(report.config, report.dtype, convention, checkpointing)
    largest = compute.largest_batch(lines, m.budget_bytes)
    frame = compute.memory_frame(lines, batch_axis(report.batch_size, largest))
    label = f"{report.training.gpu}: {acc.fmt_bytes(m.budget_bytes)}"
    st.plotly_chart(charts.memory_vs_batch(
        frame, m.budget_bytes, label, largest,
        f"Peak training memory vs batch size ({report.dtype}, {convention} activations"
        f"{', checkpointed' if checkpointing else ''})"), width="stretch")
    need = sum(line.at(report.batch_size) for line in lines)
    text = (f"Largest batch in {acc.fmt_bytes(m.budget_bytes)}: **B = {largest:,}**" if largest else
            "Not even B = 1 fits in the GPU's memory.")
    st.markdown(f"{text}. Your batch B = {report.batch_size:,} needs **{acc.fmt_bytes(need)}** "
                f"({acc.fmt_int(need)} bytes).")
    if need > m.budget_bytes:
        st.error(f"B = {report.batch_size:,} overflows the GPU: {acc.fmt_bytes(need)} > "
                 f"{acc.fmt_bytes(m.budget_bytes)}.")
    if checkpointing:
        st.caption(f"Checkpointing recomputes the blocks' forward: "
                   f"+{acc.fmt_flops(m.checkpoint_recompute_flops)} per step.")


def _conventions(report: acc.Report) -> None:
    st.subheader("Activations: textbook vs this implementation")
    cols = st.columns(2)
    for col, (name, rows) in zip(cols, report.memory.activations.items()):
        with col:
            st.markdown(f"**{name}**: {acc.fmt_bytes(sum(r.value for r in rows))}")
            component_table(compute.rows_frame(rows, acc.fmt_bytes))
    st.caption("textbook: the CS336 list of intermediate tensors × bytes of the run dtype. implementation: "
               "exactly what this model and its loss save for backward (RMSNorm internals float32, token "
               "ids int64, causal mask bool), deduplicated by storage, parameters excluded.")


def render(report: acc.Report, settings: Settings) -> None:
    checkpointing, convention = _toggles(report)
    _stack(report, checkpointing, convention)
    st.subheader("Peak memory at your batch (implementation convention, no checkpointing)")
    component_table(compute.rows_frame(report.memory.rows, acc.fmt_bytes))
    _conventions(report)
