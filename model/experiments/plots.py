"""Plotly HTML charts of a sweep, each page followed by a plain HTML table of the summary.

The table is static HTML, so a page shows its numbers even where plotly.js cannot load.
plotly.js placement (`Settings.plotly_js`):
  "shared": one `plotly.min.js` in the parent of the output directory (the sibling result
            directories of experiments/results/ share it), referenced as "../plotly.min.js";
  "inline": embedded in every page (self-contained, ~4.8 MB each);
  "cdn":    loaded from cdn.plot.ly (needs a network connection).
Curves are read back from the per-run JSONL logs, so charts can be redrawn from results alone.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from accounting.atomic import atomic_write_text
from model.experiments.logs import Curve, read_curve
from model.experiments.runner import SMOOTH_STEPS, running_means
from model.experiments.summary import RunRecord, Summary

SHARED_JS = "plotly.min.js"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")


def read_curves(out_dir: Path, run: RunRecord) -> Curve:
    """The loss curves of a run from its JSONL log (empty when the run has no log)."""
    return read_curve(out_dir / run.log) if run.log else Curve()


def loss_curves(out_dir: Path, runs: list[RunRecord], title: str, *, per_token: bool = False,
                smooth: int = SMOOTH_STEPS, log_y: bool = False, label=lambda r: r.name):
    """Training loss (running mean over `smooth` steps) per run, validation loss as markers.

    x is the optimizer step, or tokens seen (step x batch x context) when `per_token`.
    Diverged runs are dotted and marked in the legend.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, run in enumerate(runs):
        c = read_curves(out_dir, run)
        scale = run.batch_size * run.config["context_length"] if per_token else 1
        color, name = PALETTE[i % len(PALETTE)], label(run) + (" (diverged)" if run.diverged else "")
        fig.add_trace(go.Scatter(x=[s * scale for s in c.step], y=running_means(c.loss, smooth),
                                 mode="lines", name=name, legendgroup=run.name, line={"color": color,
                                 "dash": "dot" if run.diverged else "solid"}))
        if c.val_loss:
            fig.add_trace(go.Scatter(x=[s * scale for s in c.eval_step], y=c.val_loss,
                                     mode="markers", name=f"{label(run)} val", legendgroup=run.name,
                                     showlegend=False, marker={"color": color, "symbol": "circle-open",
                                                               "size": 8}))
    x_title = "tokens seen (steps x batch x context)" if per_token else "optimizer step"
    fig.update_layout(title=title, xaxis_title=x_title, template="plotly_white",
                      yaxis_title=f"loss, nats/token (train: {smooth}-step running mean; o = validation)")
    if log_y:
        fig.update_yaxes(type="log")
    if per_token:
        fig.update_xaxes(type="log")
    return fig


def write_page(fig, out_dir: Path, name: str, summary: Summary, plotly_js: str,
               notes: list[str] = ()) -> Path:
    """Write `out_dir/<name>.html`: the chart, notes, and the summary table; return the path."""
    include: Any = {"shared": f"../{SHARED_JS}", "inline": True, "cdn": "cdn"}[plotly_js]
    if plotly_js == "shared":
        _write_shared_js(out_dir.parent / SHARED_JS)
    div = fig.to_html(full_html=False, include_plotlyjs=include)
    title = html.escape(fig.layout.title.text or name)
    body = "\n".join([div, *(f"<p>{html.escape(n)}</p>" for n in notes),
                      runs_table(summary.runs)])
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
    path = out_dir / f"{name}.html"
    atomic_write_text(path, page)
    return path


_CSS = ("body{font-family:sans-serif;margin:1em 2em} table{border-collapse:collapse;font-size:0.9em}"
        " td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#f3f3f3}")

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "run"), ("variant", "variant"), ("lr", "peak lr"), ("batch_size", "batch (seqs)"),
    ("steps", "steps"), ("tokens_seen", "tokens seen"), ("parameters", "parameters"),
    ("initial_loss", "first loss"), ("final_train_loss", "final train loss"),
    ("final_val_loss", "final val loss"), ("tokens_per_s", "tokens/s"),
    ("wall_seconds", "wall s"), ("diverged", "diverged"),
)


def runs_table(runs: list[RunRecord]) -> str:
    """A static HTML table of the runs (losses in nats/token, see summary.json's conventions)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in _COLUMNS)
    rows = ["<tr>" + "".join(f"<td>{html.escape(fmt_cell(key, getattr(r, key)))}</td>" for key, _ in _COLUMNS)
            + "</tr>" for r in runs]
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def fmt_cell(key: str, value: Any) -> str:
    """One place for number formatting in charts and tables."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "lr":
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if key in ("tokens_per_s",) else f"{value:.4g}"
    return str(value)


def _write_shared_js(path: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(js.encode("utf-8")):
        atomic_write_text(path, js)
