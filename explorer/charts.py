"""Plotly figures for the views (pure functions of tables; no Streamlit, no accounting calls)."""

from __future__ import annotations

import math
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
    top = dict(y=1.0, yref="paper", yanchor="bottom", showarrow=False, font=dict(size=11))
    fig.add_vline(x=crossover, line_dash="dash", line_color="crimson")
    fig.add_annotation(x=math.log10(crossover), text=f"attention core = FFN<br>at T ≈ {crossover:,.0f}",
                       **{**top, "font": dict(size=11, color="crimson")})
    fig.add_vline(x=current, line_dash="dot", line_color="gray")
    fig.add_annotation(x=math.log10(current), text=f"your T = {current:,}", xanchor="right", **top)
    ticks = sorted(set(frame["context_length"]))
    fig.update_layout(title=title, xaxis=dict(type="log", title="context length T (tokens)", tickvals=ticks,
                                              ticktext=[f"{t // 1024}k" if t >= 1024 else str(t) for t in ticks]),
                      yaxis=dict(title="share of forward matmul FLOPs", tickformat=".0%"), height=440,
                      **{**_LAYOUT, "margin": dict(l=10, r=10, t=90, b=10)})
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


_FIXED_COLORS = {"weights": "#1f3b73", "weights_bf16_copy": "#3a6fb0", "gradients": "#7fa7d9",
                 "optimizer_state": "#8c8c8c"}
_ACTIVATION_COLORS = ("#f4a261", "#e76f51", "#e9c46a", "#2a9d8f", "#8ab17d", "#b5838d", "#6d597a",
                      "#ffb4a2", "#bc6c25", "#90be6d", "#f9844a", "#577590", "#43aa8b", "#f94144",
                      "#277da1", "#cdb4db")


def memory_vs_batch(frame: pd.DataFrame, budget_bytes: int, budget_label: str, largest: int,
                    title: str) -> go.Figure:
    """Stacked bytes per component against B, the memory budget as a line, the largest B marked.
    Weights, gradients and optimizer state in blues/grey at the bottom; activations above."""
    gib = 2**30
    fig = go.Figure()
    batches = sorted(set(frame["batch_size"]))
    activation = 0
    for component, part in frame.groupby("component", sort=False):
        color = _FIXED_COLORS.get(component)
        if color is None:
            color = _ACTIVATION_COLORS[activation % len(_ACTIVATION_COLORS)]
            activation += 1
        fig.add_trace(go.Bar(x=part["batch_size"], y=part["bytes"] / gib, name=component, marker_color=color,
                             hovertemplate="B=%{x}: %{y:.3g} GiB<extra>" + component + "</extra>"))
    fig.add_hline(y=budget_bytes / gib, line_dash="dash", line_color="crimson",
                  annotation_text=budget_label, annotation_position="top left",
                  annotation_font_color="crimson")
    if largest > 0:
        fig.add_vline(x=largest, line_dash="dot", line_color="green", annotation_text=f"largest batch B = {largest:,}",
                      annotation_position="top", annotation_font_color="green")
    fig.update_layout(barmode="stack", title=title, height=540, bargap=0.15,
                      xaxis=dict(title="batch size B (sequences)", tickvals=batches),
                      yaxis=dict(title="GiB (2³⁰ bytes)"), legend=dict(font=dict(size=10), traceorder="reversed"),
                      margin=dict(l=10, r=10, t=70, b=10))
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
