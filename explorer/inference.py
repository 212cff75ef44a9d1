"""Inference: serving the model. The roofline (arithmetic intensity against attainable FLOP/s, the
prefill and decode steps marked, the chosen GPU's ridge point), serving memory (weights + KV cache)
against batch and context, the decode tokens/s bound against batch; every number from
accounting.build_inference_report.

Settings: the model, batch size B and GPU come from the sidebar (the sidebar's context length is
the model's context_length, the most tokens a sequence can feed). Prompt tokens P, new tokens G,
the serving dtype and, for a custom GPU, its HBM bandwidth are this view's own widgets; like every
setting they live in the URL (explorer.state: prompt_tokens, new_tokens, serving_dtype, hbm_tbps).
"""

from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import accounting as acc
from accounting.inference import INFERENCE_CONVENTIONS, SERVING_DTYPES
from accounting.inference_report import InferenceReport, build_inference_report
from accounting.render_json import latex
from explorer.sidebar import config_or_error, widget_key
from explorer.state import CUSTOM, Settings, request_tokens

_P, _G, _DTYPE, _BW = (widget_key(n) for n in ("prompt_tokens", "new_tokens", "serving_dtype", "hbm_tbps"))
_LAYOUT = dict(margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.2))


@lru_cache(maxsize=512)
def inference_report(cfg: acc.ModelConfig, batch_size: int, prompt_tokens: int, new_tokens: int, dtype: str,
                     gpu: str, peak_tflops: float, memory_gib: float, hbm_tbps: float) -> InferenceReport:
    """The accounting's report (cached: a widget change costs one report, a few ms)."""
    device = (acc.custom_gpu(peak_tflops * 1e12, int(memory_gib * 2**30), hbm_bytes_per_s=hbm_tbps * 1e12)
              if gpu == CUSTOM else gpu)
    return build_inference_report(cfg, batch_size=batch_size, prompt_tokens=prompt_tokens,
                                  new_tokens=new_tokens, dtype=dtype, gpu=device)


def _log_vline(fig: go.Figure, x: float, text: str, color: str, dash: str) -> None:
    """A vertical line on a log x axis, labelled at the top (a shape takes the data value, an
    annotation on a log axis its log10)."""
    fig.add_vline(x=x, line_dash=dash, line_color=color)
    fig.add_annotation(x=math.log10(x), y=1.0, yref="paper", yanchor="bottom", text=text, showarrow=False,
                       font=dict(size=11, color=color))


def roofline_points(r: InferenceReport, first_decode: InferenceReport | None = None) -> pd.DataFrame:
    """The steps to mark: (step, intensity FLOPs/byte, achieved FLOP/s at the bound, bound)."""
    rows = [("prefill", r.prefill), (f"decode, t = {r.decode_position:,}", r.decode)]
    if first_decode is not None and first_decode.decode_position != r.decode_position:
        rows.append((f"decode, t = {first_decode.decode_position:,}", first_decode.decode))
    return pd.DataFrame([{"step": name, "intensity": p.arithmetic_intensity,
                          "flops_per_s": p.flops_total / p.seconds, "bound": p.bound} for name, p in rows])


def roofline_figure(points: pd.DataFrame, peak: float, bandwidth: float, title: str) -> go.Figure:
    """Attainable FLOP/s = min(peak, intensity x bandwidth) on log axes, the ridge point marked."""
    ridge = peak / bandwidth
    lo = min(points["intensity"].min(), ridge) / 10
    hi = max(points["intensity"].max(), ridge) * 10
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    fig = go.Figure(go.Scatter(x=xs, y=[min(peak, x * bandwidth) for x in xs], mode="lines", name="roofline",
                               line=dict(color="#1f3b73"),
                               hovertemplate="%{x:.3g} FLOPs/byte: %{y:.3g} FLOP/s<extra>roofline</extra>"))
    styles = (("#e76f51", "top center"), ("#2a9d8f", "bottom right"), ("#8ab17d", "top left"))
    for (color, where), (_, p) in zip(styles, points.iterrows()):
        fig.add_trace(go.Scatter(x=[p["intensity"]], y=[p["flops_per_s"]], mode="markers+text", name=p["step"],
                                 text=[p["step"]], textposition=where, marker=dict(size=12, color=color),
                                 hovertemplate=f"{p['step']}: %{{x:.3g}} FLOPs/byte, %{{y:.3g}} FLOP/s "
                                               f"({p['bound']}-bound)<extra></extra>"))
    _log_vline(fig, ridge, f"ridge point {ridge:,.0f} FLOPs/byte", "crimson", "dash")
    fig.update_layout(title=title, height=460, xaxis=dict(type="log", title="arithmetic intensity (FLOPs / byte)"),
                      yaxis=dict(type="log", title="attainable FLOP/s"), **_LAYOUT)
    return fig


def batch_axis(largest: int | None, current: int, points: int = 12, log: bool = False) -> list[int]:
    """About `points` batch sizes from 1 to past both the current and the largest batch, evenly
    spaced (or log-spaced)."""
    top = max(current, math.ceil(1.25 * (largest or 1)), 2)
    spaced = ({max(1, round(top ** (i / (points - 1)))) for i in range(points)} if log else
              set(range(max(1, math.ceil(top / points)), top + 1, max(1, math.ceil(top / points)))))
    return sorted({1, current, *([largest] if largest else []), *spaced})


def memory_frame(r: InferenceReport, axis: str, points: list[int]) -> pd.DataFrame:
    """Serving bytes (weights, KV cache) against the batch size B at the request's S (`axis`
    "batch_size"), or against the tokens per sequence S at the request's B ("sequence_tokens")."""
    other = r.request.sequence_tokens if axis == "batch_size" else r.request.batch_size
    per_token = r.kv_bytes_per_token.value
    return pd.DataFrame([{axis: x, "weights": r.weight_bytes.value, "KV cache": per_token * other * x}
                         for x in points])


def memory_figure(frame: pd.DataFrame, axis: str, r: InferenceReport, marks: list[tuple[int, str, str]],
                  title: str) -> go.Figure:
    """Weights and KV cache stacked against `axis`, the budget as a line, `marks` (x, text, colour)."""
    gib, budget = 2**30, r.capacity.budget_bytes
    fig = go.Figure([
        go.Scatter(x=frame[axis], y=frame[name] / gib, stackgroup="m", name=name, line=dict(color=color),
                   hovertemplate="%{x:,}: %{y:.3g} GiB<extra>" + name + "</extra>")
        for name, color in (("weights", "#1f3b73"), ("KV cache", "#f4a261"))])
    fig.add_hline(y=budget / gib, line_dash="dash", line_color="crimson", annotation_text=f"budget "
                  f"{acc.fmt_bytes(budget)}", annotation_position="top left", annotation_font_color="crimson")
    for x, text, color in marks:
        fig.add_vline(x=x, line_dash="dot", line_color=color, annotation_text=text,
                      annotation_position="top", annotation_font_color=color)
    label = {"batch_size": "batch size B (sequences)", "sequence_tokens": "tokens per sequence S"}[axis]
    fig.update_layout(title=title, height=460, xaxis=dict(title=label), yaxis=dict(title="GiB (2³⁰ bytes)"),
                      **{**_LAYOUT, "margin": dict(l=10, r=10, t=80, b=10)})
    return fig


def _memory_charts(r: InferenceReport) -> None:
    req, largest = r.request, r.largest_batch
    left, right = st.columns(2)
    with left:
        marks = [(req.batch_size, f"your B = {req.batch_size:,}", "gray")]
        marks += [(largest, f"largest B = {largest:,}", "green")] if largest else []
        st.plotly_chart(memory_figure(memory_frame(r, "batch_size", batch_axis(largest, req.batch_size, 40)),
                                      "batch_size", r, marks,
                                      f"Serving memory vs batch (S = {req.sequence_tokens:,} tokens)"),
                        width="stretch")
    with right:  # out to where memory is full, whatever the model's context_length
        top = max(r.config.context_length, math.ceil(1.15 * (r.largest_context or 0)))
        points = sorted({max(1, round(top * i / 60)) for i in range(1, 61)} | {req.sequence_tokens})
        marks = [(r.config.context_length, f"context_length {r.config.context_length:,}", "gray")]
        marks += [(r.largest_context, f"full at S = {r.largest_context:,}", "green")] if r.largest_context else []
        st.plotly_chart(memory_figure(memory_frame(r, "sequence_tokens", points), "sequence_tokens", r, marks,
                                      f"Serving memory vs tokens per sequence (B = {req.batch_size:,})"),
                        width="stretch")


def throughput_frame(reports: list[InferenceReport]) -> pd.DataFrame:
    """Decode tokens/s bound and time per output token per batch size."""
    return pd.DataFrame([{"batch_size": r.request.batch_size, "tokens_per_s": r.tokens_per_s,
                          "tpot_s": r.time_per_output_token_s,
                          "fits": r.capacity.memory_bytes <= r.capacity.budget_bytes}
                         for r in reports if r.tokens_per_s is not None])


def throughput_figure(frame: pd.DataFrame, current: int, title: str) -> go.Figure:
    fits = frame[frame["fits"]]
    over = frame[~frame["fits"]]
    fig = go.Figure([
        go.Scatter(x=fits["batch_size"], y=fits["tokens_per_s"], mode="lines+markers", name="fits in memory",
                   line=dict(color="#2a9d8f"), hovertemplate="B=%{x:,}: %{y:,.0f} tokens/s<extra></extra>"),
        go.Scatter(x=over["batch_size"], y=over["tokens_per_s"], mode="markers", name="exceeds the memory",
                   marker=dict(color="#e76f51", symbol="x"),
                   hovertemplate="B=%{x:,}: %{y:,.0f} tokens/s (does not fit)<extra></extra>"),
    ])
    _log_vline(fig, current, f"your B = {current:,}", "gray", "dot")
    fig.update_layout(title=title, height=420, xaxis=dict(type="log", title="batch size B (sequences)"),
                      yaxis=dict(type="log", title="decode tokens/s (bound, whole batch)"), **_LAYOUT)
    return fig


# ---- the page ---------------------------------------------------------------------------------
def _widgets(settings: Settings, context: int) -> tuple[int, int, str, float]:
    ss = st.session_state
    ss[_P], ss[_G] = request_tokens(context, settings.prompt_tokens, settings.new_tokens)  # clamped
    ss[_DTYPE], ss[_BW] = settings.serving_dtype, settings.hbm_tbps
    c = st.columns(4)
    new = int(c[1].number_input("New tokens G", min_value=1, max_value=context, step=1, key=_G,
                                help="Tokens generated per sequence (G - 1 decode steps after the prefill)."))
    prompt = int(c[0].number_input("Prompt tokens P", min_value=1, max_value=context - new + 1, step=1, key=_P,
                                   help="Prompt tokens per sequence; P + G - 1 ≤ context_length (the sidebar)."))
    dtype = c[2].selectbox("Serving dtype", tuple(SERVING_DTYPES), key=_DTYPE,
                           help="Weights' dtype. int8 / int4: weight-only what-ifs (no scales counted); "
                                "their matmuls and KV cache in bfloat16.")
    bandwidth = settings.hbm_tbps
    if settings.gpu == CUSTOM:
        bandwidth = float(c[3].number_input("HBM bandwidth, TB/s (10¹² B/s)", min_value=0.001, format="%g",
                                            key=_BW))
    else:
        gpu = acc.get_gpu(settings.gpu)
        c[3].metric("HBM bandwidth", acc.fmt_bytes_per_s(gpu.hbm_bytes_per_s), help=gpu.bandwidth_source)
    return prompt, new, dtype, bandwidth


def _metrics(r: InferenceReport) -> None:
    cap = r.capacity
    c = st.columns(4)
    c[0].metric("KV cache", acc.fmt_bytes(r.kv_cache_bytes.value),
                help=f"{acc.fmt_int(r.kv_cache_bytes.value)} bytes = 2·L·B·S·d·h_kv/h × {r.dtype.kv_bytes} "
                     f"bytes "
                     f"({r.dtype.compute}), S = P + G - 1 = {r.request.sequence_tokens:,}.")
    c[1].metric("Weights", acc.fmt_bytes(r.weight_bytes.value),
                help=f"{acc.fmt_int(r.weight_bytes.value)} bytes in {r.dtype.name}.")
    c[2].metric("Time to first token (bound)", acc.fmt_seconds(r.time_to_first_token_s),
                help=f"The prefill: max(FLOPs / peak, bytes / bandwidth); {r.prefill.bound}-bound.")
    tpot = r.time_per_output_token_s
    c[3].metric("Time per output token (bound)", "-" if tpot is None else acc.fmt_seconds(tpot),
                help="Mean bound of the G - 1 decode steps.")
    c = st.columns(4)
    c[0].metric("Decode tokens/s (bound)", "-" if r.tokens_per_s is None else f"{r.tokens_per_s:,.0f}",
                help="B / time per output token, the whole batch.")
    c[1].metric("Largest batch", "none" if r.largest_batch is None else acc.fmt_int(r.largest_batch),
                help=f"floor((budget − weights) / KV per sequence of S = {r.request.sequence_tokens:,} tokens); "
                     f"budget {acc.fmt_bytes(cap.budget_bytes)}.")
    c[2].metric("Serving memory", acc.fmt_bytes(cap.memory_bytes),
                delta=None if cap.memory_bytes <= cap.budget_bytes else "exceeds the GPU", delta_color="inverse",
                help="Weights + KV cache (activations and workspace excluded).")
    c[3].metric("Decode arithmetic intensity", f"{r.decode.arithmetic_intensity:,.1f} FLOPs/B",
                help=f"At t = {r.decode_position:,}; ridge point {r.ridge_point:,.0f} FLOPs/byte.")


def _formulas(r: InferenceReport) -> None:
    with st.expander("Formulas (sympy; sizes as symbols, t = the position a decode step feeds)"):
        for name, expr in (("KV cache bytes", r.kv_cache_bytes.formula),
                           ("weights, bytes", r.weight_bytes.formula),
                           ("prefill FLOPs", sum(x.formula for x in r.prefill.flops)),
                           ("decode FLOPs at position t", sum(x.formula for x in r.decode.flops)),
                           ("bytes moved by a decode step at t", sum(x.formula for x in r.decode.bytes))):
            st.markdown(f"**{name}**")
            st.latex(latex(expr))
        st.caption(" · ".join(f"**{k}**: {v}" for k, v in INFERENCE_CONVENTIONS.as_dict().items()))


def render(settings: Settings) -> None:
    cfg = config_or_error(settings)
    if cfg is None:
        return
    prompt, new, dtype, bandwidth = _widgets(settings, cfg.context_length)
    s = settings
    args = (dtype, s.gpu, s.peak_tflops, s.memory_gib, bandwidth)
    try:
        r = inference_report(cfg, s.batch_size, prompt, new, *args)
    except ValueError as exc:
        st.error(f"This request is not valid: {exc}.")
        return
    st.markdown(f"Serving **B = {s.batch_size:,}** sequences of **P = {prompt:,}** prompt + **G = {new:,}** new "
                f"tokens in **{dtype}** on **{r.gpu}**. Times are roofline *lower bounds*: "
                f"time ≥ max(FLOPs / {acc.fmt_flops_per_s(r.peak_flops_per_s)}, "
                f"bytes / {acc.fmt_bytes_per_s(r.hbm_bytes_per_s)}).")
    _metrics(r)
    first = inference_report(cfg, s.batch_size, prompt, 2, *args) if new > 2 else None
    st.plotly_chart(roofline_figure(roofline_points(r, first), r.peak_flops_per_s, r.hbm_bytes_per_s,
                                    f"Roofline of {r.gpu} ({r.dtype.compute}): prefill and decode steps"),
                    width="stretch")
    _memory_charts(r)
    if new > 1:
        frame = throughput_frame([inference_report(cfg, b, prompt, new, *args)
                                  for b in batch_axis(r.largest_batch, s.batch_size, log=True)])
        st.plotly_chart(throughput_figure(frame, s.batch_size, "Decode tokens/s bound vs batch size"),
                        width="stretch")
        st.caption("Decode is memory-bound while the batch is small: each step reads every weight once for "
                   "the whole batch, so tokens/s grows with B until the KV cache reads dominate the bytes or "
                   "the step reaches the ridge point.")
    _formulas(r)
