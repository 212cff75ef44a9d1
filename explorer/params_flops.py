"""Parameters and FLOPs: tables by component with shares; how FLOP shares move with T and size."""

from __future__ import annotations

import streamlit as st

import accounting as acc
from explorer import charts, compute
from explorer.state import Settings

from explorer.tables import component_table as _table


def _table_and_bar(frame, title: str, unit: str) -> None:
    """The component table (left) beside its bar chart (right)."""
    left, right = st.columns([3, 2])
    with left:
        _table(frame)
    with right:
        st.plotly_chart(charts.component_bar(frame, title, unit), width="stretch")


def _parameters(report: acc.Report) -> None:
    p = report.parameters
    st.markdown(f"**{acc.fmt_int(p.total)} parameters** (tied matrices once). Non-embedding (Kaplan: "
                f"without token_embeddings, LM head kept): {acc.fmt_int(p.non_embedding)}; matmul "
                f"weights (incl. the LM head): {acc.fmt_int(p.matmul)}.")
    _table_and_bar(compute.rows_frame(p.rows, acc.fmt_count), "Parameters by component", "params")


def _flops(report: acc.Report) -> None:
    f = report.flops
    tokens = report.batch_size * report.context_length
    st.markdown(f"**Forward {acc.fmt_flops(f.forward_total)}, training step {acc.fmt_flops(f.train_step)}** "
                f"({acc.fmt_int(f.train_step)} FLOPs for {acc.fmt_int(tokens)} tokens; 2mnp per matmul, "
                f"causal attention dense, backward = 2× forward).")
    _table_and_bar(compute.rows_frame(f.forward, acc.fmt_flops), "Forward matmul FLOPs by component",
                   "FLOPs")
    st.caption("Rules of thumb beside the exact training-step count:")
    st.dataframe([{"estimate": e.name, "FLOPs": acc.fmt_flops(e.value), "ratio to exact": round(e.ratio, 4),
                   "N means": e.n_meaning} for e in f.estimates], hide_index=True, width="stretch")
    with st.expander("Non-matmul forward FLOPs (optional term, not in the step count)"):
        _table(compute.rows_frame(f.nonmatmul_forward, acc.fmt_flops))


def _shares(report: acc.Report) -> None:
    cfg = report.config
    crossover = acc.attention_crossover(cfg)
    st.markdown(f"The attention core (QKᵀ and softmax·V, the T² terms) overtakes the FFN at "
                f"**T ≈ {crossover:,.0f} tokens** (= {'3·d_ff/2' if cfg.ffn == 'swiglu' else 'd_ff'} "
                f"for this FFN), whatever the batch.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.shares_vs_context(
            compute.shares_vs_context(cfg), crossover, report.context_length,
            "Forward FLOP shares vs context length (this model)"), width="stretch")
    with right:
        st.plotly_chart(charts.shares_across_sizes(
            compute.shares_across_sizes(report.context_length),
            f"Forward FLOP shares across GPT-2 sizes at T = {report.context_length:,}"), width="stretch")


def render(report: acc.Report, settings: Settings) -> None:
    st.header("Parameters by component")
    _parameters(report)
    st.header("FLOPs by component")
    _flops(report)
    st.header("How the shares move")
    _shares(report)
