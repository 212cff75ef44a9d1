"""The shared model config: presets, validation, round trips (hand-checked numbers from the issue)."""

import subprocess
import sys

import pytest

from accounting.config import ModelConfig, get_preset, list_presets


@pytest.mark.parametrize(
    "name, layers, d_model, heads",
    [("cs336-gpt2-small", 12, 768, 12), ("cs336-gpt2-medium", 24, 1024, 16),
     ("cs336-gpt2-large", 36, 1280, 20), ("cs336-gpt2-xl", 48, 1600, 25)],
)
def test_gpt2_presets(name, layers, d_model, heads):
    cfg = get_preset(name)
    assert (cfg.vocab_size, cfg.context_length) == (50257, 1024)
    assert (cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.d_ff) == (layers, d_model, heads, 4 * d_model)


def test_tinystories_and_owt():
    ts, owt = get_preset("tinystories"), get_preset("owt")
    assert (ts.vocab_size, ts.context_length, ts.d_model, ts.num_layers, ts.num_heads, ts.d_ff) == (
        10000, 256, 512, 4, 16, 1344)
    assert ts.rope_theta == 10000.0
    assert owt == ts.replace(vocab_size=32000)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_preset("gpt3")
    for name in list_presets():
        assert name in str(err.value)


@pytest.mark.parametrize(
    "overrides, field",
    [({"d_model": 100, "num_heads": 3}, "num_heads"), ({"d_model": 12, "num_heads": 4}, "RoPE"),
     ({"num_layers": 0}, "num_layers"), ({"vocab_size": -5}, "vocab_size"), ({"d_ff": 1.5}, "d_ff"),
     ({"norm": "batchnorm"}, "norm"), ({"attention": "flash"}, "attention"), ({"bogus": 1}, "bogus")],
)
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig().replace(**overrides)


def test_odd_head_dim_allowed_without_rope():
    assert ModelConfig(d_model=12, num_heads=4, positions="none").head_dim == 3


def test_dict_round_trip():
    cfg = get_preset("cs336-gpt2-xl").replace(ffn="silu", tie_embeddings=True)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_config_imports_no_torch():
    code = "import sys, accounting.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
