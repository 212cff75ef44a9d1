"""sgd-toy against its closed form, summary.json round trip and schema, CLI errors and end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from accounting.cli_support import run_cli
from model.experiments import RunRecord, Summary, load_summary, run_sgd_toy, sgd_toy_losses
from model.experiments.cli import PROG, main
from model.experiments.summary import SCHEMA_VERSION

from .conftest import TEXT, tiny_settings


def test_sgd_toy_matches_the_closed_form():
    # grad of mean(w^2) over 100 entries is w / 50, so w_t = w_0 prod_s (1 - lr / (50 sqrt(s + 1)))
    w0 = 5 * torch.randn((10, 10), generator=torch.Generator().manual_seed(0)).double()
    for lr in (1e1, 1e2, 1e3):
        factor, expected = 1.0, []
        for t in range(11):
            expected.append(float((w0 ** 2).mean()) * factor ** 2)
            factor *= 1 - lr / (50 * math.sqrt(t + 1))
        assert sgd_toy_losses(lr, 10) == pytest.approx(expected, rel=1e-4)


def test_sgd_toy_decays_slowly_fast_and_diverges(tmp_path):
    summary = run_sgd_toy(tiny_settings(), tmp_path)
    slow, fast, wild = summary.runs
    assert [r.lr for r in summary.runs] == [1e1, 1e2, 1e3]
    assert not slow.diverged and 0.05 < slow.final_train_loss / slow.initial_loss < 0.5
    assert not fast.diverged and fast.final_train_loss < 1e-10 * fast.initial_loss
    assert wild.diverged and wild.final_train_loss > 1e10 * wild.initial_loss
    assert summary.findings["1000"]["behaviour"] == "diverges"
    assert (tmp_path / "loss_curves.html").is_file()


def test_summary_round_trips_through_strict_json(tmp_path):
    summary = run_sgd_toy(tiny_settings(), tmp_path, lrs=[1e1, 1e5], steps=40)  # 1e5 reaches inf
    text = (tmp_path / "summary.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["schema_version"] == SCHEMA_VERSION and data["experiment"] == "sgd-toy"
    assert set(data) == {"schema_version", "experiment", "settings", "corpus", "environment", "runs",
                         "findings", "conventions"}
    assert set(data["runs"][0]) == {f for f in RunRecord.__dataclass_fields__}
    assert data["runs"][1]["final_train_loss"] is None  # inf became null
    loaded = load_summary(tmp_path)
    assert loaded.to_dict() == summary.to_dict() == Summary.from_dict(data).to_dict()
    assert loaded.environment["load_average_start"] is not None


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "invalid choice: 'bogus'"),
    (["lr-sweep", "--lrs", ","], "the learning-rate grid is empty"),
    (["lr-sweep", "--lrs", "1e-3,-1"], "must be a positive finite number"),
    (["batch-size", "--batch-size", "0"], "must be a positive integer, got 0"),
    (["batch-size", "--max-batch", "0"], "must be a positive integer, got 0"),
    (["batch-size", "--memory-budget", "lots"], "--memory-budget"),
    (["ablations", "--lr", "1e-3", "--lr-from", "x.json"], "give --lr or --lr-from, not both"),
    (["ablations", "--low-lr-factor", "2"], "--low-lr-factor must be below 1"),
    (["lr-sweep", "--device", "cuda:7"], "device"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    if "cuda" in argv[-1] and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    try:  # argparse errors exit inside parse_args; the rest come back through run_cli
        code = run_cli(main, [*argv, "--out", str(tmp_path)] if argv[0] != "bogus" else argv, prog=PROG)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_module_entry_point_reports_an_unknown_subcommand():
    proc = subprocess.run([sys.executable, "-m", "model.experiments", "nope"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid choice" in proc.stderr


def test_cli_lr_sweep_end_to_end_on_a_text_file(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "results" / "lr"
    argv = ["lr-sweep", "--corpus", str(corpus), "--vocab-size", "300", "--context-length", "16",
            "--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "32", "--steps", "4",
            "--batch-size", "2", "--lrs", "1e-2,100", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out), "--no-progress", "--eval-interval", "0"]
    assert run_cli(main, argv, prog=PROG) == 0
    summary = load_summary(out)
    assert summary.corpus["vocab_size"] <= 300 and summary.corpus["text_bytes"] == len(TEXT.encode())
    assert summary.runs[0].config["d_model"] == 16 and len(summary.runs) == 2
    assert (out / "runs" / "lr-0.01.jsonl").is_file() and (tmp_path / "results" / "plotly.min.js").is_file()
    assert 'src="../plotly.min.js"' in (out / "loss_curves.html").read_text()
    assert "best_lr: 0.01" in capsys.readouterr().out
    (entry,) = (tmp_path / "cache").iterdir()  # tokenizer + ids cached once
    assert summary.corpus["cache_entry"] == entry.name  # by name: no machine's path in results
    assert str(tmp_path / "cache") not in (out / "summary.json").read_text()
    assert run_cli(main, argv, prog=PROG) == 0  # second run loads the cache
    assert load_summary(out).runs[0].final_train_loss == summary.runs[0].final_train_loss
