"""What the explorer's figures and typeset formulas hold: the memory chart's stacks are the
accounting's peak at every batch size, its legend grouped with distinct colours on a categorical
axis; loss curves tell runs apart; experiment charts order sweeps by number; long formulas wrap;
the tokenizer view groups characters and marks special tokens."""

from __future__ import annotations

import sympy as sp

import accounting as acc
from explorer import charts, compute
from explorer.experiments_view import RESULTS, curves_for_chart, findings_table, run_order
from model.experiments.logs import read_curve

CFG = acc.get_preset("cs336-gpt2-small")
BATCHES = (1, 2, 8, 37)


def test_the_stacks_are_the_accountings_peak_at_every_batch():
    for convention in ("implementation", "textbook"):
        for dtype, ckpt in (("float32", False), ("bfloat16", True)):
            frame = compute.peak_by_batch(CFG, 1024, dtype, convention, ckpt, BATCHES)
            totals = frame.groupby("batch_size")["bytes"].sum()
            for b in BATCHES:
                assert totals[b] == acc.peak_memory_bytes(CFG, b, dtype=dtype, convention=convention,
                                                          checkpointing=ckpt), (convention, dtype, b)


def test_the_memory_chart_is_categorical_grouped_and_distinct():
    frame = compute.peak_by_batch(CFG, 1024, "bfloat16", "textbook", False, BATCHES)
    fig = charts.memory_vs_batch(frame, 80 * 2**30, "H100", [("CUDA context", 2**29)], 8, 37, "t")
    bars = [t for t in fig.data if t.type == "bar"]
    assert fig.layout.xaxis.type == "category" and list(bars[0].x) == ["1", "2", "8", "37"]
    assert list(fig.layout.xaxis.ticktext) == ["1", "2", "<b>8</b>", "<b>37</b>"]  # yours and the largest
    groups = {t.name: t.legendgroup for t in bars}
    assert groups["weights"] == "weights" and groups["optimizer_state"] == "optimizer"
    assert groups["layers.attn.scores"] == "activations" and groups["CUDA context"] == "overhead"
    colours = [t.marker.color for t in bars if t.legendgroup != "overhead"]
    assert len(colours) == len(set(colours))  # no two parts share a colour (issue: near-identical greens)
    # the overhead sits on every stack: the stack at B = 8 is the peak plus the margin
    at8 = sum(t.y[2] for t in bars)
    assert at8 == (acc.peak_memory_bytes(CFG, 8, dtype="bfloat16", convention="textbook") + 2**29) / 2**30


def test_loss_curves_tell_every_run_apart():
    curves = [(f"run{i}", [1, 2], [3.0, 2.0], [2], [2.5]) for i in range(7)]
    fig = charts.loss_curves(curves)
    train = [t for t in fig.data if t.name.endswith("train")]
    styles = {(t.line.color, t.line.dash, t.marker.symbol) for t in train}
    assert len(styles) == 7 and len({t.line.dash for t in train[:6]}) == 6


def test_experiment_charts_order_and_scale_by_the_sweep():
    assert run_order(["batch-1", "batch-128", "batch-16", "batch-2"]) == (
        ["batch-1", "batch-2", "batch-16", "batch-128"], True)
    assert run_order(["no-rope", "baseline"]) == (["baseline", "no-rope"], False)
    batch = {f.stem: read_curve(f) for f in sorted((RESULTS / "batch-size" / "runs").glob("*.jsonl"))}
    curves, x_title, log_y, colors = curves_for_chart(batch)
    assert x_title == "tokens trained" and not log_y and len(set(colors)) == len(curves) == 10
    b16 = next(c for c in curves if c[0] == "batch-16")
    assert b16[1][-1] == batch["batch-16"].step[-1] * 16 * 64  # steps x B x T tokens
    toy = {f.stem: read_curve(f) for f in (RESULTS / "sgd-toy" / "runs").glob("*.jsonl")}
    assert curves_for_chart(toy)[2]  # 3.3e-24 .. 6.9e19: a log axis
    table = findings_table({"10": {"final_loss": 3.1, "behaviour": "decreases"}, "1000": {"final_loss": 6.9e19,
                                                                                        "behaviour": "diverges"}})
    assert list(table["run"]) == ["10", "1000"]


def test_long_formulas_wrap_and_time_reads_mfu_times_p():
    from accounting.render_json import latex
    from explorer.formulas import LINE_CHARS, MFU, PEAK, STEPS, display_latex

    long = acc.parameter_rows(CFG)[0].formula + sp.Add(*(sp.Symbol(f"x_{i}") * i for i in range(1, 40)))
    shown = display_latex(long)
    lines = shown.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}").split(r" \\ ")
    assert len(lines) > 1 and all(len(x) <= LINE_CHARS + 20 for x in lines)
    joined = " ".join(x.lstrip("&").lstrip("+ ") for x in lines)
    assert sorted(joined.replace("+ ", "").split()) == sorted(latex(long).replace("+ ", "").split())
    step = acc.flops.train_step_flops_formula(CFG)
    time = display_latex(STEPS * step / (MFU * PEAK))
    assert time.endswith(r"}{\mathrm{MFU} \cdot P}") and "MFUP" not in time.replace(" ", "")


def test_tokens_group_by_character_and_specials_stand_out():
    from explorer.tokenizer_view import character_groups, token_html

    smile = "🙂".encode()
    pieces = [b"a", smile[:2], smile[2:], b" \n", "<|endoftext|>".encode()]
    assert character_groups(pieces) == [[0], [1, 2], [3], [4]]
    html = token_html(pieces, frozenset({4}))
    assert "🙂" in html and "⟨F0 9F⟩" in html  # the character above its tokens' bytes
    assert "·" in html and "↵" in html  # whitespace shown
    assert "special" in html and "&lt;|endoftext|&gt;" in html
