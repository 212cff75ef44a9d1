"""Ablations and batch size: each run trains the model it claims to, as the accounting predicts."""

from __future__ import annotations

import math

import pytest

import accounting
from model import RMSNorm, MLP, SwiGLU, TransformerLM
from model.experiments import ablation_variants, batch_grid, run_ablations, run_batch_size, scaled_lr
from model.experiments.batch_size import plan

from .conftest import TINY, tiny_corpus, tiny_settings

BASE = TINY.replace(d_model=24, d_ff=64)  # 64 = 8/3 x 24: SwiGLU and SiLU(4d) match exactly


@pytest.fixture
def built_models(monkeypatch):
    """Every TransformerLM the trainer builds, in order (the real class, only observed)."""
    built = []
    original = TransformerLM.__init__

    def spy(self, cfg, *args, **kwargs):
        original(self, cfg, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(TransformerLM, "__init__", spy)
    return built


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())  # .parameters() yields a tied matrix once


def test_each_ablation_trains_its_own_variant(tmp_path, built_models):
    settings = tiny_settings(model_cfg=BASE, steps=3, eval_interval=0)
    summary = run_ablations(settings, tiny_corpus(), tmp_path, lr=1e-2, low_lr_factor=0.25)
    runs = {r.name: r for r in summary.runs}
    assert list(runs) == ["baseline", "no-rmsnorm", "no-rmsnorm-low-lr", "post-norm", "no-rope", "silu-ffn"]
    assert len(built_models) == 6
    for run, model in zip(summary.runs, built_models):
        assert model.config.to_dict() == run.config
        assert _count(model) == run.parameters == accounting.total_parameters(model.config)
    base, no_norm, low, post, no_rope, silu = built_models
    d, L = BASE.d_model, BASE.num_layers
    norms = lambda m: sum(isinstance(x, RMSNorm) for x in m.modules())  # noqa: E731
    assert norms(base) == 2 * L + 1 and norms(no_norm) == 0 and norms(post) == 2 * L  # no ln_final
    assert runs["baseline"].parameters - runs["no-rmsnorm"].parameters == (2 * L + 1) * d
    assert runs["baseline"].parameters - runs["post-norm"].parameters == d
    assert all(b.norm_position == "post" for b in post.layers)
    assert all(b.attn.rope is not None for b in base.layers)
    assert all(b.attn.rope is None for b in no_rope.layers)
    assert runs["no-rope"].parameters == runs["baseline"].parameters  # RoPE has no parameters
    assert all(isinstance(b.ffn, SwiGLU) for b in base.layers)
    assert all(isinstance(b.ffn, MLP) and b.ffn.w1.out_features == 4 * d for b in silu.layers)
    assert runs["silu-ffn"].parameters == runs["baseline"].parameters  # 2 d (4d) = 3 d (8d/3)
    assert runs["no-rmsnorm-low-lr"].lr == pytest.approx(0.25 * runs["no-rmsnorm"].lr)
    match = summary.findings["parameter_match"]
    assert match["difference"] == 0 and match["silu_d_ff"] == 96 and match["swiglu_d_ff"] == 64
    assert summary.findings["by_run"]["baseline"]["val_loss_change_vs_baseline"] == 0


def test_silu_parameter_gap_when_d_ff_is_not_eight_thirds():
    (_, base, _), *_, (_, silu, _) = ablation_variants(BASE.replace(d_ff=48), 1e-3)
    gap = accounting.total_parameters(silu) - accounting.total_parameters(base)
    assert gap == BASE.num_layers * (2 * 24 * 96 - 3 * 24 * 48)


def test_batch_grid_and_lr_rules():
    assert batch_grid(1) == [1] and batch_grid(8) == [1, 2, 4, 8] and batch_grid(12) == [1, 2, 4, 8, 12]
    assert scaled_lr(1e-3, 64, "sqrt", 16) == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 4, "linear", 16) == pytest.approx(2.5e-4)
    assert scaled_lr(1e-3, 4, "constant", 16) == 1e-3
    with pytest.raises(ValueError, match="lr rule"):
        scaled_lr(1e-3, 4, "cubic")


def test_batch_plan_stops_at_accountings_largest_fit():
    settings = tiny_settings()
    fit10 = accounting.largest_batch_size(TINY, 10**9)
    budget = fit10.fixed_bytes + 5 * fit10.bytes_per_sequence + fit10.bytes_per_sequence // 2  # room for 5.5
    p = plan(settings, 1 << 16, memory_budget_bytes=budget, min_steps=2)
    assert p["top"] == 5 and p["limited_by"] == "memory_fit" and p["grid"] == [1, 2, 4, 5]
    # the independent check: the accounting's peak memory itself at 5 and 6
    assert accounting.peak_memory_bytes(TINY, 5) <= budget < accounting.peak_memory_bytes(TINY, 6)
    p = plan(settings, 16 * 10 * 4, min_steps=10)  # host memory is plenty: the token budget binds
    assert p["top"] == 4 and p["limited_by"] == "token_budget"
    with pytest.raises(ValueError, match="smaller than the weights"):
        plan(settings, 1 << 16, memory_budget_bytes=fit10.fixed_bytes // 2)


def test_batch_size_sweep_spends_the_same_tokens_with_rescaled_rates(tmp_path):
    settings = tiny_settings()
    summary = run_batch_size(settings, tiny_corpus(), tmp_path, lr=4e-3, token_budget=8 * 4 * 16,
                             min_steps=4, ref_batch=4)
    runs = summary.runs
    assert [r.batch_size for r in runs] == [1, 2, 4, 8]
    assert {r.tokens_seen for r in runs} == {8 * 4 * 16}
    for r in runs:
        assert r.lr == pytest.approx(4e-3 * math.sqrt(r.batch_size / 4))
        assert r.steps == 8 * 4 // r.batch_size and r.tokens_per_s > 0 and r.final_val_loss is not None
    assert summary.findings["top_limited_by"] == "token_budget"
    assert (tmp_path / "loss_vs_throughput.html").is_file()
