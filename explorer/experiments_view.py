"""Committed experiment runs (experiments/results/<subcommand>/), if any: loss curves and findings.

Per-run logs are JSONL, one JSON object per line: trainer events ({"type": "step", "step", "loss"},
{"type": "eval", "step", "val_loss"}) or flat rows with "step" and "train_loss" / "val_loss".
`summary.json` may hold a "findings" object, shown as is. Everything is read defensively: bad lines
are skipped, unreadable files and a missing folder show nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from explorer import charts

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
MAX_RUNS = 12


def read_curve(path: Path) -> tuple[list[int], list[float], list[int], list[float]]:
    """(steps, train losses, val steps, val losses) of one JSONL log."""
    steps, losses, vsteps, vlosses = [], [], [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            continue
        train = row.get("train_loss", row.get("loss") if row.get("type") == "step" else None)
        for value, xs, ys in ((train, steps, losses), (row.get("val_loss"), vsteps, vlosses)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                xs.append(step)
                ys.append(float(value))
    return steps, losses, vsteps, vlosses


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
                    curves.append((f.stem, *read_curve(f)))
                except OSError:
                    continue
            curves = [c for c in curves if c[1] or c[3]]
            if curves:
                st.plotly_chart(charts.loss_curves(curves, f"{group.name}: loss (nats/token)"),
                                width="stretch", key=f"exp_{group.name}")
            findings = _findings(group)
            if findings:
                st.json(findings, expanded=False)
