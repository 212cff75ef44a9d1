"""The Parallelism view: the numbers of accounting.parallel for the chosen N, strategy, K and link,
read from the URL and written back to it, and one error line for a layout that cannot split the
model or the batch."""

from __future__ import annotations

from accounting import fmt_bytes, fmt_int, fmt_seconds, get_gpu, get_preset
from accounting.layout import Layout
from accounting.parallel_report import parallel_section
from explorer.overhead import default_overhead


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


def test_the_layout_lives_in_the_url(ui):
    at = ui.open(view="parallelism", preset="cs336-gpt2-small", batch_size=32, gpus=16, strategy="zero2",
                 tensor_parallel=2, link="PCIe-5")
    ui.clean(at)
    assert not at.warning
    shown = (at.number_input(key="w_par_gpus").value, at.selectbox(key="w_par_strategy").value,
             at.number_input(key="w_par_tp").value, at.selectbox(key="w_par_link").value)
    assert shown == (16, "zero2", 2, "PCIe-5")
    gpu = get_gpu("H100-SXM")
    want = parallel_section(get_preset("cs336-gpt2-small"), Layout(16, "zero2", 2), batch_size=32,
                            context_length=1024, dtype="float32", peak_flops_per_s=gpu.peak("float32"),
                            mfu=0.5, budget_bytes=gpu.memory_bytes - default_overhead("H100-SXM").total_bytes,
                            steps=10_000, link="PCIe-5")
    assert ui.metrics(at) == {
        "Per-GPU peak memory": fmt_bytes(want.peak_bytes),
        "Largest per-GPU batch": fmt_int(want.largest.per_rank_batch),
        "Communication per step": fmt_seconds(want.time.communication),
        "Training time on 16 GPUs": fmt_seconds(want.training_seconds)}

    at.selectbox(key="w_par_link").set_value("InfiniBand-NDR").run()
    at.number_input(key="w_par_gpus").set_value(1).run()  # K = 2 > N: K follows N down
    ui.clean(at)
    assert at.number_input(key="w_par_tp").value == 1
    at.radio(key="w_view").set_value("overview").run()  # not drawn: kept
    query = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    # K = 1 and the view are defaults: not written
    assert query == {"batch_size": "32", "gpus": "1", "strategy": "zero2", "link": "InfiniBand-NDR"}
    again = ui.open(**{**query, "view": "parallelism"})  # a reload
    assert again.selectbox(key="w_par_link").value == "InfiniBand-NDR"
    assert "on InfiniBand-NDR" in again.metric[2].help  # the communication's link


def test_a_url_layout_out_of_range_is_a_warning(ui):
    at = ui.open(view="parallelism", gpus=4, tensor_parallel=8, link="carrier-pigeon")
    ui.clean(at)
    text = at.warning[0].value
    assert "`tensor_parallel=8` must be at most gpus (4)" in text and "`link=carrier-pigeon`" in text
    assert at.number_input(key="w_par_tp").value == 4
    assert at.selectbox(key="w_par_link").value == "NVLink-H100"  # the default
    assert at.query_params["tensor_parallel"] == "4" and "link" not in at.query_params
