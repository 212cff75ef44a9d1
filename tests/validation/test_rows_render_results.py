"""Measurement rows: rel_diff, JSON round trip, renderers, committed results, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from validation import ComparisonRow, Measurement, load_results, render
from validation.results import RESULTS_DIR
from validation.rows import SCHEMA_VERSION

from .conftest import EXACT


def _measurement(rows=None):
    rows = rows or [ComparisonRow("parameters", "total", "params", 100, 100, "conv"),
                    ComparisonRow("step time", "total", "seconds", None, 0.25, "median", "3 steps")]
    return Measurement(rows, {"device": "cpu", "name": "x"}, {"d_model": 8}, {"batch_size": 2}, ["n"])


def test_rel_diff():
    row = ComparisonRow("q", "c", "bytes", 200, 250, "conv")
    assert row.rel_diff == pytest.approx(0.25) and not row.equal
    assert ComparisonRow("q", "c", "bytes", None, 1, "conv").rel_diff is None
    assert ComparisonRow("q", "c", "bytes", 0, 0, "conv").rel_diff == 0.0
    assert ComparisonRow("q", "c", "bytes", 0, 3, "conv").rel_diff is None
    assert ComparisonRow("q", "c", "bytes", 7, 7, "conv").equal


def test_dict_round_trip_through_json():
    m = _measurement()
    data = json.loads(json.dumps(m.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION and data["rows"][0]["rel_diff"] == 0.0
    assert Measurement.from_dict(data) == m
    with pytest.raises(ValueError, match="schema_version"):
        Measurement.from_dict({**data, "schema_version": 99})
    with pytest.raises(ValueError, match="malformed"):
        Measurement.from_dict({"schema_version": SCHEMA_VERSION, "rows": [{}]})


def test_renderers():
    m = _measurement([ComparisonRow("parameters", "total", "params", 1_234_567, 1_234_567, "c"),
                      ComparisonRow("activations (textbook)", "total", "bytes", 1000, 1500, "c", "why"),
                      ComparisonRow("MFU", "total", "ratio", None, 0.4321, "c")])
    table = render(m, "table")
    assert "1,234,567 (1.23M)" in table and "equal" in table and "+50.000%" in table and "43.21%" in table
    assert "why" in table and "note: n" in table
    markdown = render(m, "markdown")
    assert "| quantity | component |" in markdown and "| MFU | total | - | 43.21% |" in markdown
    assert Measurement.from_dict(json.loads(render(m, "json"))) == m
    with pytest.raises(ValueError, match="format"):
        render(m, "latex")


def test_committed_results_load_and_are_exact():
    results = load_results()
    assert len(results) >= 2
    devices = {r.hardware["device"] for r in results}
    assert {"meta", "cpu"} <= devices
    for m in results:
        for row in m.rows:
            assert row.reason != "unexplained difference", row
            if row.quantity in EXACT and row.reason == "":
                assert row.equal, row
        assert {"batch_size", "context_length", "dtype", "steps", "device"} <= set(m.settings)
        assert {"device", "name", "torch", "cuda", "python"} <= set(m.hardware)


_COMMITTED_META = sorted(p.name for p in RESULTS_DIR.glob("*_meta_*.json"))


@pytest.mark.parametrize("name", _COMMITTED_META)
def test_committed_meta_results_are_what_the_code_measures_now(name):
    """Regenerate each committed meta result with today's code and compare every row (symbolic,
    measured, reason): a file left stale by a change to the model, the accounting or the
    instruments fails here. Regenerate with the command in validation/results/README or
    `python -m validation.measure --device meta ... --format json --out <file>`."""
    from accounting.config import ModelConfig
    from validation.core import measure

    committed = Measurement.from_dict(json.loads((RESULTS_DIR / name).read_text(encoding="utf-8")))
    s = committed.settings
    now = measure(ModelConfig(**committed.config), device="meta", batch_size=s["batch_size"],
                  context_length=s["context_length"], dtype=s["dtype"], steps=s["steps"],
                  optimizer=s.get("optimizer", "reference"),
                  checkpointing=s.get("activation_checkpointing", False))
    rows = lambda m: {(r.quantity, r.component): (r.unit, r.symbolic, r.measured, r.reason) for r in m.rows}  # noqa: E731
    assert rows(now) == rows(committed), f"{name} is stale: regenerate it"
    assert now.settings == committed.settings


_COMMITTED_INFERENCE_META = sorted(p.name for p in (RESULTS_DIR / "inference").glob("*_meta_*.json"))


@pytest.mark.parametrize("name", _COMMITTED_INFERENCE_META)
def test_committed_meta_inference_results_are_what_the_code_measures_now(name):
    from accounting.config import ModelConfig
    from validation.inference import measure_inference

    committed = Measurement.from_dict(json.loads((RESULTS_DIR / "inference" / name).read_text(encoding="utf-8")))
    s = committed.settings
    now = measure_inference(ModelConfig(**committed.config), device="meta", batch_size=s["batch_size"],
                            prompt_tokens=s["prompt_tokens"], new_tokens=s["new_tokens"], dtype=s["dtype"])
    rows = lambda m: {(r.quantity, r.component): (r.unit, r.symbolic, r.measured, r.reason) for r in m.rows}  # noqa: E731
    assert rows(now) == rows(committed), f"{name} is stale: regenerate it"


def test_load_results_names_a_bad_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_measurement().to_dict()))
    assert len(load_results(tmp_path)) == 1
    (tmp_path / "b.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="b.json"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing")
    assert RESULTS_DIR.is_dir()


def test_import_validation_pulls_in_no_torch():
    code = ("import sys, validation; validation.load_results; validation.render; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
