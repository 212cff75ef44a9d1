"""Layers against independent references: torch's own ops, hand compositions, init statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model import Embedding, Identity, Linear, RMSNorm, MLP, SwiGLU, scaled_dot_product_attention, silu, softmax


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("dim", [0, -1, 1])
def test_softmax_matches_torch(scale, dim):
    x = torch.randn(3, 5, 7, dtype=torch.float64) * scale
    torch.testing.assert_close(softmax(x, dim), torch.softmax(x, dim=dim))


def test_softmax_large_inputs_stay_finite():
    x = torch.tensor([[1000.0, 1001.0, 999.0], [-1e6, 0.0, 1e6]])
    out = softmax(x, -1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=-1))


def test_softmax_gradient_matches_torch():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 6, dtype=torch.float64)
    (ours,) = torch.autograd.grad(softmax(x, -1), x, g)
    (ref,) = torch.autograd.grad(torch.softmax(x, -1), x, g)
    torch.testing.assert_close(ours, ref)


def test_silu_matches_torch():
    x = torch.randn(1000) * 10
    torch.testing.assert_close(silu(x), F.silu(x))


def test_sdpa_with_boolean_mask_matches_torch():
    Q = torch.randn(2, 3, 5, 8)
    K = torch.randn(2, 3, 6, 8)
    V = torch.randn(2, 3, 6, 4)
    mask = torch.rand(2, 3, 5, 6) > 0.4
    mask[..., 0] = True  # every query attends to something (else both sides give NaN rows)
    ref = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(Q, K, V, mask), ref)


def test_sdpa_without_mask_and_extra_batch_dims():
    Q, K, V = torch.randn(2, 2, 2, 4, 8), torch.randn(2, 2, 2, 3, 8), torch.randn(2, 2, 2, 3, 5)
    ref = torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(8), dim=-1) @ V
    torch.testing.assert_close(scaled_dot_product_attention(Q, K, V), ref)


def test_linear_is_x_times_w_transpose():
    layer = Linear(6, 4)
    assert layer.weight.shape == (4, 6)
    assert not any("bias" in n for n, _ in layer.named_parameters())
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(layer(x), x @ layer.weight.detach().T)


def test_linear_under_bf16_autocast_equals_torch_linear():
    """Under autocast, Linear casts W itself (not the view W.T): output, dtype and gradients must be
    F.linear's under the same autocast, bit for bit, and the weight's gradient float32 and laid out
    like the weight (contiguous)."""
    layer = Linear(64, 96)
    ref_w = layer.weight.detach().clone().requires_grad_(True)
    x = torch.randn(3, 5, 64)
    g = torch.randn(3, 5, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ref = layer(x), F.linear(x, ref_w)
    assert ours.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(ours, ref)
    ours.backward(g)
    ref.backward(g)
    assert layer.weight.grad.dtype == torch.float32 and layer.weight.grad.is_contiguous()
    assert torch.equal(layer.weight.grad, ref_w.grad)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):  # autocast off: float32 math
        assert layer(x).dtype == torch.float32


def _truncated_std_factor(c: float = 3.0) -> float:
    """Std of N(0,1) truncated at +-c: sqrt(1 - 2 c phi(c) / (2 Phi(c) - 1))."""
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(c / math.sqrt(2))
    return math.sqrt(1 - 2 * c * phi / mass)


def test_linear_init_statistics():
    layer = Linear(512, 1024)
    sigma = math.sqrt(2 / (512 + 1024))
    w = layer.weight.detach()
    assert w.abs().max() <= 3 * sigma + 1e-7
    assert w.abs().max() > 2.5 * sigma  # truncation, not a much narrower distribution
    assert abs(w.mean().item()) < 0.01 * sigma
    assert w.std().item() == pytest.approx(sigma * _truncated_std_factor(), rel=0.01)


def test_embedding_init_and_lookup():
    emb = Embedding(1000, 256)
    w = emb.weight.detach()
    assert w.shape == (1000, 256)
    assert w.abs().max() <= 3.0
    assert w.std().item() == pytest.approx(_truncated_std_factor(), rel=0.01)
    ids = torch.tensor([[3, 999, 0], [3, 3, 5]])
    torch.testing.assert_close(emb(ids), w[ids])


def test_rmsnorm_matches_torch_rmsnorm():
    ours = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
    ref = torch.nn.RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    x = torch.randn(3, 4, 16) * 5
    torch.testing.assert_close(ours(x), ref(x))
    assert torch.equal(RMSNorm(5).weight.detach(), torch.ones(5))


def test_rmsnorm_computes_in_float32_for_bf16_input():
    norm = RMSNorm(64, dtype=torch.bfloat16)
    x = (torch.randn(8, 64) * 30).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    x32 = x.float()
    expected = (x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(torch.bfloat16)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_swiglu_and_silu_ffn_match_hand_composition():
    x = torch.randn(2, 5, 8)
    ffn = SwiGLU(8, 12)
    w1, w2, w3 = (ffn.w1.weight.detach(), ffn.w2.weight.detach(), ffn.w3.weight.detach())
    assert (w1.shape, w2.shape, w3.shape) == ((12, 8), (8, 12), (12, 8))
    torch.testing.assert_close(ffn(x), (F.silu(x @ w1.T) * (x @ w3.T)) @ w2.T)
    plain = MLP(8, 12)
    assert sorted(n for n, _ in plain.named_parameters()) == ["w1.weight", "w2.weight"]
    torch.testing.assert_close(plain(x), F.silu(x @ plain.w1.weight.detach().T) @ plain.w2.weight.detach().T)


def test_identity_has_no_parameters():
    x = torch.randn(3)
    assert Identity()(x) is x
    assert list(Identity().parameters()) == []
