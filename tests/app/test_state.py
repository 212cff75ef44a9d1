"""explorer.state: URL <-> settings, against properties (round trip) and hand-made cases."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings as hsettings, strategies as st

from accounting.config import VARIANT_CHOICES, get_preset
from accounting.conventions import TRAINING_DTYPES
from accounting.hardware import DEFAULT_LINK, LINKS
from accounting.inference import SERVING_DTYPES
from accounting.layout import STRATEGIES
from explorer.state import (
    ACTIVATION_CONVENTIONS, DEFAULTS, GPU_NAMES, PRESETS, VIEWS, Settings, parse_query, request_defaults,
    request_tokens, to_query, with_overrides,
)

_overrides = st.fixed_dictionaries({}, optional={
    "d_model": st.integers(1, 4096), "num_heads": st.integers(1, 64), "num_layers": st.integers(1, 96),
    "vocab_size": st.integers(1, 300_000), "d_ff": st.integers(1, 20_000),
    "tie_embeddings": st.booleans(), "rope_theta": st.floats(1.0, 1e7),
    **{name: st.sampled_from(choices) for name, choices in VARIANT_CHOICES.items()},
})

_memory_and_request = st.fixed_dictionaries({}, optional={
    "activations": st.sampled_from(ACTIVATION_CONVENTIONS), "overhead_gib": st.floats(0, 100),
    "prompt_tokens": st.integers(1, 1 << 20), "new_tokens": st.integers(1, 1 << 20),
    "serving_dtype": st.sampled_from(tuple(SERVING_DTYPES)), "hbm_tbps": st.floats(0.01, 50),
})
_layout = st.integers(1, 65_536).flatmap(lambda n: st.fixed_dictionaries({"gpus": st.just(n)}, optional={
    "tensor_parallel": st.integers(1, n), "strategy": st.sampled_from(STRATEGIES),
    "link": st.sampled_from(tuple(LINKS))}))  # K <= N, as the settings hold it

_settings = st.builds(
    lambda view, preset, ctx, batch, dtype, gpu, peak, mem, mfu, steps, ckpt, job, more, overrides: with_overrides(
        Settings(view=view, preset=preset, context_length=ctx, batch_size=batch, dtype=dtype, gpu=gpu,
                 peak_tflops=peak, memory_gib=mem, mfu=mfu, steps=steps, checkpointing=ckpt, job=job, **more),
        overrides),
    st.sampled_from(list(VIEWS)), st.sampled_from(PRESETS), st.integers(1, 1 << 20), st.integers(1, 4096),
    st.sampled_from(TRAINING_DTYPES), st.sampled_from(GPU_NAMES), st.floats(0.5, 5000), st.floats(0.5, 500),
    st.floats(0.01, 1.0), st.integers(1, 10**9), st.booleans(),
    st.one_of(st.just(""), st.text("0123456789abcdef", min_size=12, max_size=12)),
    st.tuples(_memory_and_request, _layout).map(lambda t: {**t[0], **t[1]}), _overrides)


def _same(a: Settings, b: Settings) -> bool:
    """Equal up to what the URL keeps: custom-GPU fields only matter for the custom GPU."""
    if a.gpu != "custom":
        a = dataclasses.replace(a, peak_tflops=b.peak_tflops, memory_gib=b.memory_gib, hbm_tbps=b.hbm_tbps)
    if a.context_length == a.base_config.context_length:
        a = dataclasses.replace(a, context_length=b.context_length)
    return a == b


@hsettings(max_examples=200, deadline=None)
@given(_settings)
def test_url_round_trip(s):
    back, warnings = parse_query(to_query(s))
    assert warnings == []
    assert _same(s, back)


def test_defaults_give_an_empty_url():
    assert to_query(DEFAULTS) == {}
    assert parse_query({}) == (DEFAULTS, [])


def test_bad_values_fall_back_with_a_warning_each():
    s, warnings = parse_query({"preset": "gpt5", "batch_size": "-1", "mfu": "2", "norm": "batchnorm",
                               "d_model": "x", "whatever": "1", "context_length": "2048"})
    assert (s.preset, s.batch_size, s.mfu, s.overrides) == ("cs336-gpt2-small", 8, 0.5, ())
    assert s.context_length == 2048  # the good value is kept
    assert len(warnings) == 6
    assert any("`preset=gpt5`" in w for w in warnings) and any("whatever" in w for w in warnings)


def test_the_parallel_layout_lives_in_the_url():
    query = {"gpus": "16", "strategy": "zero2", "tensor_parallel": "2", "link": "PCIe-5"}
    s, warnings = parse_query(query)
    assert (s.gpus, s.strategy, s.tensor_parallel, s.link, warnings) == (16, "zero2", 2, "PCIe-5", [])
    assert to_query(s) == query
    defaults = dict(gpus=8, strategy="zero3", tensor_parallel=1, link=DEFAULT_LINK)
    assert to_query(dataclasses.replace(s, **defaults)) == {}  # defaults are not written
    s, warnings = parse_query({"gpus": "0", "strategy": "zero4", "tensor_parallel": "two",
                               "link": "carrier-pigeon"})
    assert (s.gpus, s.strategy, s.tensor_parallel, s.link) == (8, "zero3", 1, DEFAULT_LINK)
    assert [w.split("`")[1] for w in warnings] == ["gpus=0", "strategy=zero4", "tensor_parallel=two",
                                                   "link=carrier-pigeon"]
    s, warnings = parse_query({"gpus": "4", "tensor_parallel": "16"})  # K > N: clamped to N, said
    assert (s.gpus, s.tensor_parallel) == (4, 4)
    assert warnings == ["URL parameter `tensor_parallel=16` must be at most gpus (4); using 4 instead."]
    assert parse_query({"gpus": "6", "tensor_parallel": "4"})[0].tensor_parallel == 4  # the view refuses it


def test_overrides_equal_to_the_preset_are_dropped():
    s, _ = parse_query({"preset": "cs336-gpt2-xl", "d_model": "1600", "num_heads": "32"})
    assert s.overrides == (("num_heads", 32),)
    assert s.config() == get_preset("cs336-gpt2-xl").replace(num_heads=32)


_KEYS = ["view", "preset", "context_length", "batch_size", "dtype", "gpu", "peak_tflops", "memory_gib", "mfu",
         "steps", "checkpointing", "activations", "overhead_gib", "prompt_tokens", "new_tokens", "serving_dtype",
         "hbm_tbps", "gpus", "strategy", "tensor_parallel", "link", "job", "d_model", "num_heads", "norm",
         "tie_embeddings", "rope_theta", "zzz"]


@hsettings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), st.one_of(
    st.text(max_size=12), st.sampled_from(["1024", "1", "0", "custom", "cs336-gpt2-xl", "2.5", "H200", "-1", "16",
                                           "zero2", "PCIe-5"]))))
def test_any_url_gives_settings_and_a_warning_per_bad_value(params):
    settings, warnings = parse_query(params)
    assert isinstance(settings, Settings)
    assert parse_query(to_query(settings)) == (settings, [])  # what was kept is a clean URL
    assert len(warnings) <= len(params)
    assert all(w.startswith(("URL parameter", "Ignored unknown")) for w in warnings)


def test_the_inference_request_defaults_and_clamps():
    # T = 256: G = 256 / 4 = 64, P fills the context: P + G - 1 = 256
    assert request_tokens(256, None, None) == (193, 64)
    assert request_tokens(64, 100, 16) == (49, 16)      # P clamped to T - G + 1
    assert request_tokens(2048, None, None) == (1793, 256)  # G at most 256 by default
    assert request_tokens(8, 3, 50) == (1, 8)           # G clamped to T, then P to 1
    assert request_defaults(256, 193, 64) == (None, None)  # defaults are not kept (a clean URL)
    assert request_defaults(256, 100, 64) == (100, None)


def test_the_logic_modules_import_neither_streamlit_nor_torch():
    import subprocess
    import sys

    code = ("import sys, explorer.state, explorer.compute, explorer.charts, explorer.runs, explorer.rates, "
            "explorer.overhead, explorer.datadir; "
            "bad = [m for m in ('streamlit', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
