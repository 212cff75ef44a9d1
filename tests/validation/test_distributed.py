"""Parallel layouts measured on 2 spawned gloo ranks equal the accounting exactly: per-rank
parameter, gradient, AdamW-state and activation bytes, DDP's per-rank peak (MemTracker), and every
collective (kind, phase, group size, bytes, count). `python -m validation.measure --parallel zero3 --world-size 2` end to end,
and DDP / ZeRO-2 / TP on a grouped-query, sdpa, tied-embedding variant in one spawn."""

from __future__ import annotations

import json

import pytest

from accounting.cli_support import run_cli
from accounting.config import ModelConfig
from accounting.layout import Layout

pytest.importorskip("torch")
TINY = ["--vocab-size", "37", "--context-length", "8", "--d-model", "16", "--num-layers", "2",
        "--num-heads", "2", "--d-ff", "24"]


def _all_equal(rows) -> None:
    unequal = [(r["quantity"], r["component"], r["symbolic"], r["measured"]) for r in rows
               if r["symbolic"] != r["measured"]]
    assert not unequal, unequal


def test_cli_measures_zero3_on_two_ranks(tmp_path, capsys):
    from validation.measure import PROG, main

    out = tmp_path / "zero3.json"  # the CLI in this process; it spawns the two ranks
    code = run_cli(main, ["--parallel", "zero3", "--world-size", "2", *TINY, "--batch-size", "4",
                          "--format", "json", "--out", str(out), "--no-progress"], prog=PROG)
    assert code == 0, capsys.readouterr().err[-3000:]
    data = json.loads(out.read_text())
    assert data["settings"]["parallel"] == "zero3" and data["settings"]["per_rank_batch"] == 2
    _all_equal(data["rows"])
    quantities = {r["quantity"] for r in data["rows"]}
    assert {"per-rank parameters bytes", "per-rank optimizer state bytes", "per-rank activations bytes",
            "all_gather calls (forward)", "all_gather calls (backward)",
            "reduce_scatter calls (backward)"} <= quantities
    # V = 37 over 2 ranks: rank 1 holds 18 of the embedding's and the head's 19 padded rows
    opt = {r["component"]: r["measured"] for r in data["rows"]
           if r["quantity"] == "per-rank optimizer state bytes"}
    assert opt["rank 0 (dp 0, tp 0)"] - opt["rank 1 (dp 1, tp 0)"] == 8 * 2 * 16


def test_ddp_zero2_and_tensor_parallel_on_a_variant_in_one_spawn():
    from validation.distributed import comparison_rows, measure_layouts

    cfg = ModelConfig(vocab_size=37, context_length=8, d_model=24, num_layers=2, num_heads=4,
                      num_kv_heads=2, d_ff=40, attention="sdpa", tie_embeddings=True)
    layouts = [Layout(2, "ddp"), Layout(2, "zero2"), Layout(2, "ddp", 2)]
    results = measure_layouts(cfg, layouts, batch_size=2)
    for layout in layouts:
        rows = comparison_rows(cfg, layout, results[layout], 2)
        _all_equal([{"quantity": r.quantity, "component": r.component, "symbolic": r.symbolic,
                     "measured": r.measured} for r in rows])
        kinds = {r.quantity for r in rows}
        if layout.tensor_parallel > 1:
            assert {"all_reduce calls (forward)", "all_reduce calls (backward)"} <= kinds
    tp = results[layouts[2]]
    assert all(len(r.calls) == 4 * cfg.num_layers for r in tp)  # 2 per block, each way
    # DDP's peak, MemTracker over a training_step with the buckets tracked (equal above): above the
    # one-device step's peak (the buckets hold every gradient from the start), by at most 4P
    from accounting import total_parameters
    from accounting.timeline import timeline_peak_bytes

    one_device = timeline_peak_bytes(cfg, 1)
    peaks = [r.peak_bytes for r in results[layouts[0]]]
    assert len(set(peaks)) == 1 and one_device < peaks[0] <= one_device + 4 * total_parameters(cfg)
    assert all(r.peak_bytes is None for lay in layouts[1:] for r in results[lay])


@pytest.mark.parametrize("argv,needle", [
    (["--parallel", "zero3", "--world-size", "2", "--tensor-parallel", "3"], "must divide the world size 2"),
    (["--parallel", "zero2", "--world-size", "3", "--batch-size", "4"], "multiple of the 3 data-parallel"),
    (["--parallel", "ddp", "--world-size", "1"], "world size of at least 2"),
    (["--tensor-parallel", "2", "--num-heads", "1"], "must divide num_heads (1)"),
    (["--parallel", "zero3", "--dtype", "bfloat16"], "runs float32"),
])
def test_bad_input_is_one_line(capsys, argv, needle):
    from validation.measure import PROG, main

    assert run_cli(main, [*TINY, *argv, "--no-progress"], prog=PROG) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
