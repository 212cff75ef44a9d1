"""Report JSON schema, renderers, CLI behaviour (bad input: one line, exit 2) and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accounting import build_report, get_preset, render, report_to_dict, total_parameters, train_step_flops
from accounting.cli import main
from accounting.cli_support import run_cli
from accounting.format import fmt_bytes, fmt_flops, fmt_int, fmt_seconds, parse_bytes

ROOT = Path(__file__).resolve().parents[2]


def _ints_only(components):
    return all(isinstance(c["value"], int) and not isinstance(c["value"], bool) for c in components)


def test_json_schema_sections_and_exact_ints():
    cfg = get_preset("cs336-gpt2-xl")
    data = json.loads(render(build_report(cfg, batch_size=2, dtype="bfloat16", gpu="A100-80GB"), "json"))
    assert {"config", "parameters", "flops", "memory", "optimizer", "training", "conventions"} <= set(data)
    assert data["parameters"]["total"] == total_parameters(cfg) == 2_127_057_600
    assert data["parameters"]["non_embedding"] == 2_127_057_600 - 50257 * 1600
    assert data["parameters"]["non_embedding_without_head"] == 2_127_057_600 - 2 * 50257 * 1600
    # by hand, 2 FLOPs per multiply-add, forward + 2x backward: per token per layer the
    # projections 2(4d^2 + 3 d d_ff) and the scores and weighted values 4Td, then the head 2dV
    d, d_ff, T, V = 1600, 6400, 1024, 50257
    hand = 3 * 2 * T * (48 * (2 * (4 * d * d + 3 * d * d_ff) + 4 * T * d) + 2 * d * V)
    assert data["flops"]["train_step"] == train_step_flops(cfg, 2, 1024) == hand == 27_080_019_148_800
    acts = data["memory"]["activations"]
    for section in (data["parameters"], data["flops"]["forward"], data["flops"]["backward"], data["memory"],
                    acts["implementation"], acts["textbook"], data["flops"]["nonmatmul_forward"]):
        assert _ints_only(section["components"])
        assert all({"name", "value", "formula"} <= set(c) for c in section["components"])
        assert sum(c["value"] for c in section["components"]) == section["total"]
    # 4 sequences in the A100's 80 GiB under autocast (tests/accounting/test_memory_time.py derives
    # the binding line, the loss's mean, by hand)
    assert data["memory"]["largest_batch"]["batch_size"] == 4
    assert data["memory"]["largest_batch"]["inequality"].endswith(f"<= {80 * 2**30}")
    assert data["config"]["dtype"] == "bfloat16" and data["training"]["gpu"] == "A100-80GB"
    # the AdamW op list in the JSON prices each op by the conventions' table it also prints
    table, ops = data["conventions"]["elementwise_flops"], data["optimizer"]["ops"]
    assert sum(op["flops_per_element"] for op in ops) == data["optimizer"]["flops_per_element"] == 14
    assert all(op["flops_per_element"] == table[op["aten"]] or "alpha" in op["op"] for op in ops)
    assert data["optimizer"]["step_flops"] == 14 * 2_127_057_600
    lm = next(c for c in data["parameters"]["components"] if c["name"] == "lm_head")
    assert lm["formula"] == "V d" and lm["value"] == 50257 * 1600


def test_json_timeline_section_and_peak():
    """Schema 2: the peak is the timeline's maximum, memory.components its composition, and the
    timeline section lists every event with bytes per category."""
    from accounting import SCHEMA_VERSION, peak_memory_bytes
    from accounting.timeline import CATEGORIES

    cfg = get_preset("tinystories")
    data = json.loads(render(build_report(cfg, batch_size=4, context_length=128, dtype="bfloat16"), "json"))
    assert data["schema_version"] == SCHEMA_VERSION == 2
    tl, mem = data["timeline"], data["memory"]
    assert tl["categories"] == list(CATEGORIES) and tl["optimizer"] == "reference"
    assert all(sum(e["bytes"].values()) == e["total"] and set(e["bytes"]) == set(CATEGORIES) for e in tl["events"])
    peak = max(tl["events"], key=lambda e: e["total"])
    assert tl["peak"]["total"] == peak["total"] == mem["peak"] == mem["total"] == peak_memory_bytes(cfg, 4, 128, "bfloat16")
    names = [c["name"] for c in mem["components"]]
    assert names == ["weights", "buffers", "weights_bf16_copy", "gradients", "optimizer_state", "activations",
                     "transients"]
    assert mem["largest_batch"]["event"] and [p["phase"] for p in tl["phase_peaks"]] == [
        "forward", "loss", "backward", "clip", "optimizer", "zero_grad"]


def test_report_dict_round_trips_through_json():
    report = build_report(get_preset("tinystories"), batch_size=4, context_length=128)
    d = report_to_dict(report)
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize("fmt,marker", [("table", "Parameters by component"), ("markdown", "| component |"),
                                        ("latex", r"\begin{tabular}")])
def test_text_renderers(fmt, marker):
    text = render(build_report(get_preset("cs336-gpt2-small"), batch_size=1), fmt)
    hand = 2 * 50257 * 768 + 12 * (4 * 768**2 + 3 * 768 * 3072 + 2 * 768) + 768
    assert hand == 190_460_160
    assert marker in text and "190,460,160" in text


def test_cli_writes_atomically(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert run_cli(main, ["report", "--preset", "cs336-gpt2-small", "--ffn", "silu", "--tie-embeddings",
                          "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["ffn"] == "silu" and data["config"]["tie_embeddings"] is True
    assert data["parameters"]["total"] == 50257 * 768 + 12 * (4 * 768**2 + 2 * 768 * 3072 + 2 * 768) + 768
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_compare_cli(capsys):
    assert run_cli(main, ["compare", "--context-lengths", "1024,4096,16384", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["context_length"] for r in data["rows"]] == [1024, 4096, 16384]
    assert data["attention_overtakes_ffn_at_context_length"]["cs336-gpt2-small"] == 4608.0


@pytest.mark.parametrize("argv,fragment", [
    (["report", "--preset", "nope"], "unknown preset"),
    (["report", "--num-heads", "7"], "must divide"),
    (["report", "--d-model", "-5"], "must be positive"),
    (["report", "--batch-size", "0"], "batch_size"),
    (["report", "--preset", "cs336-gpt2-xl", "--memory-budget", "1GB"], "smaller than the weights"),
    (["report", "--gpu", "TPU9"], "unknown GPU"),
    (["report", "--mfu", "1.5"], "mfu"),
    (["compare", "--presets", "cs336-gpt2-small,bogus"], "unknown preset"),
])
def test_bad_input_one_line_exit_2(argv, fragment, capsys):
    assert run_cli(main, argv, prog="python -m accounting") == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_input_subprocess_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "accounting", "report", "--num-heads", "7"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_import_pulls_in_no_torch_or_streamlit():
    code = ("import sys, accounting; accounting.build_report; accounting.render; "
            "print(sorted(m for m in ('torch', 'streamlit') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_every_public_name_resolves_to_its_module():
    import importlib

    import accounting
    from accounting import _LAZY

    for name in accounting.__all__:
        home = importlib.import_module(f"accounting.{_LAZY[name]}" if name in _LAZY else "accounting.config")
        assert getattr(accounting, name) is getattr(home, name), name
    assert set(accounting.__all__) == set(dir(accounting)) & set(accounting.__all__)


def test_formatting():
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_bytes(80 * 2**30) == "80 GiB" and fmt_bytes(80 * 10**9, binary=False) == "80 GB"
    assert fmt_flops(5.86e15) == "5.86 PFLOP"
    # no exponent between 1000 and 1023 of a binary unit, nor past the largest unit
    assert fmt_bytes(1_063_540_000) == "1,014 MiB" and fmt_bytes(999_700_000, binary=False) == "1,000 MB"
    assert fmt_seconds(6583.6 * 86_400) == "6,584 days" and fmt_seconds(90) == "1.5 min"
    assert parse_bytes("80GB") == 80 * 10**9 and parse_bytes("80GiB") == 80 * 2**30
    with pytest.raises(ValueError):
        parse_bytes("eighty")
