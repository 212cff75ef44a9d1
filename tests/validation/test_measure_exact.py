"""Measured (the real model with instruments) vs symbolic (accounting): exact, integer for integer.

Meta device for every preset at its full size and for every variant of a tiny config; real CPU
tensors for a few tiny cases, where torch's fused sdpa kernel runs (its backward recomputes the
scores: the only named difference in the matmul FLOPs)."""

from __future__ import annotations

import itertools

import pytest

from accounting import attention_recompute_flops, forward_flops_rows, get_preset, list_presets
from validation.core import measure
from validation.reasons import CHECKPOINT_FORWARD, META_SDPA_MATH, SDPA_RECOMPUTE

from ..conftest import tiny
from .conftest import assert_exact

pytest.importorskip("torch")

VARIANTS = list(itertools.product(("rmsnorm", "none"), ("pre", "post"), ("rope", "none"),
                                  ("swiglu", "silu"), (False, True), ("naive", "sdpa")))


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_on_meta(preset):
    cfg = get_preset(preset)
    # MemTracker's timeline at full size costs seconds per preset: checked on the smaller ones
    # (GPT-2 XL's is in the committed validation/results, equal to the byte)
    m = measure(cfg, device="meta", timeline=preset in ("cs336-gpt2-small", "tinystories", "owt"))
    assert_exact(m, allowed_reasons=(META_SDPA_MATH,))
    assert m.row("parameters").measured == m.row("parameters").symbolic
    assert m.settings["context_length"] == cfg.context_length and m.hardware["device"] == "meta"


@pytest.mark.parametrize("batch_size,context_length", [(1, 1024), (3, 200), (8, 64)])
def test_gpt2_small_batch_and_context_on_meta(batch_size, context_length):
    cfg = get_preset("cs336-gpt2-small")
    m = measure(cfg, device="meta", batch_size=batch_size, context_length=context_length, timeline=False)
    assert_exact(m)
    by_hand = 12 * 2 * 2 * batch_size * context_length**2 * 768  # QK^T and P V, dense, 12 blocks
    assert (m.row("forward matmul FLOPs", "layers.attn.scores").measured
            + m.row("forward matmul FLOPs", "layers.attn.weighted_values").measured) == by_hand


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_every_variant_on_meta(variant):
    norm, position, positions, ffn, tie, attention = variant
    cfg = tiny(norm=norm, norm_position=position, positions=positions, ffn=ffn,
               tie_embeddings=tie, attention=attention)
    # the timeline too (MemTracker on meta), where meta runs the kernel the accounting counts
    m = measure(cfg, device="meta", batch_size=2, context_length=12, timeline=attention == "naive")
    assert_exact(m, allowed_reasons=(META_SDPA_MATH,))
    nonmatmul = m.row("non-matmul forward FLOPs")
    assert nonmatmul.equal or (attention == "sdpa" and nonmatmul.reason == META_SDPA_MATH)


@pytest.mark.parametrize("variant,dtype", [
    ({}, "float32"),
    ({"attention": "sdpa"}, "float32"),
    ({"attention": "sdpa", "positions": "none", "ffn": "silu", "tie_embeddings": True}, "float32"),
    ({"norm_position": "post"}, "bfloat16"),
    ({"attention": "sdpa", "norm": "none"}, "bfloat16"),
], ids=str)
def test_real_cpu_tensors(variant, dtype):
    cfg = tiny(**variant)
    m = measure(cfg, device="cpu", batch_size=3, context_length=10, dtype=dtype, steps=1)
    assert_exact(m, allowed_reasons=(SDPA_RECOMPUTE,))
    assert m.row("non-matmul forward FLOPs").equal
    backward = m.row("backward matmul FLOPs")
    recompute = attention_recompute_flops(cfg, 3, 10) if cfg.attention == "sdpa" else 0
    assert backward.measured == backward.symbolic + recompute
    assert m.row("step time").measured > 0 and m.row("throughput", "tokens/s").measured > 0


@pytest.mark.parametrize("optimizer,checkpointing,dtype", [
    ("foreach", False, "bfloat16"), ("fused", False, "float32"), ("reference", True, "float32"),
    ("fused", True, "bfloat16"),
], ids=str)
def test_training_paths_on_cpu(optimizer, checkpointing, dtype):
    """The memory timeline of every AdamW and of checkpointed blocks: every phase equal, except a
    checkpointed forward, which the timeline bounds from above (named, and sized by the row)."""
    m = measure(tiny(), device="cpu", batch_size=3, context_length=10, dtype=dtype, steps=1,
                optimizer=optimizer, checkpointing=checkpointing)
    assert_exact(m, allowed_reasons=(CHECKPOINT_FORWARD,))
    forward = m.row("memory timeline", "forward peak")
    assert forward.equal or (checkpointing and forward.reason == CHECKPOINT_FORWARD
                             and forward.measured < forward.symbolic)
    assert m.row("memory timeline", "peak").equal
    assert m.settings["optimizer"] == optimizer and m.settings["activation_checkpointing"] == checkpointing


@pytest.mark.parametrize("attention", ["naive", "sdpa"])
def test_autocast_on_meta_runs_on_fake_cpu_tensors(attention):
    """Autocast has no meta backend: "bfloat16" on meta runs fake CPU tensors (CPU kernels, sdpa's
    flash kernel included), every number exact, the peak too."""
    m = measure(tiny(attention=attention), device="meta", batch_size=2, context_length=12, dtype="bfloat16")
    assert_exact(m, allowed_reasons=(SDPA_RECOMPUTE,))
    assert m.row("weights bf16 copy").equal and m.row("memory timeline", "peak").equal
    assert "fake CPU" in m.settings["precision"]


def test_pure_bf16_model_has_its_own_dtype():
    m = measure(tiny(), device="cpu", batch_size=2, context_length=8, dtype="bfloat16-pure", steps=1)
    assert_exact(m)
    assert not [r for r in m.rows if r.quantity == "memory timeline"]  # not a program the trainer runs
    assert m.row("weights").symbolic == 2 * m.row("parameters").symbolic


GQA = list(itertools.product((1, 2), ("naive", "sdpa"), ("rope", "none"), ("meta", "cpu")))


@pytest.mark.parametrize("num_kv_heads,attention,positions,device", GQA, ids=lambda v: str(v))
def test_grouped_query_attention_exact(num_kv_heads, attention, positions, device):
    # h = 4 query heads share 1 or 2 key/value heads: k_proj and v_proj shrink to h_kv*d_k outputs,
    # torch's fused kernel saves k and v at h_kv heads, the naive path repeats them to h heads.
    cfg = tiny(attention=attention, positions=positions).replace(num_heads=4, num_kv_heads=num_kv_heads)
    m = measure(cfg, device=device, batch_size=2, steps=1)
    assert_exact(m, allowed_reasons=(META_SDPA_MATH, SDPA_RECOMPUTE))
    d_k = 24 // 4  # hand count of one k_proj: 2 blocks x (24 inputs x num_kv_heads * d_k outputs)
    assert m.row("parameters", "layers.attn.k_proj").measured == 2 * 24 * num_kv_heads * d_k
    if device == "cpu":
        assert m.row("non-matmul forward FLOPs").equal


REAL_ARCHITECTURE_VARIANTS = {
    "layernorm": dict(norm="layernorm"),
    "layernorm-post": dict(norm="layernorm", norm_position="post"),
    "learned-positions": dict(positions="learned"),
    "gelu": dict(ffn="gelu"),
    "bias-qkv": dict(bias="qkv"),
    "bias-attention": dict(bias="attention", num_kv_heads=1),
    "bias-all-silu": dict(bias="all", ffn="silu"),
    "dropout": dict(dropout=0.1),
    "gpt2-block": dict(norm="layernorm", positions="learned", ffn="gelu", bias="all", dropout=0.1,
                       tie_embeddings=True),
    "llama3-rope": dict(rope_scaling=(8.0, 1.0, 4.0, 8), num_kv_heads=1),
}


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("attention", ["naive", "sdpa"])
@pytest.mark.parametrize("name", REAL_ARCHITECTURE_VARIANTS)
def test_real_architecture_variants_exact(name, attention, device):
    # the original GPT-2 block's pieces and the Llama family's, alone and together; the CPU's
    # sdpa kernel has no dropout, so torch runs its math path there (named, and accounted)
    variant = REAL_ARCHITECTURE_VARIANTS[name]
    cfg = tiny(attention=attention, **variant).replace(num_heads=4) if "num_kv_heads" in variant \
        else tiny(attention=attention, **variant)
    m = measure(cfg, device=device, batch_size=2, context_length=12, steps=1)
    assert_exact(m, allowed_reasons=(META_SDPA_MATH, SDPA_RECOMPUTE))
    if device == "cpu" and not (attention == "sdpa" and cfg.dropout):
        assert m.row("non-matmul forward FLOPs").equal


def test_sdpa_core_is_one_row_with_both_matmuls():
    cfg = tiny(attention="sdpa")
    m = measure(cfg, device="meta", batch_size=2, context_length=8)
    core = m.row("forward matmul FLOPs", "layers.attn.core")
    rows = {r.name: r.value for r in forward_flops_rows(cfg, 2, 8)}
    assert core.measured == rows["layers.attn.scores"] + rows["layers.attn.weighted_values"]
    assert m.row("non-matmul forward FLOPs", "layers.attn").reason == META_SDPA_MATH


def test_progress_is_reported_in_order():
    seen = []
    measure(tiny(), device="meta", progress=lambda phase, done: seen.append((phase, done)))
    fractions = [d for _, d in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and seen[0][0] == "build model"


def test_bad_settings_raise_value_error():
    for kwargs, fragment in (({"device": "tpu"}, "device"), ({"batch_size": 0}, "batch_size"),
                             ({"dtype": "float16"}, "dtype"), ({"steps": 0}, "steps")):
        with pytest.raises(ValueError, match=fragment):
            measure(tiny(), **kwargs)


def test_longer_context_than_the_config_grows_it():
    m = measure(tiny(), device="meta", context_length=40)
    assert m.config["context_length"] == 40
    assert_exact(m)
