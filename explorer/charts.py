"""Plotly figures for the views (pure functions of tables; no Streamlit, no accounting calls)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))


def component_bar(frame: pd.DataFrame, title: str, unit: str) -> go.Figure:
    """Horizontal bars of a component table (columns component, exact, readable, share)."""
    fig = go.Figure(go.Bar(
        x=frame["exact"], y=frame["component"], orientation="h",
        text=[f"{r} ({100 * s:.1f}%)" for r, s in zip(frame["readable"], frame["share"])],
        textposition="auto", hovertemplate="%{y}: %{x:,} " + unit + "<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=unit, yaxis=dict(autorange="reversed"),
                      height=max(260, 28 * len(frame) + 100), **_LAYOUT)
    return fig


def shares_vs_context(frame: pd.DataFrame, crossover: float, current: int, title: str) -> go.Figure:
    """Forward FLOP share of each group against T (log axis), the crossover T marked."""
    fig = go.Figure()
    for group, part in frame.groupby("group", sort=False):
        fig.add_trace(go.Scatter(x=part["context_length"], y=part["share"], name=group,
                                 mode="lines+markers",
                                 hovertemplate="T=%{x:,}: %{y:.1%}<extra>" + group + "</extra>"))
    fig.add_vline(x=crossover, line_dash="dash", line_color="crimson",
                  annotation_text=f"attention core = FFN at T ≈ {crossover:,.0f}",
                  annotation_position="top left")
    fig.add_vline(x=current, line_dash="dot", line_color="gray", annotation_text=f"your T = {current:,}",
                  annotation_position="bottom right")
    fig.update_layout(title=title, xaxis=dict(type="log", title="context length T (tokens)"),
                      yaxis=dict(title="share of forward matmul FLOPs", tickformat=".0%"), height=420,
                      **_LAYOUT)
    return fig


def shares_across_sizes(frame: pd.DataFrame, title: str) -> go.Figure:
    """Stacked 100% bars: forward FLOP shares per GPT-2 size."""
    fig = go.Figure()
    for group, part in frame.groupby("group", sort=False):
        fig.add_trace(go.Bar(x=part["model"], y=part["share"], name=group,
                             hovertemplate="%{x}: %{y:.1%}<extra>" + group + "</extra>"))
    fig.update_layout(barmode="stack", title=title, yaxis=dict(tickformat=".0%", title="share"),
                      height=420, **_LAYOUT)
    return fig


def memory_vs_batch(frame: pd.DataFrame, budget_bytes: int, budget_label: str, largest: int,
                    title: str) -> go.Figure:
    """Stacked bytes per component against B, the memory budget as a line, the largest B marked."""
    gib = 2**30
    fig = go.Figure()
    for component, part in frame.groupby("component", sort=False):
        fig.add_trace(go.Bar(x=part["batch_size"], y=part["bytes"] / gib, name=component,
                             hovertemplate="B=%{x}: %{y:.3g} GiB<extra>" + component + "</extra>"))
    fig.add_hline(y=budget_bytes / gib, line_dash="dash", line_color="crimson",
                  annotation_text=budget_label, annotation_position="top left")
    if largest > 0:
        fig.add_vline(x=largest, line_dash="dot", line_color="green",
                      annotation_text=f"largest batch B = {largest:,}", annotation_position="top right")
    fig.update_layout(barmode="stack", title=title, height=520,
                      xaxis=dict(title="batch size B (sequences)", type="category"),
                      yaxis=dict(title="GiB (2³⁰ bytes)"),
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(font=dict(size=10)))
    return fig


def loss_curves(curves: Sequence[tuple[str, list[int], list[float], list[int], list[float]]],
                title: str = "Loss (cross-entropy, nats/token)") -> go.Figure:
    """Train (solid) and validation (dashed, markers) loss per run: (label, steps, losses,
    val_steps, val_losses)."""
    fig = go.Figure()
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    for i, (label, steps, losses, vsteps, vlosses) in enumerate(curves):
        color = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=steps, y=losses, name=f"{label} train", mode="lines",
                                 line=dict(color=color)))
        if vsteps:
            fig.add_trace(go.Scatter(x=vsteps, y=vlosses, name=f"{label} val", mode="lines+markers",
                                     line=dict(color=color, dash="dash")))
    fig.update_layout(title=title, xaxis_title="optimizer step", yaxis_title="loss", height=400, **_LAYOUT)
    return fig
