"""One truth per number: the same link shows the same peak and largest batch in every view, equal
to what accounting computes for those settings (AppTest); the memory toggles and the Inference
request live in the URL; the overhead margin's default comes from committed CUDA results."""

from __future__ import annotations

import json

import pytest

import accounting as acc
from explorer.overhead import NONE_COMMITTED, default_overhead
from explorer.state import parse_query
from validation import ComparisonRow, Measurement

GIB = 2**30
CASES = {
    # the Memory view: both toggles, bf16, T=4096, B=32 (chart 37.5 GiB vs tables 104 GiB)
    "sdpa-checkpointed-bf16": dict(preset="cs336-gpt2-small", context_length="4096", batch_size="32",
                                   dtype="bfloat16", attention="sdpa", checkpointing="1"),
    "textbook-with-overhead": dict(preset="cs336-gpt2-medium", activations="textbook", overhead_gib="3"),
}


def _truth(query: dict) -> tuple[int, int]:
    """(peak bytes, largest batch) by accounting alone, for the settings of `query`."""
    cfg = acc.get_preset(query["preset"]).replace(
        context_length=int(query.get("context_length", acc.get_preset(query["preset"]).context_length)),
        attention=query.get("attention", acc.get_preset(query["preset"]).attention))
    b, dtype = int(query.get("batch_size", 8)), query.get("dtype", "float32")
    convention, ckpt = query.get("activations", "implementation"), query.get("checkpointing") == "1"
    overhead = float(query["overhead_gib"]) * GIB if "overhead_gib" in query else \
        default_overhead("H100-SXM").total_bytes
    peak = acc.peak_memory_bytes(cfg, b, dtype=dtype, convention=convention, checkpointing=ckpt)
    fit = acc.largest_batch_size(cfg, acc.get_gpu("H100-SXM").memory_bytes - int(overhead), dtype=dtype,
                                 convention=convention, checkpointing=ckpt)
    return peak, fit.batch_size


def _chart_total_at(at, batch: int) -> float:
    """GiB the memory chart stacks at `batch` (every bar trace: the peak's parts and the overhead)."""
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    label = f"{batch:,}"
    return sum(t["y"][t["x"].index(label)] for t in fig["data"] if t.get("type") == "bar")


@pytest.mark.parametrize("case", list(CASES))
def test_every_view_shows_the_same_peak_and_largest_batch(ui, case):
    query = CASES[case]
    peak, largest = _truth(query)
    at = ui.open(**query)
    ui.clean(at)
    shown = ui.metrics(at)
    assert shown["Peak training memory"] == acc.fmt_bytes(peak)
    assert shown["Largest batch in the GPU"] == acc.fmt_int(largest)

    at.radio(key="w_view").set_value("memory").run()
    ui.clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert f"**B = {largest:,}**" in text and f"peaks at **{acc.fmt_bytes(peak)}**" in text
    overhead = float(query.get("overhead_gib", 0)) * GIB
    assert _chart_total_at(at, int(query.get("batch_size", 8))) == pytest.approx((peak + overhead) / GIB, rel=1e-12)
    table = next(d.value for d in at.dataframe if "component" in d.value.columns)  # the peak by part
    assert sum(table["exact"]) == peak

    at.radio(key="w_view").set_value("formulas").run()
    ui.clean(at)
    assert any(m.value.startswith("**peak training memory**") and f"now **{acc.fmt_bytes(peak)}**" in m.value
               for m in at.markdown)
    url = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert parse_query(url) == parse_query({**query, "view": "formulas"})  # every setting kept


def test_the_memory_settings_survive_other_views_and_a_reload(ui):
    at = ui.open(view="memory", preset="cs336-gpt2-medium")
    at.radio(key="w_activations").set_value("textbook").run()
    at.number_input(key="w_overhead_gib").set_value(1.5).run()
    for view in ("train", "tokenizer", "inference", "overview"):  # views that do not draw them
        at.radio(key="w_view").set_value(view).run()
        ui.clean(at)
        assert at.query_params["activations"] == "textbook" and at.query_params["overhead_gib"] == "1.5"
    query = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    again = ui.open(**query)  # a reload
    assert again.radio(key="w_activations").value == "textbook"
    assert again.number_input(key="w_overhead_gib").value == 1.5
    cfg = acc.get_preset("cs336-gpt2-medium")
    assert ui.metrics(again)["Peak training memory"] == acc.fmt_bytes(
        acc.peak_memory_bytes(cfg, 8, convention="textbook"))


def test_the_sidebar_shows_only_what_the_view_uses(ui):
    at = ui.open(view="train")
    ui.clean(at)
    assert not [w for w in at.sidebar.selectbox if w.key == "w_preset"]
    assert any("own settings" in c.value for c in at.sidebar.caption)
    at.radio(key="w_view").set_value("measured").run()
    keys = {w.key for w in [*at.sidebar.selectbox, *at.sidebar.number_input, *at.sidebar.slider]}
    assert {"w_preset", "w_batch_size", "w_dtype"} <= keys and not keys & {"w_gpu", "w_mfu", "w_steps"}


def test_inference_request_lives_in_the_url(ui):
    at = ui.open(view="inference", preset="tinystories", prompt_tokens="100", new_tokens="16",
                 serving_dtype="int4")
    ui.clean(at)
    assert at.number_input(key="w_inf_prompt_tokens").value == 100
    assert at.number_input(key="w_inf_new_tokens").value == 16
    assert at.selectbox(key="w_inf_dtype").value == "int4"
    at.number_input(key="w_inf_new_tokens").set_value(32).run()
    at.radio(key="w_view").set_value("overview").run()  # not drawn: kept
    assert at.query_params["new_tokens"] == "32" and at.query_params["prompt_tokens"] == "100"
    assert at.query_params["serving_dtype"] == "int4"


def _cuda_measurement(name: str, context: int, workspace: int, peak: int, reserved: int) -> Measurement:
    rows = [ComparisonRow("CUDA memory", c, "bytes", None, v, "") for c, v in
            (("CUDA context", context), ("cuBLAS workspace", workspace), ("peak", peak), ("reserved", reserved))]
    return Measurement(rows, {"device": "cuda", "name": name}, {}, {"batch_size": 8, "context_length": 1024,
                                                                    "dtype": "bfloat16"})


def test_the_default_overhead_is_read_from_committed_cuda_results(tmp_path):
    assert default_overhead("H100-SXM", tmp_path / "absent") == NONE_COMMITTED
    for i, (name, ctx, ws, peak, reserved) in enumerate((
            ("NVIDIA H100 80GB HBM3", 500 * 2**20, 8 * 2**20, 30 * GIB, 31 * GIB),
            ("NVIDIA H100 80GB HBM3", 520 * 2**20, 8 * 2**20, 10 * GIB, 10 * GIB + 2**20),
            ("NVIDIA A100-SXM4-40GB", 400 * 2**20, 4 * 2**20, 5 * GIB, 6 * GIB))):
        (tmp_path / f"r{i}.json").write_text(json.dumps(_cuda_measurement(name, ctx, ws, peak, reserved).to_dict()))
    h100 = default_overhead("H100-SXM", tmp_path)
    # the larger of the two H100 runs: context + workspace + (reserved - peak), by hand
    assert h100.total_bytes == 500 * 2**20 + 8 * 2**20 + GIB
    assert dict(h100.parts) == {"CUDA context": 500 * 2**20, "cuBLAS workspace": 8 * 2**20, "fragmentation": GIB}
    assert "H100" in h100.source
    other = default_overhead("H200", tmp_path)  # none on this GPU: the largest of all, said so
    assert other.total_bytes == 500 * 2**20 + 8 * 2**20 + GIB and "no committed run on H200" in other.source
    assert default_overhead("A100-40GB", tmp_path).total_bytes == 404 * 2**20 + GIB
