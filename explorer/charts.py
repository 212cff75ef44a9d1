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
    traces = [go.Scatter(x=part["context_length"], y=part["share"], name=group, mode="lines+markers",
                         hovertemplate="T=%{x:,}: %{y:.1%}<extra>" + group + "</extra>")
              for group, part in frame.groupby("group", sort=False)]
    top = dict(y=1.0, yref="paper", yanchor="bottom", showarrow=False)
    shapes = [dict(type="line", x0=x, x1=x, yref="paper", y0=0, y1=1, line=dict(color=color, dash=dash))
              for x, color, dash in ((crossover, "crimson", "dash"), (current, "gray", "dot"))]
    notes = [dict(x=math.log10(crossover), text=f"attention core = FFN<br>at T ≈ {crossover:,.0f}",
                  font=dict(size=11, color="crimson"), **top),  # an annotation on a log axis takes log10
             dict(x=math.log10(current), text=f"your T = {current:,}", xanchor="right", font=dict(size=11), **top)]
    ticks = sorted(set(frame["context_length"]))
    return go.Figure(traces, layout=dict(
        title=title, shapes=shapes, annotations=notes, height=440,
        xaxis=dict(type="log", title="context length T (tokens)", tickvals=ticks,
                   ticktext=[f"{t // 1024}k" if t >= 1024 else str(t) for t in ticks]),
        yaxis=dict(title="share of forward matmul FLOPs", tickformat=".0%"),
        **{**_LAYOUT, "margin": dict(l=10, r=10, t=90, b=10)}))


def shares_across_sizes(frame: pd.DataFrame, title: str) -> go.Figure:
    """Stacked 100% bars: forward FLOP shares per GPT-2 size."""
    fig = go.Figure()
    for group, part in frame.groupby("group", sort=False):
        fig.add_trace(go.Bar(x=part["model"], y=part["share"], name=group,
                             hovertemplate="%{x}: %{y:.1%}<extra>" + group + "</extra>"))
    fig.update_layout(barmode="stack", title=title, yaxis=dict(tickformat=".0%", title="share"),
                      height=420, **_LAYOUT)
    return fig


PART_COLORS: dict[str, str] = {
    # weights (blues), gradients (purple), optimizer (grey), transients (red), overhead (black)
    "weights": "#1f3b73", "buffers": "#6b8fc7", "weights_bf16_copy": "#3a6fb0", "gradients": "#8e6bbf",
    "optimizer_state": "#8c8c8c", "batch": "#f2c14e", "activations": "#f08a24", "transients": "#d1495b",
    "overhead": "#222222"}
"""Fixed colours of the memory parts (accounting.timeline's categories and the textbook's terms)."""
ACTIVATION_COLORS = ("#f08a24", "#2a9d8f", "#e9c46a", "#c0392b", "#6a994e", "#b5838d", "#4d908e",
                     "#f9844a", "#9c6644", "#90be6d", "#e56b6f", "#277da1", "#bc6c25", "#43aa8b")
"""Distinct hues (no blue/grey of the weights, gradients and optimizer) for activations by
component, ordered so that neighbours in a stack differ in hue."""
GROUP_TITLES = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer (AdamW m, v)",
                "activations": "activations", "transients": "transients", "overhead": "overhead margin"}
"""Legend groups, bottom of the stack first."""


def _part_color(part: str, activation_index: int) -> str:
    return PART_COLORS.get(part) or ACTIVATION_COLORS[activation_index % len(ACTIVATION_COLORS)]


def _hline(y: float, color: str, text: str, where: str) -> tuple[dict, dict]:
    """A dashed horizontal line across the plot and its label (a shape and an annotation: built as
    plain dicts, one layout update for all, since add_hline costs milliseconds per call)."""
    shape = dict(type="line", xref="paper", x0=0, x1=1, y0=y, y1=y, line=dict(color=color, dash="dash"))
    label = dict(xref="paper", x=0 if where == "left" else 1, xanchor=where, y=y, yanchor="bottom", text=text,
                 showarrow=False, font=dict(color=color))
    return shape, label


def memory_vs_batch(frame: pd.DataFrame, gpu_bytes: int, gpu_label: str, overhead: Sequence[tuple[str, int]],
                    current: int, largest: int, title: str) -> go.Figure:
    """The peak's parts (frame: batch_size, group, part, bytes) stacked per batch size on a
    categorical axis, the overhead margin on top, the GPU's memory as a line; the user's B and the
    largest B labelled above their stacks. Legend grouped (weights, gradients, optimizer,
    activations, transients, overhead)."""
    gib = 2**30
    batches = sorted(set(frame["batch_size"]))
    labels = [f"{b:,}" for b in batches]
    traces = []
    activation = 0
    order = list(GROUP_TITLES)
    parts = sorted(frame.groupby(["group", "part"], sort=False), key=lambda item: order.index(item[0][0]))
    for (group, part), rows in parts:  # stable sort: parts keep their order within a group
        color = _part_color(part, activation)
        activation += part not in PART_COLORS
        by_batch = dict(zip(rows["batch_size"], rows["bytes"]))
        traces.append(go.Bar(
            x=labels, y=[by_batch.get(b, 0) / gib for b in batches], name=part, marker_color=color,
            legendgroup=group, legendgrouptitle_text=GROUP_TITLES.get(group, group),
            hovertemplate="B=%{x}: %{y:.4g} GiB<extra>" + part + "</extra>"))
    for name, size in overhead:
        traces.append(go.Bar(x=labels, y=[size / gib] * len(batches), name=name, legendgroup="overhead",
                             legendgrouptitle_text=GROUP_TITLES["overhead"],
                             marker=dict(color="rgba(0,0,0,0)", line=dict(color=PART_COLORS["overhead"], width=1),
                                         pattern=dict(shape="/", fgcolor=PART_COLORS["overhead"])),
                             hovertemplate="%{y:.4g} GiB<extra>" + name + "</extra>"))
    line, label = _hline(gpu_bytes / gib, "crimson", gpu_label, "left")
    totals = frame.groupby("batch_size")["bytes"].sum() + sum(b for _, b in overhead)
    marks = {current: "your B"} | ({largest: "largest B"} if largest else {})
    if largest == current:
        marks[current] = "your B = largest B"
    notes = [label] + [  # x: the category's position (numeric-looking labels would be read as one)
        dict(x=batches.index(b), y=totals[b] / gib, text=f"<b>{text}</b>", showarrow=True, arrowhead=2, ay=-28,
             font=dict(color="green" if "largest" in text else "black")) for b, text in marks.items()]
    ticks = [f"<b>{t}</b>" if b in marks else t for b, t in zip(batches, labels)]
    return go.Figure(traces, layout=dict(
        barmode="stack", title=title, height=560, bargap=0.2, shapes=[line], annotations=notes,
        xaxis=dict(title="batch size B (sequences; categories, not to scale)", type="category",
                   tickmode="array", tickvals=labels, ticktext=ticks),
        yaxis=dict(title="GiB (2³⁰ bytes)"),
        legend=dict(font=dict(size=11), groupclick="toggleitem", tracegroupgap=8,
                    traceorder="grouped+reversed"),  # read top-down like the stack
        margin=dict(l=10, r=10, t=70, b=10)))


def timeline_figure(frame: pd.DataFrame, usable_bytes: int, title: str) -> go.Figure:
    """Live bytes by category over the events of one step (frame from explorer.compute.
    timeline_frame), stacked; phases labelled at their first event; the peak and the usable
    memory marked."""
    gib = 2**30
    traces = []
    for category, rows in frame.groupby("category", sort=False):
        if not rows["bytes"].any():
            continue
        traces.append(go.Scatter(
            x=rows["index"], y=rows["bytes"] / gib, name=category, stackgroup="live", mode="lines",
            line=dict(width=0.5, color=PART_COLORS.get(category)), customdata=rows[["name", "phase"]],
            hovertemplate="%{customdata[1]}: %{customdata[0]}<br>%{y:.4g} GiB<extra>" + category + "</extra>"))
    totals = frame.groupby("index")["bytes"].sum()
    peak = int(totals.idxmax())
    line, label = _hline(usable_bytes / gib, "crimson", "usable memory", "right")
    shapes, notes = [line], [label, dict(x=peak, y=totals[peak] / gib, text=f"<b>peak {totals[peak] / gib:.4g} GiB</b>",
                                         showarrow=True, arrowhead=2, ay=-30)]
    events = frame.drop_duplicates("index")
    starts = [(p, i) for p, i in events.groupby("phase", sort=False)["index"].min().items() if p != "start"]
    for k, (phase, first) in enumerate(starts):  # labels on two rows: short phases sit close together
        shapes.append(dict(type="line", x0=first, x1=first, yref="paper", y0=0, y1=1,
                           line=dict(color="gray", dash="dot", width=1)))
        notes.append(dict(x=first, y=1.0 + 0.07 * (k % 2), yref="paper", yanchor="bottom", xanchor="left",
                          text=phase, showarrow=False, font=dict(size=10, color="gray")))
    return go.Figure(traces, layout=dict(
        title=title, height=440, shapes=shapes, annotations=notes,
        xaxis=dict(title="event of the step (allocating calls, in order)"), yaxis=dict(title="GiB (2³⁰ bytes)"),
        **{**_LAYOUT, "margin": dict(l=10, r=10, t=100, b=10)}))


LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#7f7f7f", "#bcbd22")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down", "pentagon",
           "hexagon")


def loss_curves(curves: Sequence[tuple[str, list[int], list[float], list[int], list[float]]],
                title: str = "Loss (cross-entropy, nats/token)", *, x_title: str = "optimizer step",
                colors: Sequence[str] | None = None, log_y: bool = False) -> go.Figure:
    """Train (lines) and validation (markers, dotted) loss per run: (label, xs, losses, val_xs,
    val_losses). Each run has its own colour, dash pattern and marker symbol, so a run whose line
    lies under another's still shows (its markers and dashes). `colors` overrides the palette
    (e.g. a sequential scale for a numeric sweep)."""
    fig = go.Figure()
    for i, (label, steps, losses, vsteps, vlosses) in enumerate(curves):
        color = colors[i] if colors else LINE_COLORS[i % len(LINE_COLORS)]
        symbol, dash = SYMBOLS[i % len(SYMBOLS)], DASHES[i % len(DASHES)]
        fig.add_trace(go.Scatter(x=steps, y=losses, name=f"{label} train", mode="lines+markers",
                                 legendgroup=label, line=dict(color=color, dash=dash, width=2),
                                 marker=dict(symbol=symbol, size=7, maxdisplayed=12, color=color)))
        if vsteps:
            fig.add_trace(go.Scatter(x=vsteps, y=vlosses, name=f"{label} val", mode="lines+markers",
                                     legendgroup=label, line=dict(color=color, dash="dot", width=1),
                                     marker=dict(symbol=f"{symbol}-open", size=10, color=color,
                                                 line=dict(width=2))))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis=dict(title="loss", type="log" if log_y else "linear"),
                      height=420, **_LAYOUT)
    return fig


def sequential_colors(count: int) -> list[str]:
    """`count` colours along a perceptually ordered scale (Viridis, its light end cut off), for
    runs of a numeric sweep: neighbours in the sweep have neighbouring colours, none repeats."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", [0.9 * i / max(count - 1, 1) for i in range(count)])
