"""FLOPs: hand arithmetic for GPT-2 small / XL, torch's FlopCounterMode on the real model, the
PaLM identity, the attention/FFN crossover, and the non-matmul term vs a dispatch counter."""

from __future__ import annotations

import pytest

from accounting import (
    attention_crossover, forward_flops, forward_flops_rows, get_preset, nonmatmul_forward_flops,
    train_step_flops,
)
from accounting.compare import flop_shares
from accounting.flops import kaplan_6nd_formula, palm_formula
from accounting.rows import evaluate
from accounting.symbols import values


def test_gpt2_small_forward_by_hand():
    B, T, d, L, f, V = 1, 1024, 768, 12, 3072, 50257
    per_layer = 4 * 2 * T * d * d + 2 * 2 * T * T * d + 3 * 2 * T * d * f
    expected = B * (L * per_layer + 2 * T * d * V)
    cfg = get_preset("cs336-gpt2-small")
    assert forward_flops(cfg, 1, 1024) == expected
    assert train_step_flops(cfg, 4, 1024) == 3 * 4 * expected


def test_gpt2_xl_rows_by_hand():
    rows = {r.name: r.value for r in forward_flops_rows(get_preset("cs336-gpt2-xl"), 2, 512)}
    assert rows["layers.attn.q_proj"] == 48 * 2 * 2 * 512 * 1600 * 1600
    assert rows["layers.attn.scores"] == 48 * 2 * 2 * 512 * 512 * 1600
    assert rows["layers.ffn.w2"] == 48 * 2 * 2 * 512 * 1600 * 6400
    assert rows["lm_head"] == 2 * 2 * 512 * 1600 * 50257


@pytest.mark.parametrize("preset", ["cs336-gpt2-small", "cs336-gpt2-xl", "tinystories"])
@pytest.mark.parametrize("tie", [False, True])
def test_palm_rule_equals_exact_and_6nd_undercounts(preset, tie):
    cfg = get_preset(preset).replace(tie_embeddings=tie)
    subs = values(cfg, 3, 256)
    exact = train_step_flops(cfg, 3, 256)
    assert evaluate(palm_formula(cfg), subs) == exact
    assert evaluate(kaplan_6nd_formula(cfg), subs) < exact


def test_crossover_is_where_attention_overtakes_ffn():
    for cfg in (get_preset("cs336-gpt2-small"), get_preset("cs336-gpt2-xl").replace(ffn="silu")):
        t_star = attention_crossover(cfg)
        below, above = flop_shares(cfg, int(t_star) - 1), flop_shares(cfg, int(t_star) + 1)
        assert below.shares["attention_core"] < below.shares["ffn"]
        assert above.shares["attention_core"] > above.shares["ffn"]
    assert attention_crossover(get_preset("cs336-gpt2-small")) == 1.5 * 3072


# Each switch flipped at least once (naive attention: FlopCounterMode does not count torch's CPU
# sdpa kernel; the sdpa FLOPs are the same matmuls by definition).
_FLOP_VARIANTS = [{}, {"ffn": "silu"}, {"tie_embeddings": True}, {"norm": "none", "positions": "none"},
                  {"norm_position": "post", "ffn": "silu", "tie_embeddings": True}]


@pytest.mark.parametrize("variant", _FLOP_VARIANTS, ids=str)
def test_train_step_matches_flop_counter_mode(instruments, variant):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from model.loss import cross_entropy
    from model.transformer import TransformerLM

    cfg = instruments.tiny(**variant)
    model = TransformerLM(cfg)
    x, y = torch.randint(0, 37, (2, 7)), torch.randint(0, 37, (2, 7))
    with FlopCounterMode(display=False) as counter:
        logits = model(x)
        assert counter.get_total_flops() == forward_flops(cfg, 2, 7)
        cross_entropy(logits, y).backward()
    assert counter.get_total_flops() == train_step_flops(cfg, 2, 7)


def test_nonmatmul_forward_matches_dispatch_counter(instruments, variant_cfg):
    torch = pytest.importorskip("torch")
    from model.loss import cross_entropy
    from model.transformer import TransformerLM

    model = TransformerLM(variant_cfg)
    x, y = torch.randint(0, 37, (3, 5)), torch.randint(0, 37, (3, 5))
    with instruments.dispatch_counter() as counter:
        cross_entropy(model(x), y)
    assert counter.nonmatmul_flops() == nonmatmul_forward_flops(variant_cfg, 3, 5)
