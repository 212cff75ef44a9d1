"""The published CS336 answers reproduced from their conventions (accounting.published), by hand,
and the conventions CLI."""

from __future__ import annotations

import json
import math

import pytest

from accounting import get_preset
from accounting.cli import main
from accounting.cli_support import run_cli
from accounting.published import measured_answers, published_answers
from validation.results import RESULTS_DIR

XL = "cs336-gpt2-xl"
V, T, L, d, h, d_ff = 50257, 1024, 48, 1600, 25, 6400
N = 2_127_057_600  # 2Vd + L(4d^2 + 3 d d_ff + 2d) + d
DAYS = 400_000 / (19.5e12 * 0.5) / 86_400  # per FLOP of one step: 400K steps at 50% of 19.5 TFLOP/s


def _by(question_start: str):
    return [a for a in published_answers(get_preset(XL)) if a.question.startswith(question_start)]


def test_the_seeds_batch_by_hand():
    # 16 bytes a parameter (weights, gradients, m, v) in 80 GiB; a sequence: float32 scores
    # (L h T^2), FFN hidden (L T d_ff) and logits (T V)
    per_sequence = 4 * (L * h * T * T + L * T * d_ff + T * V)
    solution = (80 * 2**30 - 16 * N) / per_sequence
    # 4 x (1,258,291,200 + 314,572,800 + 51,463,168) = 6,497,308,672 bytes (6.05 GiB)
    assert per_sequence == 6_497_308_672 and 7.98 < solution < 7.99
    floor_, rounded, ours = _by("largest batch")
    assert (floor_.answer, rounded.answer) == (math.floor(solution), round(solution)) == (7, 8)
    assert floor_.reproduces and rounded.reproduces
    # this project's: every tensor alive at the binding event, the loss (tests/accounting/
    # test_memory_time.py derives its line by hand): 2 sequences at 80 GiB
    assert ours.ours and ours.answer == 2 and "cross_entropy" in ours.convention


def test_adamw_flops_per_parameter():
    nine, ten, fourteen = _by("AdamW")
    # with a multiply-add as one FLOP: m (2), v (3: g*g and a multiply-add), sqrt, +eps, divide,
    # the update's multiply-add: 9; and the weight decay's multiply-add: 10. Every multiply and add:
    # 14 (tests/model/test_fast_optim.py counts the ops the AdamW dispatches)
    assert [a.answer for a in (nine, ten, fourteen)] == [9, 10, 14]
    assert all(a.reproduces for a in (nine, ten, fourteen))


def test_days_to_train_by_hand():
    fwd_two_matrix, fma, closest, ours = _by("days")
    tokens = 1024 * T
    # forward matmuls per token, 2 FLOPs a multiply-add, a two-matrix FFN: the projections
    # 2(4d^2 + 2 d d_ff), scores and weighted values 4 T d, per layer; the head 2 d V
    forward_two = tokens * (L * (2 * (4 * d * d + 2 * d * d_ff) + 4 * T * d) + 2 * d * V)
    assert fwd_two_matrix.value == pytest.approx(forward_two * DAYS, rel=1e-12)
    assert fwd_two_matrix.answer == 1_705 and fwd_two_matrix.reproduces
    full = 3 * tokens * (L * (2 * (4 * d * d + 3 * d * d_ff) + 4 * T * d) + 2 * d * V)  # fwd + 2x bwd
    assert fma.value == pytest.approx(full / 2 * DAYS, rel=1e-12) and fma.answer == 3_292
    assert ours.value == pytest.approx(full * DAYS, rel=1e-12) and ours.answer == 6_583.6
    # the published 6,597 is not reproduced: said so, with the closest convention found
    assert closest.answer == 6_598 and closest.reproduces is False


def test_the_real_models_column_from_a_measurement():
    committed = json.loads((RESULTS_DIR / f"{XL}_meta_float32_B1_T1024_naive.json").read_text())
    out = measured_answers(committed)
    rows = {(r["quantity"], r["component"]): r for r in committed["rows"]}
    peak = rows[("memory timeline", "peak")]
    assert peak["measured"] == peak["symbolic"]
    assert f"{peak['measured']:,} bytes" in out["largest batch in 80 GB (float32, AdamW)"]
    assert "equal to the timeline's" in out["largest batch in 80 GB (float32, AdamW)"]
    assert out["AdamW FLOPs per parameter"].startswith("14 ")
    assert out[next(k for k in out if k.startswith("days"))].startswith("6,583.6")
    # a measurement that disagrees is shown as such
    peak["measured"] += 1
    assert "the timeline says" in measured_answers(committed)["largest batch in 80 GB (float32, AdamW)"]


def test_conventions_cli(tmp_path, capsys):
    assert run_cli(main, ["conventions", "--format", "json"], prog="python -m accounting") == 0
    data = json.loads(capsys.readouterr().out)
    text = json.dumps(data)
    for number in ("1705", "3292", "6597", "6583.6"):
        assert number in text
    out = tmp_path / "c.md"
    assert run_cli(main, ["conventions", "--format", "markdown", "--out", str(out)]) == 0
    assert "| question | convention | value | published | the real model |" in out.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_cli(main, ["conventions", "--measured", str(bad)], prog="python -m accounting") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err and "Traceback" not in err
