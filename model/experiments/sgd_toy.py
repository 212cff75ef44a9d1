"""`sgd-toy`: SGD with a 1/sqrt(t+1) decaying rate on a random 10x10 parameter (CS336 assignment 1).

The parameter starts at 5 x N(0, 1) (seeded), the loss is its mean square, and step t (0-based)
updates w <- w - lr / sqrt(t + 1) x grad, with grad = 2 w / 100. Each step multiplies w by
(1 - lr / (50 sqrt(t + 1))), so lr 1e1 decays slowly, lr 1e2 decays fast (the factor starts at -1,
then shrinks below 1 in size), and lr 1e3 diverges (|1 - 20 / sqrt(t + 1)| > 1 until t + 1 = 100).
A run is marked diverged when its loss is NaN/inf or above divergence_factor x its first loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from accounting.errors import UserError
from model.experiments.plots import read_curves, write_page
from model.experiments.settings import Settings
from model.experiments.summary import RunRecord, Summary
from model.experiments.sweep import Sweep

DEFAULT_LRS: tuple[float, ...] = (1e1, 1e2, 1e3)
DEFAULT_STEPS = 10
SHAPE = (10, 10)


class DecayingSGD(torch.optim.Optimizer):
    """SGD whose step t (0-based, per parameter) uses lr / sqrt(t + 1)."""

    def __init__(self, params, lr: float = 1e-3):
        if not lr >= 0:
            raise UserError(f"invalid learning rate: {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                t = self.state[p].get("t", 0)
                p.add_(p.grad, alpha=-group["lr"] / math.sqrt(t + 1))
                self.state[p]["t"] = t + 1
        return loss


def sgd_toy_losses(lr: float, steps: int = DEFAULT_STEPS, seed: int = 0) -> list[float]:
    """The loss before each of `steps` updates, then after the last (steps + 1 values)."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.nn.Parameter(5 * torch.randn(SHAPE, generator=gen))
    opt = DecayingSGD([weights], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (weights ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        opt.step()
    losses.append((weights.detach() ** 2).mean().item())
    return losses


def run_sgd_toy(settings: Settings, out_dir: str | Path, lrs: Sequence[float] = DEFAULT_LRS,
                steps: int = DEFAULT_STEPS) -> Summary:
    """One run per rate (seeded by settings.training.seed); logs, summary.json and a log-scale chart."""
    import json

    from accounting.atomic import atomic_write_text

    from model.experiments.lr_sweep import check_lrs

    grid = check_lrs(lrs)
    block = {"seed": settings.training.seed, "divergence_factor": settings.divergence_factor,
             "plotly_js": settings.plotly_js}
    sweep = Sweep("sgd-toy", settings, None, out_dir, len(grid), {"lrs": grid, "steps": steps},
                  settings_block=block)
    config = {"parameter_shape": list(SHAPE), "init": "5 x N(0, 1)", "loss": "mean(w^2)",
              "optimizer": "SGD, lr / sqrt(t + 1)", "seed": settings.training.seed}
    for lr in grid:
        start = time.perf_counter()
        losses = sgd_toy_losses(lr, steps, settings.training.seed)
        wall = time.perf_counter() - start
        diverged = not all(math.isfinite(x) for x in losses) or \
            max(losses) > settings.divergence_factor * losses[0]
        log = Path("runs") / f"lr-{lr:g}.jsonl"
        events = [{"type": "step", "step": t, "loss": x if math.isfinite(x) else None}
                  for t, x in enumerate(losses)]
        atomic_write_text(sweep.out_dir / log, "".join(json.dumps(e) + "\n" for e in events))
        sweep.add(RunRecord(
            name=f"lr-{lr:g}", variant="sgd-toy", config=config, lr=lr, batch_size=None, steps_planned=steps,
            steps=steps, tokens_seen=None, initial_loss=losses[0], final_train_loss=losses[-1],
            best_train_loss=min(losses), final_val_loss=None, best_val_loss=None, tokens_per_s=None,
            diverged=diverged, divergence=f"loss {losses[-1]:.3g} from {losses[0]:.3g}" if diverged else None,
            end_reason="done", wall_seconds=wall, log=log.as_posix(),
            extra={"losses": [x if math.isfinite(x) else None for x in losses]}))
    runs = sweep.summary.runs
    summary = sweep.finish({f"{r.lr:g}": {"first_loss": r.initial_loss, "final_loss": r.final_train_loss,
                                         "behaviour": _behaviour(r)} for r in runs})
    write_charts(summary, sweep.out_dir, settings.plotly_js)
    return summary


def _behaviour(run: RunRecord) -> str:
    if run.diverged:
        return "diverges"
    ratio = run.final_train_loss / run.initial_loss
    return f"decreases to {ratio:.3g} x its first loss"


def write_charts(summary: Summary, out_dir: Path, plotly_js: str) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in summary.runs:
        c = read_curves(out_dir, run)
        fig.add_trace(go.Scatter(x=c.step, y=c.loss, mode="lines+markers",
                                 name=f"lr {run.lr:g}: {summary.findings[f'{run.lr:g}']['behaviour']}"))
    fig.update_layout(title="SGD with lr / sqrt(t+1) on mean(w^2), w 10x10", template="plotly_white",
                      xaxis_title="step t (loss before update t; last point after the final update)",
                      yaxis_title="mean(w^2) (log)")
    fig.update_yaxes(type="log", exponentformat="power")
    write_page(fig, out_dir, "loss_curves", summary, plotly_js)
