"""The HF oracle (validation.hf_reference) against independent references: published parameter
counts, hand-derived FLOPs (2mnp per matmul), hand-derived dropout-mask and KV-cache bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the HF oracle needs transformers (pip install -e '.[dev]')")

from validation.hf_reference import check_hf_config, hf_kv_cache, hf_parameters, hf_training_step  # noqa: E402

HF_CONFIGS = Path(os.environ.get("LM_ACCOUNTING_SHARED_DATA",
                                 Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "hf_configs"

PUBLISHED_PARAMETERS = {
    # GPT-2 as released (OpenAI's checkpoints on the HF hub, tied embeddings counted once)
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    # the model cards' / safetensors index totals
    "llama-3-8b": 8_030_261_248,
    "llama-3.2-1b": 1_235_814_400,
    "mistral-7b-v0.3": 7_248_023_552,
    "qwen2.5-7b": 7_615_616_512,
}

TINY_GPT2 = {"model_type": "gpt2", "vocab_size": 37, "n_positions": 16, "n_embd": 24, "n_layer": 2,
             "n_head": 3, "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
             "attn_pdrop": 0.1, "tie_word_embeddings": True}
TINY_LLAMA = {"model_type": "llama", "vocab_size": 37, "hidden_size": 24, "intermediate_size": 40,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 16, "tie_word_embeddings": False}


def published_config(name: str) -> dict:
    path = HF_CONFIGS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"needs the published config.json files in {HF_CONFIGS} (present for developers and CI only)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameters_equal_the_published_counts(name):
    assert hf_parameters(published_config(name)).parameters == PUBLISHED_PARAMETERS[name]


def test_gpt2_small_parameters_by_hand():
    cfg = published_config("gpt2")
    V, n_pos, d, L = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"], cfg["n_layer"]
    # token + position embeddings, then per block: ln_1 (2d: weight, bias), c_attn (d x 3d + 3d),
    # attn c_proj (d x d + d), ln_2 (2d), c_fc (d x 4d + 4d), mlp c_proj (4d x d + d)
    # = 12 d^2 + 13 d; final ln_f 2d; the LM head is tied to wte (counted once).
    by_hand = V * d + n_pos * d + L * (12 * d**2 + 13 * d) + 2 * d
    assert by_hand == PUBLISHED_PARAMETERS["gpt2"]
    measured = hf_parameters(cfg)
    assert measured.tied_embeddings and measured.parameters == by_hand
    assert measured.parameters_by_component["transformer.h.*.attn.c_attn"] == L * (3 * d * d + 3 * d)


@pytest.mark.parametrize("name", ["llama-3-8b", "llama-3.2-1b"])
def test_llama_parameters_by_hand(name):
    cfg = published_config(name)
    V, d, L, f = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    head_dim = cfg.get("head_dim", d // cfg["num_attention_heads"])
    d_kv = cfg["num_key_value_heads"] * head_dim  # grouped-query attention: 8 kv heads of 128 (8B)
    # per block: q_proj d x d, k_proj and v_proj d x d_kv each, o_proj d x d, gate/up/down d x f
    # each (SwiGLU), two RMSNorm weights of d; no biases. Final norm d. Embedding V x d, and an
    # untied LM head V x d unless tie_word_embeddings (Llama 3.2 1B ties them).
    per_block = 2 * d * d + 2 * d * d_kv + 3 * d * f + 2 * d
    embeddings = V * d * (1 if cfg["tie_word_embeddings"] else 2)
    by_hand = embeddings + L * per_block + d
    assert by_hand == PUBLISHED_PARAMETERS[name]
    assert hf_parameters(cfg).parameters == by_hand


def test_tiny_gpt2_flops_by_hand():
    B, T = 2, 8
    V, d, L, h = 37, 24, 2, 3
    step = hf_training_step(TINY_GPT2, batch_size=B, seq_len=T, dropout=False)
    BT = B * T
    # 2mnp per matmul, (BT x d) inputs: c_attn d->3d: 2*BT*d*3d; QK^T per head (T x dh)(dh x T):
    # 2*B*h*T*T*dh = 2*B*T*T*d, the same for weights.V (counted dense: the causal mask does not
    # shrink the bmm); attn c_proj 2*BT*d*d; c_fc 2*BT*d*4d; mlp c_proj 2*BT*4d*d. Per block:
    # 24*BT*d^2 + 4*B*T^2*d. LM head (tied): 2*BT*d*V. Embedding lookups, LayerNorm, GELU,
    # softmax and the loss are not matmuls (not counted).
    dh = d // h
    per_block = 2 * BT * d * 3 * d + 2 * (2 * B * h * T * T * dh) + 2 * BT * d * d + 2 * (2 * BT * d * 4 * d)
    assert per_block == 24 * BT * d**2 + 4 * B * T**2 * d
    assert step.forward_flops == L * per_block + 2 * BT * d * V == 495_360
    # backward: dL/dX and dL/dW per matmul, 2x the forward (the first block's input needs a gradient,
    # as the embeddings are trained)
    assert step.backward_flops == 2 * step.forward_flops
    assert step.forward_flops_by_component["lm_head"] == 2 * BT * d * V


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_tiny_llama_flops_by_hand(attn_implementation):
    B, T = 2, 8
    V, d, L, f, h, h_kv = 37, 24, 2, 40, 4, 2
    dh = d // h
    BT = B * T
    step = hf_training_step(TINY_LLAMA, batch_size=B, seq_len=T, attn_implementation=attn_implementation)
    # q_proj and o_proj 2*BT*d*d each; k_proj and v_proj 2*BT*d*(h_kv*dh) each (grouped-query
    # attention: fewer FLOPs there); QK^T and weights.V over all h query heads 2*B*h*T*T*dh each
    # (eager repeats the kv heads, sdpa's formula is per query head: same count, dense);
    # gate, up, down 2*BT*d*f each; LM head (untied) 2*BT*d*V. RMSNorm, RoPE, SiLU: not matmuls.
    per_block = 2 * 2 * BT * d * d + 2 * 2 * BT * d * (h_kv * dh) + 2 * 2 * B * h * T * T * dh + 3 * 2 * BT * d * f
    assert step.forward_flops == L * per_block + 2 * BT * d * V == 347_904
    assert step.forward_flops_by_component["model.layers.*.self_attn.k_proj"] == L * 2 * BT * d * h_kv * dh


def _mask_elements(B, T, d, L, h):
    """Elements under a dropout in GPT-2: the embeddings' output (B, T, d); per block the
    attention probabilities (B, h, T, T) and the two residual branches (B, T, d) each."""
    return B * T * d * (2 * L + 1), L * B * h * T * T


def test_dropout_saves_the_masks_by_hand():
    B, T, d, L, h = 2, 8, 24, 2, 3
    f32 = 4
    stream, probs = _mask_elements(B, T, d, L, h)
    off = hf_training_step(TINY_GPT2, batch_size=B, seq_len=T, dropout=False, backward=False)
    meta = hf_training_step(TINY_GPT2, batch_size=B, seq_len=T, dropout=True, backward=False)
    cuda = hf_training_step(TINY_GPT2, batch_size=B, seq_len=T, dropout=True, backward=False, kernels="cuda")
    # meta (and CPU): dropout is x * (bernoulli mask / (1-p)) with a float32 mask, saved; the
    # dropped probabilities are a new (B, h, T, T) tensor saved by the weights.V bmm, beside the
    # softmax output its backward keeps. A dropped residual branch feeds an add: nothing more saved.
    assert meta.saved_bytes - off.saved_bytes == f32 * (stream + probs) + f32 * probs
    # CUDA: native_dropout saves a bool mask, 1 byte per element
    assert cuda.saved_bytes - off.saved_bytes == 1 * (stream + probs) + f32 * probs
    assert off.forward_flops == meta.forward_flops == cuda.forward_flops


def test_gpt2_xl_dropout_difference_at_full_size():
    cfg = published_config("gpt2-xl")
    B, T, d, L, h = 1, 1024, cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    stream, probs = _mask_elements(B, T, d, L, h)
    on = hf_training_step(cfg, batch_size=B, seq_len=T, backward=False)
    off = hf_training_step(cfg, batch_size=B, seq_len=T, dropout=False, backward=False)
    assert on.saved_bytes - off.saved_bytes == 4 * (stream + 2 * probs) == 10_702_028_800


def test_cuda_sdpa_saves_no_seq_by_seq_tensor():
    B, T = 2, 8
    math = hf_training_step(TINY_LLAMA, batch_size=B, seq_len=T, dtype="bfloat16", attn_implementation="sdpa",
                            backward=False)
    flash = hf_training_step(TINY_LLAMA, batch_size=B, seq_len=T, dtype="bfloat16", attn_implementation="sdpa",
                             backward=False, kernels="cuda")
    assert math.attention_kernels == ("math",) and flash.attention_kernels == ("flash",)
    assert flash.saved_bytes < math.saved_bytes
    assert flash.forward_flops == math.forward_flops


def test_kv_cache_counts_the_kv_heads():
    B, N = 3, 5
    cache = hf_kv_cache(TINY_LLAMA, batch_size=B, prefill_tokens=N, dtype="bfloat16")
    # keys and values per layer: (B, num_key_value_heads, N, head_dim), 2 bytes each
    assert cache.key_shape == (B, 2, N, 6)
    assert cache.kv_cache_bytes == 2 * 2 * B * 2 * N * 6 * 2 == 1_440


def test_llama_3_8b_kv_cache_at_8k():
    cfg = published_config("llama-3-8b")
    cache = hf_kv_cache(cfg, batch_size=1, prefill_tokens=8192, dtype="bfloat16")
    # 32 layers x (K and V) x 8 kv heads x 8192 tokens x 128 x 2 bytes = 1 GiB (4x less than 32 heads)
    assert cache.kv_cache_bytes == 32 * 2 * 8 * 8192 * 128 * 2 == 2**30


@pytest.mark.parametrize("change, field", [
    ({"model_type": "bert"}, "model_type"),
    ({"num_key_value_head": 2}, "num_key_value_head"),
    ({"quantization_config": {"load_in_4bit": True}}, "quantization_config"),
])
def test_refuses_what_it_cannot_represent(change, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        check_hf_config({**TINY_LLAMA, **change})


def test_refuses_a_gpt2_n_ctx_other_than_n_positions():
    check_hf_config({**TINY_GPT2, "n_ctx": 16})
    with pytest.raises(ValueError, match="^n_ctx:"):
        check_hf_config({**TINY_GPT2, "n_ctx": 32})
