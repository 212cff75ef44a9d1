"""The Inference view shows what accounting.build_inference_report computes for the chosen model,
batch, request, dtype and GPU (AppTest); its figures mark the right points."""

from __future__ import annotations

import accounting as acc
from accounting.inference_report import build_inference_report
from explorer.inference import batch_axis, memory_frame, roofline_points


def test_metrics_follow_the_request_dtype_and_gpu(ui):
    at = ui.open(view="inference", preset="tinystories", batch_size=4)
    ui.clean(at)
    cfg = acc.get_preset("tinystories")
    # defaults: G = context / 4 = 64, P fills the context: P + G - 1 = 256
    r = build_inference_report(cfg, batch_size=4, prompt_tokens=193, new_tokens=64, dtype="bfloat16",
                               gpu="H100-SXM")
    shown = ui.metrics(at)
    assert shown["KV cache"] == acc.fmt_bytes(r.kv_cache_bytes.value)
    assert shown["Time per output token (bound)"] == acc.fmt_seconds(r.time_per_output_token_s)
    assert shown["Largest batch"] == acc.fmt_int(r.largest_batch)
    at.number_input(key="w_inf_new_tokens").set_value(16).run()
    at.number_input(key="w_inf_prompt_tokens").set_value(100).run()
    at.selectbox(key="w_inf_dtype").set_value("int4").run()
    at.selectbox(key="w_gpu").set_value("H200").run()
    ui.clean(at)
    r = build_inference_report(cfg, batch_size=4, prompt_tokens=100, new_tokens=16, dtype="int4", gpu="H200")
    shown = ui.metrics(at)
    assert shown["Weights"] == acc.fmt_bytes(r.weight_bytes.value)
    assert shown["Time to first token (bound)"] == acc.fmt_seconds(r.time_to_first_token_s)
    assert shown["Decode tokens/s (bound)"] == f"{r.tokens_per_s:,.0f}"
    # a shorter context clamps the request instead of failing
    at.number_input(key="w_context_length").set_value(64).run()
    ui.clean(at)
    assert at.number_input(key="w_inf_prompt_tokens").value + at.number_input(key="w_inf_new_tokens").value <= 65


def test_custom_gpu_takes_a_bandwidth(ui):
    at = ui.open(view="inference", preset="cs336-gpt2-small", gpu="custom", peak_tflops="100", memory_gib="16")
    ui.clean(at)
    at.number_input(key="w_inf_hbm_tbps").set_value(1.0).run()
    ui.clean(at)
    assert "1 TB/s" in at.markdown[0].value


def test_figure_data():
    r = build_inference_report(acc.get_preset("cs336-gpt2-small"), batch_size=8, prompt_tokens=512, new_tokens=256)
    points = roofline_points(r)
    assert list(points["bound"]) == ["compute", "memory"]
    assert points["intensity"][1] == r.decode.flops_total / r.decode.bytes_total
    frame = memory_frame(r, "batch_size", [1, 2])
    assert frame["KV cache"].tolist() == [r.kv_cache_bytes.value // 8, r.kv_cache_bytes.value // 4]
    frame = memory_frame(r, "sequence_tokens", [767, 1534])
    assert frame["KV cache"].tolist() == [r.kv_cache_bytes.value, 2 * r.kv_cache_bytes.value]
    assert batch_axis(100, 8)[0] == 1 and max(batch_axis(100, 8)) == 121 and 100 in batch_axis(100, 8)
    assert max(batch_axis(100, 8, log=True)) == 125
