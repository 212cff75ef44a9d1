"""Committed experiment runs (experiments/results/<subcommand>/), if any: loss curves and findings.

Per-run logs are JSONL, read by model.experiments.logs.read_curve (bad lines skipped).
`summary.json` may hold a "findings" object, shown as is; unreadable files and a missing folder
show nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from explorer import charts
from model.experiments.logs import read_curve

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
MAX_RUNS = 12


def _findings(group: Path) -> object:
    try:
        return json.loads((group / "summary.json").read_text(encoding="utf-8")).get("findings")
    except (OSError, ValueError, AttributeError):
        return None


def render(root: Path = RESULTS) -> None:
    if not root.is_dir():
        return
    groups = sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("*.jsonl")))
    if not groups:
        return
    with st.expander(f"Committed experiment runs ({', '.join(g.name for g in groups)})"):
        st.caption("From `python -m model.experiments …` (experiments/results): loss in nats/token.")
        for group in groups:
            curves = []
            for f in sorted(group.rglob("*.jsonl"))[:MAX_RUNS]:
                try:
                    c = read_curve(f)
                    curves.append((f.stem, c.step, c.loss, c.eval_step, c.val_loss))
                except OSError:
                    continue
            curves = [c for c in curves if c[1] or c[3]]
            if curves:
                st.plotly_chart(charts.loss_curves(curves, f"{group.name}: loss (nats/token)"),
                                width="stretch", key=f"exp_{group.name}")
            findings = _findings(group)
            if findings:
                st.json(findings, expanded=False)
