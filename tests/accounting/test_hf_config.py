"""config.json import: published configs map to the right ModelConfig, anything not modelled is
refused with one line naming it, and every CLI that takes a model takes --hf-config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accounting import total_parameters
from accounting.config import PUBLISHED_PRESETS, get_preset
from accounting.errors import UserError
from accounting.hf_config import from_hf_config, hf_config_path

ROOT = Path(__file__).resolve().parents[2]
LLAMA = json.loads(hf_config_path("llama-3-8b").read_text())


def test_gpt2_small_as_released_by_hand():
    # V d (wte) + n_ctx d (wpe) + L (12 d^2 + 13 d) + 2 d (ln_f): per block c_attn 3d^2 + 3d,
    # c_proj d^2 + d, c_fc 4d^2 + 4d, mlp c_proj 4d^2 + d, two LayerNorms 4d; head tied.
    # d = 768, L = 12, V = 50,257, n_ctx = 1,024:
    # 38,597,376 + 786,432 + 12 x 7,087,872 + 1,536 = 124,439,808 (OpenAI's "124M")
    cfg = get_preset("gpt2")
    assert (cfg.norm, cfg.positions, cfg.ffn, cfg.bias, cfg.tie_embeddings, cfg.dropout) == \
        ("layernorm", "learned", "gelu", "all", True, 0.1)
    assert total_parameters(cfg) == 124_439_808


def test_llama_3_8b_by_hand():
    # 2 V d (untied) + L (2 d^2 + 2 d (d h_kv / h) + 3 d d_ff + 2 d) + d, d = 4096, h = 32,
    # h_kv = 8, d_ff = 14,336, L = 32, V = 128,256:
    # 1,050,673,152 + 32 x 218,112,000 + 4,096 = 8,030,261,248
    cfg = get_preset("llama-3-8b")
    assert (cfg.num_heads, cfg.kv_heads, cfg.rope_theta, cfg.attention) == (32, 8, 500_000.0, "sdpa")
    assert total_parameters(cfg) == 8_030_261_248


def test_every_published_preset_reads_its_own_file():
    for name in PUBLISHED_PRESETS:
        assert from_hf_config(hf_config_path(name)) == get_preset(name)
    assert get_preset("llama-3.2-1b").rope_scaling == (32.0, 1.0, 4.0, 8192)
    assert get_preset("qwen2.5-7b").bias == "qkv"


@pytest.mark.parametrize("change,named", [
    ({"model_type": "mixtral"}, "mixtral"),
    ({"num_local_experts": 8}, "num_local_experts"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"head_dim": 64}, "head_dim"),
    ({"mlp_bias": True}, "mlp_bias"),
    ({"pretraining_tp": 2}, "pretraining_tp"),
])
def test_what_is_not_modelled_is_refused_by_name(change, named):
    with pytest.raises(UserError, match=named):
        from_hf_config({**LLAMA, **change})


def test_sliding_window_and_gpt2_specifics():
    mistral = json.loads(hf_config_path("mistral-7b").read_text())
    with pytest.raises(UserError, match="sliding_window"):
        from_hf_config({**mistral, "sliding_window": 4096})
    qwen = json.loads(hf_config_path("qwen2.5-7b").read_text())
    with pytest.raises(UserError, match="use_sliding_window"):
        from_hf_config({**qwen, "use_sliding_window": True})
    gpt2 = json.loads(hf_config_path("gpt2").read_text())
    with pytest.raises(UserError, match="dropout"):
        from_hf_config({**gpt2, "attn_pdrop": 0.0})
    with pytest.raises(UserError, match="n_ctx"):
        from_hf_config({**gpt2, "n_ctx": 2048})
    with pytest.raises(UserError, match="activation_function"):
        from_hf_config({**gpt2, "activation_function": "relu"})
    with pytest.raises(UserError, match="lacks 'n_embd'"):
        from_hf_config({k: v for k, v in gpt2.items() if k != "n_embd"})


def _cli(*argv):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT)


def test_cli_takes_hf_config_and_refuses_in_one_line(tmp_path):
    moe = tmp_path / "config.json"
    moe.write_text(json.dumps({**LLAMA, "num_experts_per_tok": 2}))
    out = _cli("-m", "accounting", "report", "--hf-config", str(hf_config_path("llama-3-8b")),
               "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["parameters"]["total"] == 8_030_261_248
    for argv in (["-m", "accounting", "report"], ["-m", "validation.measure", "--device", "meta"]):
        bad = _cli(*argv, "--hf-config", str(moe))
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "num_experts_per_tok" in bad.stderr
    both = _cli("-m", "accounting", "report", "--hf-config", str(moe), "--preset", "gpt2")
    assert both.returncode == 2 and "not both" in both.stderr
    (tmp_path / "bad.json").write_text("{not json")
    broken = _cli("-m", "accounting", "report", "--hf-config", str(tmp_path / "bad.json"))
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr
