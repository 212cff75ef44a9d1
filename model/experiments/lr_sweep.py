"""`lr-sweep`: the same model at learning rates on a log grid, up to and past divergence.

The best rate is the non-diverged run with the lowest final validation loss; divergence starts at
the smallest rate whose run diverged (NaN/inf, or loss > divergence_factor x its first loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accounting.errors import UserError
from model.experiments.data import Corpus
from model.experiments.plots import loss_curves, write_page
from model.experiments.runner import RunSpec
from model.experiments.settings import Settings
from model.experiments.summary import RunRecord, Summary
from model.experiments.sweep import Sweep, best_run

DEFAULT_LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def check_lrs(lrs: Sequence[float]) -> list[float]:
    """Sorted, de-duplicated positive rates; ValueError for an empty grid or a bad rate."""
    if not lrs:
        raise UserError("the learning-rate grid is empty")
    bad = [lr for lr in lrs if not (lr > 0 and lr != float("inf"))]
    if bad:
        raise UserError(f"learning rates must be positive and finite, got {bad[0]!r}")
    return sorted(set(lrs))


def run_lr_sweep(settings: Settings, corpus: Corpus, out_dir: str | Path,
                 lrs: Sequence[float] = DEFAULT_LRS) -> Summary:
    """Train `settings.model_cfg` once per rate; write logs, summary.json and two charts."""
    grid = check_lrs(lrs)
    sweep = Sweep("lr-sweep", settings, corpus, out_dir, len(grid), {"lrs": grid})
    for lr in grid:
        sweep.run(RunSpec(f"lr-{lr:g}", "baseline", settings.model_cfg, settings.train_config(lr)))
    summary = sweep.finish(lr_findings(sweep.summary.runs))
    write_charts(summary, sweep.out_dir, settings.plotly_js)
    return summary


def lr_findings(runs: list[RunRecord]) -> dict[str, Any]:
    """Best rate, where divergence starts, and the final losses by rate."""
    best = best_run(runs)
    diverged = sorted(r.lr for r in runs if r.diverged)
    first_div = diverged[0] if diverged else None
    stable = [r.lr for r in runs if not r.diverged and (first_div is None or r.lr < first_div)]
    return {
        "best_lr": best.lr if best else None,
        "best_final_val_loss": best.final_val_loss if best else None,
        "best_final_train_loss": best.final_train_loss if best else None,
        "divergence_starts_at_lr": first_div,
        "largest_stable_lr": max(stable) if stable else None,
        "diverged_lrs": diverged,
        "final_val_loss_by_lr": {f"{r.lr:g}": r.final_val_loss for r in runs},
    }


def write_charts(summary: Summary, out_dir: Path, plotly_js: str) -> None:
    import plotly.graph_objects as go

    runs, f = summary.runs, summary.findings
    fig = loss_curves(out_dir, runs, "Learning-rate sweep: loss by step", label=lambda r: f"lr {r.lr:g}")
    notes = [f"best lr {f['best_lr']}; divergence starts at lr {f['divergence_starts_at_lr']} "
             f"(NaN/inf, or loss above {summary.settings['divergence_factor']} x the first step's loss)"]
    write_page(fig, out_dir, "loss_curves", summary, plotly_js, notes)
    stable = [r for r in runs if not r.diverged]
    fig = go.Figure([
        go.Scatter(x=[r.lr for r in stable], y=[r.final_val_loss for r in stable], mode="lines+markers",
                   name="final validation loss"),
        go.Scatter(x=[r.lr for r in stable], y=[r.final_train_loss for r in stable], mode="lines+markers",
                   name="final train loss (10-step mean)"),
        go.Scatter(x=[r.lr for r in runs if r.diverged], y=[r.initial_loss for r in runs if r.diverged],
                   mode="markers", name="diverged (at its first loss)", marker={"symbol": "x", "size": 12}),
    ])
    fig.update_layout(title="Learning-rate sweep: final loss vs peak lr", template="plotly_white",
                      xaxis_title="peak learning rate (log)", yaxis_title="loss, nats/token")
    fig.update_xaxes(type="log")
    write_page(fig, out_dir, "final_loss_vs_lr", summary, plotly_js, notes)
