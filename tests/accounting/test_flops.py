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


def test_nonmatmul_forward_by_hand():
    """cs336-gpt2-small (naive attention), B=1, T=1024, read op by op from the model's code, one
    FLOP per element of each pointwise op and per input element of each reduction; n = B*T = 1024.
      RMSNorm: x.pow(2), mean over d, *rms, *weight on n*d; +eps, rsqrt on n: 4*786,432 + 2*1,024
               = 3,147,776 (twice per block)
      RoPE: q and k, each x1*cos, x2*sin, x1*sin, x2*cos on n*d/2 and a sub and an add: 3*n*d each,
            4,718,592 for both
      attention: scores*scale, amax, -max, exp, sum, /sum on (1, 12, 1024, 1024): 75,497,472
      SwiGLU: sigmoid, x*sigmoid, *W3x on n*d_ff: 9,437,184
      residual adds: 2*n*d = 1,572,864
      a block: 2*3,147,776 + 4,718,592 + 75,497,472 + 9,437,184 + 1,572,864 = 97,521,664; 12 blocks
      1,170,259,968; the final RMSNorm 3,147,776; the loss: amax, -max, exp, sum on (n, V) 4*n*V
      = 205,852,672, and log, -target, mean on n 3,072. Total 1,379,263,488.
    (The dispatch counter applies the same cost table to every aten call of the real model:
    test_nonmatmul_forward_matches_dispatch_counter.)"""
    cfg = get_preset("cs336-gpt2-small")
    block = 2 * 3_147_776 + 4_718_592 + 75_497_472 + 9_437_184 + 1_572_864
    assert block == 97_521_664
    assert nonmatmul_forward_flops(cfg, 1, 1024) == 12 * block + 3_147_776 + 205_852_672 + 3_072 \
        == 1_379_263_488


def test_nonmatmul_forward_matches_dispatch_counter(instruments, variant_cfg):
    torch = pytest.importorskip("torch")
    from model.loss import cross_entropy
    from model.transformer import TransformerLM

    model = TransformerLM(variant_cfg)
    x, y = torch.randint(0, 37, (3, 5)), torch.randint(0, 37, (3, 5))
    with instruments.dispatch_counter() as counter:
        cross_entropy(model(x), y)
    assert counter.nonmatmul_flops() == nonmatmul_forward_flops(variant_cfg, 3, 5)
