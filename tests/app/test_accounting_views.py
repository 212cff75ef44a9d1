"""The accounting views show what `accounting` computes for the chosen settings (AppTest), the URL
round-trips the state, and bad input is an inline message, never a traceback."""

from __future__ import annotations

import time


import accounting as acc
from accounting.render_json import latex
from accounting.parameters import total_parameters_formula
from explorer.overhead import default_overhead


def _usable(gpu="H100-SXM"):
    """The GPU's memory less the default overhead margin (0 while no CUDA result is committed)."""
    return acc.get_gpu(gpu).memory_bytes - default_overhead(gpu).total_bytes


def _expected(cfg, batch, dtype="float32", gpu="H100-SXM"):
    try:
        fit = acc.largest_batch_size(cfg, _usable(gpu), dtype=dtype)
    except ValueError:
        fit = None
    return {
        "Parameters": acc.fmt_int(acc.total_parameters(cfg)),
        "Memory to load the weights": acc.fmt_bytes(4 * acc.total_parameters(cfg)),
        "Forward FLOPs per step": acc.fmt_flops(acc.forward_flops(cfg, batch)),
        "Training-step FLOPs": acc.fmt_flops(acc.train_step_flops(cfg, batch)),
        "Peak training memory": acc.fmt_bytes(acc.peak_memory_bytes(cfg, batch, dtype=dtype)),
        "Largest batch in the GPU": "none" if fit is None else acc.fmt_int(fit.batch_size),
        "Training time": acc.fmt_seconds(acc.training_seconds(
            cfg, batch_size=batch, steps=10_000, mfu=0.5, peak_flops_per_s=acc.get_gpu(gpu).peak(dtype))),
    }


def _check(ui, at, cfg, batch, **kw):
    ui.clean(at)
    shown = ui.metrics(at)
    for label, value in _expected(cfg, batch, **kw).items():
        assert shown[label] == value, label


def test_overview_follows_preset_context_batch_dtype_gpu(ui):
    at = ui.open()
    _check(ui, at, acc.get_preset("cs336-gpt2-small"), 8)
    assert ui.metrics(at)["Parameters"] == "190,460,160"  # by hand: 12(4d²+3·d·4d+2d)+2Vd+d, d=768, V=50,257
    at.selectbox(key="w_preset").set_value("cs336-gpt2-xl").run()
    _check(ui, at, acc.get_preset("cs336-gpt2-xl"), 8)
    at.number_input(key="w_context_length").set_value(2048).run()
    at.number_input(key="w_batch_size").set_value(3).run()
    xl_2k = acc.get_preset("cs336-gpt2-xl").replace(context_length=2048)
    _check(ui, at, xl_2k, 3)
    at.selectbox(key="w_dtype").set_value("bfloat16").run()
    at.selectbox(key="w_gpu").set_value("A100-40GB").run()
    _check(ui, at, xl_2k, 3, dtype="bfloat16", gpu="A100-40GB")
    assert at.query_params["preset"] == "cs336-gpt2-xl" and at.query_params["context_length"] == "2048"
    assert at.query_params["batch_size"] == "3" and at.query_params["gpu"] == "A100-40GB"


def test_overrides_and_the_url_round_trip(ui):
    at = ui.open(preset="cs336-gpt2-medium")
    at.number_input(key="w_cfg_num_layers").set_value(6).run()
    at.selectbox(key="w_cfg_ffn").set_value("silu").run()
    at.checkbox(key="w_cfg_tie_embeddings").check().run()
    query = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query == {"preset": "cs336-gpt2-medium", "num_layers": "6", "ffn": "silu", "tie_embeddings": "1"}
    cfg = acc.get_preset("cs336-gpt2-medium").replace(num_layers=6, ffn="silu", tie_embeddings=True)
    _check(ui, at, cfg, 8)
    again = ui.open(**query)  # a shared link opens the same state
    _check(ui, again, cfg, 8)
    assert again.number_input(key="w_cfg_num_layers").value == 6
    assert again.selectbox(key="w_cfg_ffn").value == "silu"
    again.selectbox(key="w_preset").set_value("cs336-gpt2-small").run()  # a new preset drops the overrides
    assert again.number_input(key="w_cfg_num_layers").value == 12
    assert dict(again.query_params) == {"preset": "cs336-gpt2-small"} or "num_layers" not in again.query_params


def test_bad_query_values_warn_and_fall_back(ui):
    at = ui.open(preset="gpt9", batch_size="lots", mfu="7", d_model="-3", view="memory")
    ui.clean(at)
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("4 values of this link could not be used")
    assert all(f"`{bad}`" in warnings[0] for bad in ("preset=gpt9", "batch_size=lots", "mfu=7", "d_model=-3"))
    assert at.selectbox(key="w_preset").value == "cs336-gpt2-small"
    assert at.number_input(key="w_batch_size").value == 8


def test_invalid_config_is_an_inline_error(ui):
    at = ui.open(num_heads="7", view="params_flops")
    ui.clean(at)
    assert any("num_heads (7) must divide d_model (768)" in e.value for e in at.error)
    at.number_input(key="w_cfg_num_heads").set_value(12).run()
    assert not at.error


def test_overflowing_batch_is_flagged(ui):
    at = ui.open(preset="cs336-gpt2-xl", batch_size="64")
    ui.clean(at)
    fit = acc.largest_batch_size(acc.get_preset("cs336-gpt2-xl"), _usable())
    assert any("does not fit" in e.value and f"Largest batch that fits: {fit.batch_size}" in e.value
               for e in at.error)


def test_custom_gpu(ui):
    at = ui.open(gpu="custom", peak_tflops="200", memory_gib="24", preset="cs336-gpt2-medium")
    ui.clean(at)
    cfg = acc.get_preset("cs336-gpt2-medium")
    fit = acc.largest_batch_size(cfg, 24 * 2**30 - default_overhead("custom").total_bytes)
    shown = ui.metrics(at)
    assert shown["Largest batch in the GPU"] == str(fit.batch_size)
    seconds = acc.training_seconds(cfg, batch_size=8, steps=10_000, mfu=0.5, peak_flops_per_s=200e12)
    assert shown["Training time"] == acc.fmt_seconds(seconds)


def test_params_flops_tables_hold_the_exact_rows(ui):
    at = ui.open(view="params_flops", preset="cs336-gpt2-large", context_length="4096", batch_size="2")
    ui.clean(at)
    cfg = acc.get_preset("cs336-gpt2-large").replace(context_length=4096)
    params, flops = at.dataframe[0].value, at.dataframe[1].value
    assert list(params["exact"]) == [r.value for r in acc.parameter_rows(cfg)]
    assert list(flops["exact"]) == [r.value for r in acc.forward_flops_rows(cfg, 2)]
    assert any(f"T ≈ {acc.attention_crossover(cfg):,.0f}" in m.value for m in at.markdown)


def test_memory_view_largest_batch_and_toggles(ui):
    at = ui.open(view="memory", preset="cs336-gpt2-medium", context_length="2048")
    ui.clean(at)
    cfg = acc.get_preset("cs336-gpt2-medium").replace(context_length=2048)
    budget = _usable()
    fit = acc.largest_batch_size(cfg, budget)
    assert any(f"**B = {fit.batch_size:,}**" in m.value for m in at.markdown)
    at.toggle(key="w_mem_fused").set_value(True).run()  # fused attention = the sidebar's attention
    assert at.selectbox(key="w_cfg_attention").value == "sdpa" and at.query_params["attention"] == "sdpa"
    fused = acc.largest_batch_size(cfg.replace(attention="sdpa"), budget)
    assert fused.batch_size > fit.batch_size
    assert any(f"**B = {fused.batch_size:,}**" in m.value for m in at.markdown)
    at.checkbox(key="w_checkpointing").check().run()  # a sidebar setting: every view's peak
    assert at.query_params["checkpointing"] == "1"
    ckpt = acc.largest_batch_size(cfg.replace(attention="sdpa"), budget, checkpointing=True)
    assert any(f"**B = {ckpt.batch_size:,}**" in m.value for m in at.markdown)


def test_memory_view_checkpointing_shows_the_timelines_largest_batch(ui):
    at = ui.open(view="memory", preset="cs336-gpt2-medium", context_length="2048", attention="sdpa",
                 checkpointing="1")
    ui.clean(at)
    cfg = acc.get_preset("cs336-gpt2-medium").replace(context_length=2048, attention="sdpa")
    fit = acc.largest_batch_size(cfg, _usable(), checkpointing=True)
    assert any(f"**B = {fit.batch_size:,}**" in m.value for m in at.markdown)


def test_formulas_are_sympy_latex(ui):
    at = ui.open(view="formulas", preset="cs336-gpt2-small", tie_embeddings="1")
    ui.clean(at)
    cfg = acc.get_preset("cs336-gpt2-small").replace(tie_embeddings=True)
    assert at.latex[0].value.strip("$\n") == latex(total_parameters_formula(cfg))
    assert len(at.latex) >= 12 + len(acc.parameter_rows(cfg)) + len(acc.forward_flops_rows(cfg, 1))
    assert any(c.value == latex(total_parameters_formula(cfg)) for c in at.code)  # copyable source
    total = acc.total_parameters(cfg)
    assert any(f"now **{total:,} params**" in m.value for m in at.markdown)
    step = acc.fmt_flops(acc.train_step_flops(cfg, 8))
    assert any("training step" in m.value and f"now **{step}**" in m.value for m in at.markdown)


def test_accounting_views_answer_fast(ui):
    at = ui.open(preset="cs336-gpt2-xl")
    at.number_input(key="w_batch_size").set_value(2).run()  # warm the caches
    start = time.perf_counter()
    at.number_input(key="w_batch_size").set_value(3).run()
    elapsed = time.perf_counter() - start
    ui.clean(at)
    assert elapsed < 2.0, elapsed  # target 0.2 s; loose bound for a busy shared machine


def test_extreme_sizes_render_without_exceptions(ui):
    # exact counts past int64 (Arrow's limit) and a GPU too small for anything
    at = ui.open(context_length="16777216", batch_size="10000000", vocab_size="10000000", gpu="custom",
                 memory_gib="0.001", peak_tflops="0.001")
    for view in ("overview", "params_flops", "memory", "formulas", "downloads"):
        at.radio(key="w_view").set_value(view).run()
        ui.clean(at)
    assert any("overflows the GPU" in e.value for e in at.radio(key="w_view").set_value("memory").run().error)
