"""TransformerLM: parameter counts by hand, state-dict names, causality for every variant, meta
construction, tied embeddings, config round trip, bf16."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from torch.overrides import TorchFunctionMode

from accounting.config import VARIANT_CHOICES, ModelConfig, get_preset
from model import Identity, RMSNorm, TransformerLM

TINY = ModelConfig(vocab_size=50, context_length=16, d_model=16, num_layers=2, num_heads=4, d_ff=24)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared Parameter once


# tinystories: V = 10_000, d = 512, L = 4, d_ff = 1_344.
#   embeddings + lm_head: 2 * 10_000 * 512                 = 10_240_000
#   attention per layer:  4 * 512 * 512                     =  1_048_576
#   SwiGLU per layer:     3 * 512 * 1_344                   =  2_064_384   (plain SiLU: 2 * ... = 1_376_256)
#   norms per layer:      2 * 512                           =      1_024
#   ln_final:             512
TINYSTORIES_COUNTS = {
    "default": 10_240_000 + 4 * (1_048_576 + 2_064_384 + 1_024) + 512,  # 22_696_448
    "ffn=silu": 10_240_000 + 4 * (1_048_576 + 1_376_256 + 1_024) + 512,
    "norm=none": 10_240_000 + 4 * (1_048_576 + 2_064_384),  # no ln1/ln2, no ln_final
    "norm_position=post": 10_240_000 + 4 * (1_048_576 + 2_064_384 + 1_024),  # no ln_final
    "positions=none": 10_240_000 + 4 * (1_048_576 + 2_064_384 + 1_024) + 512,  # RoPE has no parameters
    "tie_embeddings=True": 5_120_000 + 4 * (1_048_576 + 2_064_384 + 1_024) + 512,
}


@pytest.mark.parametrize("variant", sorted(TINYSTORIES_COUNTS))
def test_parameter_count_tinystories(variant):
    cfg = get_preset("tinystories")
    if variant != "default":
        key, value = variant.split("=")
        cfg = cfg.replace(**{key: value == "True" if value in ("True", "False") else value})
    assert _count(TransformerLM(cfg, device="meta")) == TINYSTORIES_COUNTS[variant]
    assert TINYSTORIES_COUNTS["default"] == 22_696_448


def test_state_dict_keys():
    model = TransformerLM(TINY.replace(num_layers=1))
    block = ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.output_proj", "ln1", "ffn.w1",
             "ffn.w2", "ffn.w3", "ln2"]
    expected = {"token_embeddings.weight", "ln_final.weight", "lm_head.weight"}
    expected |= {f"layers.0.{name}.weight" for name in block}
    assert set(model.state_dict()) == expected
    assert model.state_dict()["layers.0.ffn.w1.weight"].shape == (24, 16)


def test_ln_final_only_for_pre_rmsnorm():
    assert isinstance(TransformerLM(TINY).ln_final, RMSNorm)
    for cfg in (TINY.replace(norm_position="post"), TINY.replace(norm="none")):
        model = TransformerLM(cfg)
        assert isinstance(model.ln_final, Identity)
    assert isinstance(TransformerLM(TINY.replace(norm="none")).layers[0].ln1, Identity)


def test_gpt2_xl_builds_on_meta_without_allocation():
    start = time.perf_counter()
    model = TransformerLM(get_preset("cs336-gpt2-xl"), device="meta")
    assert time.perf_counter() - start < 10
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())
    # V d (embedding) + V d (head) + 48 (4 d^2 + 3 d d_ff + 2 d) + d, with V = 50_257, d = 1_600,
    # d_ff = 6_400: 160_822_400 + 48 * 40_963_200 + 1_600
    assert _count(model) == 2_127_057_600


def test_tied_embeddings_share_one_parameter():
    model = TransformerLM(TINY.replace(tie_embeddings=True))
    assert model.lm_head.weight is model.token_embeddings.weight
    assert model.lm_head.weight.data_ptr() == model.token_embeddings.weight.data_ptr()
    assert model.token_embeddings.weight.abs().max() > 1.0  # the embedding's N(0, 1) init, not Linear's
    untied = TransformerLM(TINY)
    assert _count(untied) - _count(model) == 50 * 16


def test_from_config_round_trip():
    cfg = TINY.replace(ffn="silu", norm_position="post", rope_theta=500.0, norm_eps=1e-6)
    model = TransformerLM(cfg)
    assert model.config is cfg
    direct = TransformerLM.from_cs336(50, 16, 16, 2, 4, 24, 500.0, ffn="silu", norm_position="post",
                                      eps=1e-6)
    assert direct.config == cfg
    twin = TransformerLM(model.config)
    twin.load_state_dict(model.state_dict())
    ids = torch.randint(0, 50, (2, 10))
    torch.testing.assert_close(twin(ids), model(ids))


def _variants():
    names = list(VARIANT_CHOICES)
    for values in itertools.product(*(VARIANT_CHOICES[n] for n in names)):
        yield dict(zip(names, values))


def test_causality_for_every_variant():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 50
    for variant in _variants():
        model = TransformerLM(TINY.replace(**variant))
        with torch.no_grad():
            a, b = model(ids), model(changed)
        assert a.shape == (2, 12, 50)
        torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0, msg=f"{variant}")
        assert not torch.allclose(a[:, 7:], b[:, 7:]), variant


@pytest.mark.parametrize("variant", [{}, {"norm": "none", "ffn": "silu"}, {"norm_position": "post", "positions": "none"}])
def test_naive_and_sdpa_agree(variant):
    torch.manual_seed(1)
    naive = TransformerLM(TINY.replace(**variant))
    fused = TransformerLM(TINY.replace(attention="sdpa", **variant))
    fused.load_state_dict(naive.state_dict())
    ids = torch.randint(0, 50, (3, 16))
    torch.testing.assert_close(fused(ids), naive(ids), rtol=1e-5, atol=1e-5)


def test_bf16_forward_backward():
    torch.manual_seed(2)
    ref = TransformerLM(TINY)
    model = TransformerLM(TINY, dtype=torch.bfloat16)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in ref.state_dict().items()})
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    ids = torch.randint(0, 50, (2, 10))
    logits = model(ids)
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.bfloat16 for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(logits.float(), ref(ids), rtol=0.1, atol=0.15)


def test_rejects_sequences_longer_than_context():
    model = TransformerLM(TINY)
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, 17, dtype=torch.long))


class _NNCalls(TorchFunctionMode):
    """Records torch.nn.functional / torch._C._nn functions called inside the mode."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        module = getattr(func, "__module__", "") or ""
        if module.startswith(("torch.nn", "torch._C._nn")):
            self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("attention", ["naive", "sdpa"])
def test_only_sdpa_variant_uses_torch_nn_functional(attention):
    model = TransformerLM(TINY.replace(attention=attention))
    calls = _NNCalls()
    with calls:
        model(torch.zeros(1, 5, dtype=torch.long))
    assert calls.names == ({"scaled_dot_product_attention"} if attention == "sdpa" else set())


@pytest.mark.parametrize("bad", [{"norm": "batchnorm"}, {"ffn": "relu"}, {"positions": "alibi"},
                                 {"norm_position": "middle"}, {"attention": "flash"}])
def test_block_rejects_unknown_variant(bad):
    from model import TransformerBlock

    with pytest.raises(ValueError, match=next(iter(bad))):
        TransformerBlock.from_cs336(16, 4, 24, 16, 10_000.0, **bad)
