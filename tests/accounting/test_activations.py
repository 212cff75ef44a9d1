"""Activation bytes: the implementation convention byte for byte vs saved_tensors_hooks on the real
model (every variant, float32 and bfloat16), the textbook convention by hand, checkpointing."""

from __future__ import annotations

import pytest

from accounting import activation_bytes, activation_rows, checkpointed_activation_bytes, get_preset
from accounting.activations import checkpoint_recompute_flops
from accounting.flops import forward_flops

from .conftest import saved_bytes_by_hand


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "bfloat16-pure"])
def test_implementation_equals_saved_tensors(instruments, variant_cfg, dtype):
    """bfloat16 = the trainer's autocast (each projection saves its own bf16 copy of its input);
    bfloat16-pure = a bf16 model (the projections share one saved input)."""
    pytest.importorskip("torch")
    measured = instruments.saved_bytes(variant_cfg, 2, 6, dtype)
    assert activation_bytes(variant_cfg, 2, 6, "implementation", dtype) == measured


@pytest.mark.parametrize("positions", ["rope", "none"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16-pure"])
def test_sdpa_math_backend(instruments, positions, dtype):
    pytest.importorskip("torch")
    cfg = instruments.tiny(attention="sdpa", positions=positions)
    measured = instruments.saved_bytes(cfg, 2, 6, dtype, sdpa_math=True)
    assert activation_bytes(cfg, 2, 6, dtype=dtype, sdpa_backend="math") == measured
    assert activation_bytes(cfg, 2, 6, dtype=dtype) != measured  # the fused kernel saves less


AUTOCAST_VARIANTS = [  # the original GPT-2 block, a Llama block, and the new switches otherwise mixed
    dict(norm="layernorm", positions="learned", ffn="gelu", bias="all", dropout=0.1, tie_embeddings=True),
    dict(norm="layernorm", positions="learned", ffn="gelu", bias="all", dropout=0.1, attention="sdpa"),
    dict(num_heads=4, num_kv_heads=2, bias="qkv", attention="sdpa"),
    dict(num_heads=4, num_kv_heads=1, ffn="gelu", positions="none", bias="attention"),
    dict(norm="layernorm", norm_position="post", ffn="silu", bias="all", attention="sdpa"),
    dict(norm="none", dropout=0.1, num_heads=4, num_kv_heads=2),
]


@pytest.mark.parametrize("variant", AUTOCAST_VARIANTS, ids=["gpt2", "gpt2-sdpa", "llama-sdpa", "gelu-gqa1",
                                                            "layernorm-post-sdpa", "dropout-gqa"])
def test_new_variants_under_autocast(instruments, variant):
    """Under the trainer's autocast every biased Linear adds its bias cast to bf16 (model/layers.py),
    so its output and what follows stay bf16: the bfloat16 formulas hold for LayerNorm, learned
    positions, GELU, biases, dropout (CPU sdpa with dropout: the math kernel) and grouped-query
    attention."""
    pytest.importorskip("torch")
    variant = dict(variant)
    heads = {k: variant.pop(k) for k in ("num_heads", "num_kv_heads") if k in variant}
    cfg = instruments.tiny(**variant).replace(**heads)
    backend = "math" if cfg.attention == "sdpa" and cfg.dropout else "fused"
    measured = instruments.saved_bytes(cfg, 2, 6, "bfloat16")
    assert activation_bytes(cfg, 2, 6, dtype="bfloat16", sdpa_backend=backend) == measured


def test_implementation_second_shape(instruments):
    pytest.importorskip("torch")
    cfg = instruments.tiny().replace(num_layers=3, num_heads=4, d_model=32, d_ff=24)
    for b, t in ((1, 16), (5, 3)):
        assert activation_bytes(cfg, b, t) == instruments.saved_bytes(cfg, b, t, "float32")


def test_autocast_issue_config():
    """Issue 15's config (V=1000, T=64, d=96, L=3, h=4, d_ff=256, B=3) under the trainer's bf16
    autocast: 4,942,848 bytes saved for backward (measured there with saved_tensors_hooks; the
    pure-bf16 formula said 4,611,072). By hand, the difference is autocast's extra input copies:
    k_proj's and v_proj's (the pure model shares q_proj's) and w3's, 3 x 2*B*T*d bytes per block."""
    from accounting import ModelConfig

    cfg = ModelConfig(vocab_size=1000, context_length=64, d_model=96, num_layers=3, num_heads=4, d_ff=256)
    assert activation_bytes(cfg, 3, dtype="bfloat16-pure") == 4_611_072
    assert activation_bytes(cfg, 3, dtype="bfloat16") == 4_611_072 + 3 * 3 * 2 * 3 * 64 * 96 == 4_942_848


def test_textbook_gpt2_small_by_hand():
    B, T, d, h, L, f, V = 2, 1024, 768, 12, 12, 3072, 50257
    per_layer = 2 * B * T * d + 3 * B * T * d + 2 * B * h * T * T + 2 * B * T * d + 3 * B * T * f + B * T * d
    elements = L * per_layer + B * T * d + 2 * B * T * V
    cfg = get_preset("cs336-gpt2-small")
    assert activation_bytes(cfg, B, T, "textbook", "float32") == 4 * elements
    assert activation_bytes(cfg, B, T, "textbook", "bfloat16") == 2 * elements


def test_checkpointing_keeps_block_inputs_plus_one_block():
    """cs336-gpt2-medium (d=1024, h=16, d_ff=4096, L=24), B=4, T=1024, float32: the 24 blocks'
    float32 inputs (B*T*d*4 bytes each), one block's tensors (alive while it is recomputed in the
    backward) and everything outside the blocks, each counted by hand (saved_bytes_by_hand)."""
    cfg = get_preset("cs336-gpt2-medium")
    sizes = dict(B=4, T=1024, d=1024, h=16, d_ff=4096, V=50257)
    one_block = saved_bytes_by_hand(4, L=1, outside=False, **sizes)
    outside = saved_bytes_by_hand(4, L=24, blocks=False, **sizes)
    full = saved_bytes_by_hand(4, L=24, **sizes)
    assert activation_bytes(cfg, 4, 1024) == full
    expected = 24 * 4 * 1024 * 1024 * 4 + one_block + outside
    assert checkpointed_activation_bytes(cfg, 4, 1024) == expected < full
    blocks_forward = forward_flops(cfg, 4, 1024) - 2 * 4 * 1024 * 1024 * 50257
    w2 = 24 * 2 * (4 * 1024) * 4096 * 1024  # L x 2mnp of (B*T x d_ff) @ (d_ff x d)
    # pre-norm: torch's early-stopping recompute skips each block's last (W2) matmul, whose output
    # nothing saves; post-norm's RMSNorm saves it, so the whole block is rerun (measured in
    # tests/model/test_fast_checkpointing.py)
    assert checkpoint_recompute_flops(cfg, 4, 1024) == blocks_forward - w2
    post = cfg.replace(norm_position="post")
    assert checkpoint_recompute_flops(post, 4, 1024) == blocks_forward


def test_rows_sum_to_total_and_scale_with_batch():
    cfg = get_preset("cs336-gpt2-small").replace(attention="sdpa")
    rows = activation_rows(cfg, 3, 512)
    assert sum(r.value for r in rows) == activation_bytes(cfg, 3, 512)
    # Everything but the per-layer RoPE tables and causal masks (no B factor) scales with B.
    no_b = activation_bytes(cfg, 1, 512) - (activation_bytes(cfg, 2, 512) - activation_bytes(cfg, 1, 512))
    assert no_b == 12 * 2 * 2 * 512 * 64 * 2  # L * (cos, sin) x (q, k) * T * d_k/2 * 4 bytes
    with pytest.raises(ValueError, match="convention"):
        activation_bytes(cfg, 1, 8, convention="nope")
