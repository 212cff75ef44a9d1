"""The Parallelism view: the numbers of accounting.parallel for the chosen N, strategy, K and link,
and one error line for a layout that cannot split the model or the batch."""

from __future__ import annotations

from accounting import fmt_bytes, get_preset
from accounting.layout import Layout
from accounting.parallel_report import parallel_section


def test_metrics_follow_the_layout(ui):
    at = ui.open(view="parallelism", preset="cs336-gpt2-small", batch_size=16)
    ui.clean(at)
    cfg, gpu_memory = get_preset("cs336-gpt2-small"), 80 * 2**30
    want = parallel_section(cfg, Layout(8, "zero3"), batch_size=16, context_length=1024,
                            dtype="float32", peak_flops_per_s=67e12, mfu=0.5,
                            budget_bytes=gpu_memory, steps=10_000, link="NVLink-H100")
    shown = ui.metrics(at)
    assert shown["Per-GPU peak memory"] == fmt_bytes(want.peak_bytes)
    assert shown["Largest per-GPU batch"] == f"{want.largest.per_rank_batch:,}"
    at.selectbox(key="w_par_strategy").set_value("ddp").run()
    at.number_input(key="w_par_tp").set_value(2).run()
    ui.clean(at)
    tp = parallel_section(cfg, Layout(8, "ddp", 2), batch_size=16, context_length=1024,
                          dtype="float32", peak_flops_per_s=67e12, mfu=0.5, budget_bytes=gpu_memory,
                          steps=10_000, link="NVLink-H100")
    assert ui.metrics(at)["Per-GPU peak memory"] == fmt_bytes(tp.peak_bytes)


def test_a_layout_that_cannot_split_is_one_error(ui):
    at = ui.open(view="parallelism", preset="cs336-gpt2-small", batch_size=8)
    at.number_input(key="w_par_gpus").set_value(3).run()
    ui.clean(at)
    assert "multiple of the 3 data-parallel ranks" in at.error[0].value
    at.number_input(key="w_par_gpus").set_value(10).run()
    at.number_input(key="w_par_tp").set_value(5).run()
    assert "must divide num_heads (12)" in at.error[0].value
