"""Committed experiment runs (experiments/results/<subcommand>/), if any: loss curves and findings.

Per-run logs are JSONL, read by model.experiments.logs.read_curve (bad lines skipped). A group's
runs are sorted by the number in their name when every name has one (lr-0.0001 … lr-1, batch-1 …
batch-512) and then coloured along a sequential scale, else by name with distinct colours; the x
axis is tokens when the runs train different tokens per step (the batch-size sweep), else steps;
the loss axis is logarithmic when the losses span more than three decades (the SGD toy).
`summary.json`'s "findings" are shown as tables. Unreadable files and a missing folder show
nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import charts
from model.experiments.logs import Curve, read_curve

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
MAX_RUNS = 12
LOG_DECADES = 3.0
_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:e-?\d+)?)$")


def _findings(group: Path) -> object:
    try:
        return json.loads((group / "summary.json").read_text(encoding="utf-8")).get("findings")
    except (OSError, ValueError, AttributeError):
        return None


def run_order(names: list[str]) -> tuple[list[str], bool]:
    """(names sorted, numeric): by the number each name ends with when all have one, else by name."""
    numbers = [_NUMBER.search(n) for n in names]
    if names and all(numbers):
        return [n for _, n in sorted(zip((float(m.group(1)) for m in numbers), names))], True
    return sorted(names), False


def curves_for_chart(runs: dict[str, Curve]) -> tuple[list[tuple], str, bool, list[str] | None]:
    """(curves as charts.loss_curves takes them, x-axis title, log y, colours or None) of a group."""
    names, numeric = run_order(list(runs))
    per_step = {runs[n].tokens_per_step for n in names}
    by_tokens = len(per_step) > 1 and None not in per_step
    curves = []
    for n in names:
        c, scale = runs[n], runs[n].tokens_per_step if by_tokens else 1
        curves.append((n, [s * scale for s in c.step], c.loss, [s * scale for s in c.eval_step], c.val_loss))
    losses = [v for c in runs.values() for v in (*c.loss, *c.val_loss) if v > 0]
    log_y = bool(losses) and max(losses) / min(losses) > 10**LOG_DECADES
    colors = charts.sequential_colors(len(names)) if numeric and len(names) > 2 else None
    return curves, "tokens trained" if by_tokens else "optimizer step", log_y, colors


def findings_table(mapping: dict) -> pd.DataFrame:
    """A mapping of runs (name -> mapping of fields, or name -> one value) as rows; a column that
    mixes numbers and text becomes text (Arrow needs one type per column)."""
    frame = pd.DataFrame([{"run": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in mapping.items()])
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: "" if v is None else _fmt(v))
    return frame


def _show_findings(findings: object) -> None:
    """A mapping of runs as one table; else scalars as a list and each per-run mapping as a table."""
    if not isinstance(findings, dict):
        st.write(findings)
        return
    if findings and all(isinstance(v, dict) for v in findings.values()):
        st.dataframe(findings_table(findings), hide_index=True, width="stretch")
        return
    lines = [f"- **{k.replace('_', ' ')}**: {', '.join(map(_fmt, v)) or 'none' if isinstance(v, list) else _fmt(v)}"
             for k, v in findings.items() if not isinstance(v, dict)]
    if lines:
        st.markdown("\n".join(lines))
    for key, value in findings.items():
        if isinstance(value, dict) and value:
            st.caption(key.replace("_", " "))
            st.dataframe(findings_table(value), hide_index=True, width="stretch")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(root: Path = RESULTS) -> None:
    if not root.is_dir():
        return
    groups = sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("*.jsonl")))
    if not groups:
        return
    with st.expander(f"Committed experiment runs ({', '.join(g.name for g in groups)})"):
        st.caption("From `python -m model.experiments …` (experiments/results): loss in nats/token.")
        for group in groups:
            runs = {}
            for f in sorted(group.rglob("*.jsonl"))[:MAX_RUNS]:
                try:
                    curve = read_curve(f)
                except OSError:
                    continue
                if curve.step or curve.eval_step:
                    runs[f.stem] = curve
            if runs:
                curves, x_title, log_y, colors = curves_for_chart(runs)
                st.plotly_chart(charts.loss_curves(curves, f"{group.name}: loss (nats/token)", x_title=x_title,
                                                   colors=colors, log_y=log_y),
                                width="stretch", key=f"exp_{group.name}")
            findings = _findings(group)
            if findings:
                _show_findings(findings)
