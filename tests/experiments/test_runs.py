"""Runner and lr-sweep: divergence is detected, marked and survived; sane rates learn; reruns match."""

from __future__ import annotations

import json
import math

import pytest

from model.experiments import RunSpec, load_summary, redraw_charts, run_lr_sweep
from model.experiments.runner import _Watch, running_means
from model.experiments.sweep import Sweep

from .conftest import TINY, tiny_corpus, tiny_settings


def _step(step, loss):
    return {"type": "step", "step": step, "loss": loss}


def test_watch_stops_when_loss_exceeds_factor_times_first():
    watch = _Watch(1.5)
    for i, loss in enumerate([4.0, 3.9, 5.9, 6.01], start=1):
        watch(_step(i, loss))
        assert watch.stop.is_set() == (loss > 6.0)
    assert watch.divergence.startswith("loss 6.01 > 1.5 x first loss 4")


@pytest.mark.parametrize("val_loss, diverged", [(5.9, False), (6.5, True), (float("nan"), True)])
def test_watch_also_judges_the_validation_loss(val_loss, diverged):
    watch = _Watch(1.5)
    watch(_step(1, 4.0))
    watch({"type": "eval", "step": 2, "val_loss": val_loss})
    assert watch.stop.is_set() == diverged
    assert (watch.divergence or "").startswith("validation loss") == diverged


def test_running_means_against_a_direct_mean():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    windows = [values[max(0, i - 2):i + 1] for i in range(len(values))]
    expected = [sum(w) / len(w) for w in windows]
    assert running_means(values, 3) == pytest.approx(expected)


def test_divergent_rate_is_marked_and_the_sweep_goes_on(tmp_path):
    settings = tiny_settings(steps=25)
    sweep = Sweep("lr-sweep", settings, tiny_corpus(), tmp_path, total_runs=2)
    wild = sweep.run(RunSpec("lr-30", "baseline", TINY, settings.train_config(30.0)))
    sane = sweep.run(RunSpec("lr-0.01", "baseline", TINY, settings.train_config(1e-2)))
    assert wild.diverged and wild.divergence and wild.steps < 25
    assert not sane.diverged and sane.steps == 25
    saved = load_summary(tmp_path)
    assert [r.name for r in saved.runs] == ["lr-30", "lr-0.01"] and saved.runs[0].diverged
    lines = [json.loads(x) for x in (tmp_path / wild.log).read_text().splitlines()]
    assert lines[0]["type"] == "run" and lines[-1] == {"type": "verdict", "diverged": True,
                                                       "divergence": wild.divergence}


def test_sane_rate_lowers_the_loss(tmp_path):
    summary = run_lr_sweep(tiny_settings(steps=40), tiny_corpus(), tmp_path, [1e-2])
    (run,) = summary.runs
    assert run.initial_loss == pytest.approx(math.log(64), abs=0.3)  # uniform over 64 ids at init
    assert run.final_train_loss < run.initial_loss - 1.0
    assert run.final_val_loss < run.initial_loss - 1.0
    assert run.tokens_seen == 40 * 4 * 16 and run.parameters > 0


def test_lr_sweep_reports_best_rate_and_where_divergence_starts(tmp_path):
    summary = run_lr_sweep(tiny_settings(steps=20), tiny_corpus(), tmp_path, [30.0, 1e-2, 1e-4])
    f = summary.findings
    assert [r.lr for r in summary.runs] == [1e-4, 1e-2, 30.0]
    assert f["best_lr"] == 1e-2 and f["divergence_starts_at_lr"] == 30.0 and f["largest_stable_lr"] == 1e-2
    pages = sorted(tmp_path.glob("*.html"))
    assert [p.name for p in pages] == ["final_loss_vs_lr.html", "loss_curves.html"]
    for page in pages:
        page.unlink()
    assert redraw_charts(tmp_path) == pages  # from summary.json and the logs alone
    assert "lr 30 (diverged)" in pages[1].read_text() and "<table>" in pages[0].read_text()


def test_reruns_give_identical_curves_on_cpu(tmp_path):
    def losses(out):
        run_lr_sweep(tiny_settings(), tiny_corpus(), out, [3e-3])
        events = [json.loads(x) for x in (out / "runs" / "lr-0.003.jsonl").read_text().splitlines()]
        return [(e["type"], e.get("loss"), e.get("val_loss")) for e in events
                if e["type"] in ("step", "eval")]

    first, second = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert first == second and len(first) > 12
