"""The GPU campaign without a GPU: the whole plan as --dry-run from a plain checkout (streamlit and
plotly unimportable), the targets' arithmetic and the CUDA-only readings from scripted numbers, the
fallbacks, failures and budgets of the runner, and its command line."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import accounting as acc
from accounting.cli_support import run_cli
from validation import ComparisonRow, Measurement, load_results
from validation.campaign import PROG, plan, targets as tg
from validation.reasons import SDPA_RECOMPUTE, UNEXPLAINED

from ..conftest import tiny

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


# --- the whole plan, as a user without a GPU runs it ----------------------------------------------
def test_dry_run_from_a_plain_checkout_without_streamlit_or_plotly(tmp_path):
    out = tmp_path / "campaign"
    code = ("import sys; sys.modules['streamlit'] = None; sys.modules['plotly'] = None\n"
            "import validation, runpy\n"
            f"assert validation.__file__.startswith({str(ROOT)!r}), validation.__file__\n"
            f"sys.argv = ['{PROG}', '--dry-run', '--out', {str(out)!r}, '--no-progress']\n"
            "runpy.run_module('validation.campaign', run_name='__main__', alter_sys=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Targets" in proc.stdout and "Dry run" in proc.stdout and "cs336-gpt2-small" in proc.stdout
    summary = (out / "summary.md").read_text()
    plan_rows = [line for line in summary.splitlines() if line.startswith(("| 3a |", "| 5 |"))]
    assert plan_rows and all("| ok |" in line for line in plan_rows)
    for status in ("| failed |", "| out of memory |", "| over budget |", "| skipped |"):
        assert status not in summary
    assert "## All rows" in summary and "## Environment" in summary
    measurements = load_results(out)
    names = sorted(p.name for p in out.glob("*.json"))
    assert len(measurements) == len(names) == 8
    assert "cs336-gpt2-small-tiny_cpu_float32_B2_T32_naive.json" in names
    for m in measurements:  # what the committed-results test demands of every file
        assert {"batch_size", "context_length", "dtype", "steps", "device"} <= set(m.settings)
        assert {"device", "name", "torch", "cuda", "python"} <= set(m.hardware)
        assert all(r.reason != UNEXPLAINED for r in m.rows)
    exact = tg.exactness([(n, m) for n, m in zip(names, measurements)])
    assert exact.met is True and "0 unexplained" in exact.measured
    quantities = {r.quantity for m in measurements for r in m.rows}
    assert {tg.DENSE_PEAK, tg.STEP_MEMORY, tg.STEP_TIME, tg.LARGEST, tg.THROUGHPUT,
            "parameters"} <= quantities
    throughput = next(m for n, m in zip(names, measurements) if n.startswith("throughput_"))
    assert throughput.row(tg.THROUGHPUT, tg.RATIO).measured > 0
    assert not any("did not run" in n or "failed" in n for n in throughput.notes), throughput.notes


# --- the plan --------------------------------------------------------------------------------------
def test_plan_budgets_and_estimates():
    assert sum(s.budget_s for s in plan.PLAN) == plan.DEFAULT_BUDGET_S == 480
    assert sum(s.estimate_s for s in plan.PLAN) <= plan.DEFAULT_BUDGET_S / 2  # margin for compile
    assert all(s.estimate_s < s.budget_s for s in plan.PLAN)
    assert [s.number for s in plan.PLAN] == ["1", "2", "3a", "3b", "3c", "3d", "3e", "4", "5"]


def test_select_steps():
    keys = lambda only: [s.key for s in plan.select(only)]  # noqa: E731
    assert keys(None) == [s.key for s in plan.PLAN]
    assert keys("throughput") == ["env", "throughput"]
    assert keys("5,2") == ["env", "peak", "throughput"]
    assert keys("3") == ["env", "small-fp32", "small-bf16", "xl", "xl-ckpt", "tinystories"]
    assert keys("3d, largest-batch") == ["env", "xl-ckpt", "largest-batch"]
    with pytest.raises(ValueError, match="unknown step 7"):
        plan.select("7")


def test_file_names_and_dry_shapes():
    assert plan.file_stem("cs336-gpt2-small", "H100-SXM", "float32", 8, 1024, "naive") == \
        "cs336-gpt2-small_H100-SXM_float32_B8_T1024_naive"
    assert plan.file_stem("x", "H200", "bfloat16", None, 1024, "sdpa", True) == \
        "x_H200_bfloat16_T1024_sdpa_ckpt"
    xl = next(s for s in plan.PLAN if s.key == "xl-ckpt").shape
    cfg, B, T, label = plan.model_config(xl, dry_run=False)
    assert (cfg, B, T, label) == (acc.get_preset("cs336-gpt2-xl").replace(attention="sdpa"), 1, 1024,
                                  "cs336-gpt2-xl")
    cfg, B, T, label = plan.model_config(xl, dry_run=True)
    assert (cfg.d_model, cfg.attention, B, T, label) == (32, "sdpa", 1, 32, "cs336-gpt2-xl-tiny")


def test_deadline():
    from validation.campaign.common import Deadline, OverBudget

    now = [0.0]
    d = Deadline(10, clock=lambda: now[0])
    d.check("start")
    now[0] = 9.5
    assert d.left() == pytest.approx(0.5)
    now[0] = 10.0
    with pytest.raises(OverBudget, match="over its 10 s budget before compile"):
        d.check("compile")


# --- the targets, from scripted rows ---------------------------------------------------------------
def _m(rows, **settings):
    return Measurement(rows, {"device": "cuda"}, {}, settings)


def _row(q, c, s, m, reason="", unit="bytes"):
    return ComparisonRow(q, c, unit, s, m, "conv", reason)


def test_exactness_target():
    equal = _m([_row("parameters", "total", 5, 5), _row("AdamW state", "total", 8, 8)])
    named = _m([_row("backward matmul FLOPs", "total", 10, 12, SDPA_RECOMPUTE)])
    t = tg.exactness([("a", equal), ("b", named)])
    assert t.met is True and "3 rows in 2 measurements: 2 equal, 1 differ for a named reason" in t.measured
    assert SDPA_RECOMPUTE in t.detail
    bad = _m([_row("activations (implementation)", "layers.attn.core", 10, 11, UNEXPLAINED)])
    t = tg.exactness([("a", equal), ("c", bad)])
    assert t.met is False and "1 unexplained" in t.measured and "layers.attn.core" in t.detail
    one_sided = _m([_row("forward matmul FLOPs", "(unattributed)", None, 7)])
    assert tg.exactness([("d", one_sided)]).met is False
    assert tg.exactness([("e", _m([_row("step time", "total", None, 0.1)]))]).met is None


@pytest.mark.parametrize("measured,met", [(1029, True), (971, True), (1031, False), (969, False),
                                          (None, None)])
def test_memory_target_is_three_percent_after_the_residuals(measured, met):
    rows = [_row(tg.STEP_MEMORY, tg.PEAK, 900, measured),
            _row(tg.STEP_MEMORY, tg.PEAK_AFTER_RESIDUALS, 1000, measured, "why")]
    (t,) = tg.memory([("f.json", _m(rows, campaign_label="3a small"))])
    assert t.met is met and t.name == "peak memory, 3a small"
    if measured is not None:
        assert f"{measured / 1000 - 1:+.2%}" in t.measured and f"{measured / 900 - 1:+.2%}" in t.measured
    assert (t.detail == "why") == (met is False)
    assert tg.memory([])[0].met is None


def test_largest_batch_target():
    def run(measured, reason=""):
        return tg.largest_batch([("g", _m([_row(tg.LARGEST, tg.PEAK_AT_PREDICTED, 100, measured, reason)]))])

    assert run(101).met is True and "+1.00%" in run(101).measured
    oom = run(None, f"{tg.OUT_OF_MEMORY} at B=38: OutOfMemoryError: CUDA out of memory")
    assert oom.met is False and "B=38" in oom.measured
    assert run(None).met is None and tg.largest_batch([]).met is None


@pytest.mark.parametrize("mfu,ratio,verdicts", [(0.45, 0.95, (True, True)), (0.4499, 0.9499, (False, False)),
                                                (0.6, None, (True, None))])
def test_throughput_targets(mfu, ratio, verdicts):
    rows = [_row(tg.THROUGHPUT, tg.MFU_TABLE, None, mfu, unit="ratio")]
    if ratio is not None:
        rows.append(_row(tg.THROUGHPUT, tg.RATIO, None, ratio, unit="x"))
    assert tuple(t.met for t in tg.throughput([("h", _m(rows))])) == verdicts


# --- the CUDA-only readings, scripted --------------------------------------------------------------
class Scripted:
    """Allocator counters replaced by a script (the real ones need a GPU)."""

    available = True

    def __init__(self, allocated, requested=None, peaks=(0, 0, 0), workspaces=0, free=None):
        self._allocated, self._requested = iter(allocated), iter(requested or [])
        self._peaks, self._workspaces, self._free = peaks, workspaces, free

    def sync(self):
        pass

    def cleanup(self):
        pass

    def allocated(self):
        return next(self._allocated)

    def requested(self):
        return next(self._requested)

    def reset_peak(self):
        pass

    def peaks(self):
        return self._peaks

    def clear_workspaces(self):
        return self._workspaces

    def free_bytes(self):
        return self._free


def test_probe_arithmetic_with_scripted_counters():
    from validation.campaign.memory import predicted, probe

    cfg, B, T = tiny(), 2, 8
    p = predicted(cfg, B, T, "bfloat16", False, "fused")
    # the step starts with float32 weights and AdamW's m and v (4 + 8 bytes per parameter), RoPE's
    # cos and sin tables (C rows of d_k/2 float32 each) and the batch (two (B, T) int64 tensors)
    n, d_k = acc.total_parameters(cfg), cfg.d_model // cfg.num_heads
    assert p.start == 12 * n + 2 * cfg.context_length * (d_k // 2) * 4 + 2 * B * T * 8
    # the forward ends with the (B, T, V) logits alive, in float32 under autocast (the LM head's
    # bf16 output is cast up), so the end of the forward is above the start by at least those
    assert p.end_of_forward >= p.start + B * T * cfg.vocab_size * 4 and p.peak >= p.end_of_forward
    assert p.peak == acc.peak_memory_bytes(cfg, B, T, "bfloat16", optimizer="fused")
    assert predicted(cfg, B, T, "bfloat16", True, "fused").start == p.start
    # baseline (100 allocated, 90 requested), after step 1, at the end of the forward; then the peaks
    counters = Scripted([100, 100 + p.start + 700, 100 + p.end_of_forward + 5_000], [90],
                        peaks=(100 + p.peak + 9_000, 90 + p.peak + 8_000, 123_456), workspaces=600)
    out, notes = probe(cfg, B, T, "bfloat16", False, torch.device("cpu"), counters, timed_steps=2)
    got = {r.component: r for r in out if r.quantity == tg.STEP_MEMORY}
    start = got["start of the step (weights, tables, batch, AdamW state)"]
    assert (start.symbolic, start.measured) == (p.start, p.start + 700)
    assert got["end of the forward (logits alive)"].measured == p.end_of_forward + 5_000
    assert got[tg.PEAK].measured == p.peak + 9_000 and got[tg.PEAK].symbolic == p.peak
    assert got["cuBLAS workspaces"].measured == 600
    assert got["allocator rounding at the peak"].measured == 1_010 - 10  # minus the baseline's own
    after = got[tg.PEAK_AFTER_RESIDUALS]
    assert after.symbolic == p.peak + 600 + 1_000 and after.measured == p.peak + 9_000
    assert "cuBLAS workspaces 600 bytes" in after.reason and got["peak reserved"].measured == 123_456
    assert all(r.reason != UNEXPLAINED for r in out) and not notes
    assert {r.component for r in out if r.quantity == tg.STEP_TIME} == {"median step", "tokens/s"}


def _context(counters, gpu=None):
    from validation.campaign.runner import Context

    written = {}
    ctx = Context(torch.device("cpu"), True, counters, lambda stem, m: written.__setitem__(stem, m))
    ctx.gpu = gpu
    return ctx, written


def test_largest_batch_step_when_the_prediction_runs_out_of_memory(monkeypatch):
    """Step 4 with scripted peaks: B=1 and 2 give the measured line, the predicted batch raises
    CUDA's OOM, and the measured line's batch is tried next."""
    from accounting.memory import BatchFit
    from validation.campaign import steps

    spec = next(s for s in plan.PLAN if s.key == "largest-batch")
    cfg, _, T, _ = plan.model_config(spec.shape, dry_run=True)
    per_seq, fixed = 1_000_000, 3_000_000  # measured: more per sequence than the accounting says
    budget = 40_000_000
    tried = []

    def fake_probe(cfg_, b, T_, dtype, checkpointing, device, counters, **kw):
        tried.append(b)
        if b > 2 and fixed + per_seq * b > budget:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [_row(tg.STEP_MEMORY, tg.PEAK, 1, fixed + per_seq * b)], []

    monkeypatch.setattr(steps, "probe", fake_probe)
    monkeypatch.setattr(steps.acc, "largest_batch_size", lambda c, budget_, t, d, **kw: BatchFit(
        50, 50.5, budget_, 1_000_000, 700_000, "1000000 + 700000*B <= 40000000"))
    ctx, written = _context(Scripted([], free=budget), gpu=acc.get_gpu("H100-SXM"))
    steps.largest_batch_step(ctx, spec)
    assert tried == [1, 2, 50, 37]
    (m,) = written.values()
    rows = {r.component: r for r in m.rows if r.quantity == tg.LARGEST}
    assert rows["memory budget"].measured == budget
    assert rows["batch size"].symbolic == 50
    assert rows["batch size"].measured == math.floor((budget - fixed) / per_seq) == 37
    assert (rows["bytes per sequence"].measured, rows["fixed bytes"].measured) == (per_seq, fixed)
    predicted = rows[tg.PEAK_AT_PREDICTED]
    assert predicted.measured is None and "out of memory at B=50" in predicted.reason
    assert rows["peak at the measured fit's batch"].measured == fixed + per_seq * 37
    assert rows["batch size in the table's memory"].symbolic > 0
    assert tg.largest_batch([("x", m)]).met is False


# --- the runner: failures recorded, the budget respected, fallbacks -------------------------------
def test_failures_are_recorded_and_the_plan_goes_on(tmp_path, monkeypatch):
    from validation.campaign import runner

    def fake(kind):
        def step(ctx, spec):
            if spec.key == "peak":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            if spec.key == "small-fp32":
                raise KeyError("boom")
            if spec.key == "xl":
                ctx.deadline.check("never")  # a budget of 0 s: over at the first check
            ctx.emit(f"m-{spec.key}", _m([_row("parameters", "total", 1, 1)], campaign_label=spec.key))
        return step

    monkeypatch.setattr(runner, "_step_function", fake)
    specs = [dataclasses.replace(s, budget_s=0) if s.key == "xl" else s for s in plan.select("1,2,3a,3b,3c")]
    result = runner.run_plan(specs, tmp_path, device=torch.device("cpu"), dry_run=True, budget_s=100,
                             command="test", progress=False)
    status = {r.spec.key: (r.status, r.error) for r in result.records}
    assert status["peak"][0] == "out of memory" and "20.00 GiB" in status["peak"][1]
    assert status["small-fp32"][0] == "failed" and status["small-fp32"][1].startswith("KeyError: 'boom' (at ")
    assert status["small-bf16"] == ("ok", "") and status["xl"][0] == "over budget"
    assert [n for n, _ in result.measurements] == ["m-env.json", "m-small-bf16.json"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| out of memory |" in summary and "KeyError" in summary and "| over budget |" in summary


def test_the_plan_budget_skips_the_remaining_steps(tmp_path, monkeypatch):
    from validation.campaign import runner

    monkeypatch.setattr(runner, "_step_function", lambda kind: lambda ctx, spec: None)
    result = runner.run_plan(plan.select("2,5"), tmp_path, device=torch.device("cpu"), dry_run=True,
                             budget_s=1e-9, command="test", progress=False)
    assert [(r.spec.key, r.status) for r in result.records] == [("env", "ok"), ("peak", "skipped"),
                                                                ("throughput", "skipped")]
    assert "budget was spent" in result.records[1].error
    assert "| skipped |" in (tmp_path / "summary.md").read_text()


def test_throughput_falls_back_when_compiling_fails():
    from validation.campaign.throughput import OURS, prepare

    cfg = tiny(attention="sdpa")
    x = torch.randint(0, cfg.vocab_size, (2, 8))
    notes = []
    c = prepare(OURS, cfg, torch.device("cpu"), "no-such-backend", "bfloat16", x, x, notes)
    assert c.how.startswith("eager + ") and c.first_step_s > 0
    assert len(notes) == 1 and "no-such-backend" in notes[0] and "falling back" in notes[0]
    assert torch.isfinite(c.step(x, x))


def test_environment_and_dense_peak_on_cpu():
    from validation.campaign.environment import dense_peak_rows, environment

    facts, gpu = environment(torch.device("cpu"), dry_run=True)
    assert gpu is None and facts["gpu_table_entry"] is None and facts["compile_backend"] == "eager"
    assert "flash_attention" in facts["sdpa_kernels"]["float32"] and json.dumps(facts)
    rows, best = dense_peak_rows(torch.device("cpu"), acc.get_gpu("H100-SXM"), dry_run=True)
    assert set(best) == {"bfloat16", "float32"} and all(v > 0 for v in best.values())
    assert rows[0].symbolic == acc.get_gpu("H100-SXM").peak("bfloat16") and rows[0].reason


# --- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--only", "9"], "unknown step 9"),
    (["--budget-s", "0"], "--budget-s must be a positive"),
    (["--budget-s", "x"], "invalid float value"),
    ([], "required: --out"),
])
def test_bad_flags_are_one_line(argv, needle, capsys, tmp_path):
    from validation.campaign.__main__ import main

    args = argv + (["--out", str(tmp_path)] if argv else []) + ["--dry-run"]
    assert run_cli(main, args, prog=PROG) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_no_cuda_without_dry_run_is_one_line(capsys, tmp_path):
    from validation.campaign.__main__ import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run_cli(main, ["--out", str(tmp_path)], prog=PROG) == 2
    assert "--dry-run" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    assert run_cli(main, ["--out", str(tmp_path / "f"), "--dry-run"], prog=PROG) == 2
    assert "not a folder" in capsys.readouterr().err


def test_validation_render_stays_the_function_after_its_submodule_is_imported():
    code = ("import validation.campaign.summary, validation.render, validation, sys; "
            "assert callable(validation.render), validation.render; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
