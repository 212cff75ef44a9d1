"""A sweep: the runs of one subcommand, sharing data, progress and an always-current summary.json.

`summary.json` is rewritten after every run, so an interrupted sweep keeps what it finished.
The overall tqdm bar counts runs; the trainer draws one bar per run below it.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from model.experiments.data import Corpus
from model.experiments.runner import RunSpec, train_run
from model.experiments.settings import Settings
from model.experiments.summary import RunRecord, Summary

VAL_FRACTION = 0.1


class Sweep:
    """Runs `RunSpec`s one after another into `out_dir`; `summary` is their Summary.

    The summary's `settings` are `settings.to_dict()` (or `settings_block` where the model and
    schedule do not apply, as in sgd-toy) plus `extra_settings`.
    """

    def __init__(self, experiment: str, settings: Settings, corpus: Corpus | None, out_dir: str | Path,
                 total_runs: int, extra_settings: dict[str, Any] | None = None, *,
                 settings_block: dict[str, Any] | None = None):
        from tqdm.auto import tqdm

        self.settings, self.out_dir = settings, Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.train_data = self.val_data = None
        if corpus is not None:
            from model.trainer import split_tail

            self.train_data, self.val_data = split_tail(corpus.tokens, VAL_FRACTION)
        self.summary = Summary(
            experiment=experiment,
            settings={**(settings_block if settings_block is not None else
                         {**settings.to_dict(), "val_fraction": VAL_FRACTION}), **(extra_settings or {})},
            corpus=corpus.describe() if corpus is not None else None, environment=environment(settings))
        self.bar = tqdm(total=total_runs, desc=experiment, unit="run", disable=not settings.progress)

    def run(self, spec: RunSpec) -> RunRecord:
        """Train one spec (see runner.train_run), append its record, rewrite summary.json."""
        self.bar.set_postfix_str(spec.name)
        record = train_run(spec, self.train_data, self.val_data, self.out_dir,
                           divergence_factor=self.settings.divergence_factor,
                           progress=self.settings.progress)
        self.add(record)
        return record

    def add(self, record: RunRecord) -> None:
        self.summary.runs.append(record)
        self.summary.write(self.out_dir)
        self.bar.update(1)

    def finish(self, findings: dict[str, Any]) -> Summary:
        """Store the findings, note the load at the end, write summary.json, close the bar."""
        self.summary.findings = findings
        self.summary.environment["load_average_end"] = _load_average()
        env = self.summary.environment
        env["wall_seconds"] = round(time.time() - env["started_unix"], 1)
        self.summary.write(self.out_dir)
        self.bar.close()
        return self.summary


def environment(settings: Settings) -> dict[str, Any]:
    """Where the numbers were taken: device, threads, versions, load average (1, 5, 15 min)."""
    import torch

    from model.trainer import default_threads

    device = settings.training.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"device": device, "torch_threads": settings.training.threads or default_threads(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "load_average_start": _load_average(),
            "started_unix": round(time.time(), 1)}


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def best_run(runs: list[RunRecord]) -> RunRecord | None:
    """The non-diverged run with the lowest final validation loss (else final train loss)."""
    def key(r: RunRecord) -> float:
        loss = r.final_val_loss if r.final_val_loss is not None else r.final_train_loss
        return float("inf") if loss is None else loss

    stable = [r for r in runs if not r.diverged and key(r) < float("inf")]
    return min(stable, key=key) if stable else None


def redraw_charts(out_dir: str | Path, plotly_js: str | None = None) -> list[Path]:
    """Rewrite the HTML charts of a finished sweep from its summary.json and JSONL logs alone."""
    from model.experiments import ablations, batch_size, lr_sweep, sgd_toy
    from model.experiments.summary import load_summary

    out = Path(out_dir)
    summary = load_summary(out)
    draw = {"lr-sweep": lr_sweep.write_charts, "batch-size": batch_size.write_charts,
            "ablations": ablations.write_charts, "sgd-toy": sgd_toy.write_charts}[summary.experiment]
    draw(summary, out, plotly_js or summary.settings.get("plotly_js", "shared"))
    return sorted(out.glob("*.html"))
