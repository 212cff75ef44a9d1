"""Parameter counts: hand arithmetic for GPT-2 small / XL, and every variant vs the real model."""

from __future__ import annotations

import pytest

from accounting import get_preset, non_embedding_parameters, parameter_rows, total_parameters
from accounting.parameters import matmul_parameters_formula
from accounting.symbols import values


def test_gpt2_xl_by_hand():
    # GPT-2 XL shape with SwiGLU d_ff = 4*1600 = 6400, untied, pre-norm RMSNorm.
    emb = 50257 * 1600
    per_layer = 4 * 1600**2 + 3 * 1600 * 6400 + 2 * 1600
    expected = emb + 48 * per_layer + 1600 + 50257 * 1600
    cfg = get_preset("cs336-gpt2-xl")
    assert total_parameters(cfg) == expected == 2_127_057_600
    assert non_embedding_parameters(cfg) == expected - emb
    rows = {r.name: r.value for r in parameter_rows(cfg)}
    assert rows["layers.ffn.w3"] == 48 * 1600 * 6400
    assert rows["ln_final"] == 1600


def test_gpt2_small_by_hand_variants():
    cfg = get_preset("cs336-gpt2-small")
    d, V, L, f = 768, 50257, 12, 3072
    assert total_parameters(cfg) == V * d + L * (4 * d * d + 3 * d * f + 2 * d) + d + V * d
    tied_silu = cfg.replace(tie_embeddings=True, ffn="silu", norm="none")
    assert total_parameters(tied_silu) == V * d + L * (4 * d * d + 2 * d * f)
    post = cfg.replace(norm_position="post")
    assert total_parameters(post) == total_parameters(cfg) - d  # no ln_final


def test_matmul_parameters_count_the_tied_head():
    cfg = get_preset("cs336-gpt2-small").replace(tie_embeddings=True)
    n = int(matmul_parameters_formula(cfg).subs(values(cfg)))
    assert n == 12 * (4 * 768**2 + 3 * 768 * 3072) + 50257 * 768


def test_every_variant_matches_the_real_model_on_meta(variant_cfg):
    torch = pytest.importorskip("torch")
    from model.transformer import TransformerLM

    cfg = variant_cfg
    model = TransformerLM(cfg, device="meta")
    assert total_parameters(cfg) == sum(p.numel() for p in model.parameters())  # shared counted once
    by_module = {}
    for name, p in model.named_parameters():
        key = name.replace(".weight", "")
        key = ".".join(k for k in key.split(".") if not k.isdigit())
        by_module[key] = by_module.get(key, 0) + p.numel()
    assert {r.name: r.value for r in parameter_rows(cfg)} == by_module
    del torch


def test_gpt2_xl_on_meta_device():
    pytest.importorskip("torch")
    from model.transformer import TransformerLM

    cfg = get_preset("cs336-gpt2-xl")
    model = TransformerLM(cfg, device="meta")
    assert total_parameters(cfg) == sum(p.numel() for p in model.parameters())
