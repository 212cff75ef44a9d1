"""Committed experiment runs (experiments/results/<subcommand>/*.jsonl), if any: loss curves.

Each JSONL line is one JSON object with at least "step" and "train_loss" and/or "val_loss". Files
are read defensively: unreadable lines are skipped, a missing folder shows nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from explorer import charts

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"


def read_curve(path: Path) -> tuple[list[int], list[float], list[int], list[float]]:
    """(steps, train losses, val steps, val losses) of one JSONL log."""
    steps, losses, vsteps, vlosses = [], [], [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            continue
        for key, xs, ys in (("train_loss", steps, losses), ("val_loss", vsteps, vlosses)):
            value = row.get(key)
            if isinstance(value, (int, float)):
                xs.append(step)
                ys.append(float(value))
    return steps, losses, vsteps, vlosses


def render(root: Path = RESULTS) -> None:
    if not root.is_dir():
        return
    groups = sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("*.jsonl")))
    if not groups:
        return
    with st.expander("Committed experiment runs (experiments/results)"):
        for group in groups:
            curves = [(str(f.relative_to(group).with_suffix("")), *read_curve(f))
                      for f in sorted(group.rglob("*.jsonl"))[:12]]
            curves = [c for c in curves if c[1] or c[3]]
            if curves:
                st.plotly_chart(charts.loss_curves(curves, f"{group.name}: loss (nats/token)"),
                                width="stretch", key=f"exp_{group.name}")
