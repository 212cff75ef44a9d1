"""RoPE against a slow complex-number twin and its relative-position property; multi-head
attention against a per-head reference built from torch's fused attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model import MultiHeadSelfAttention, RotaryPositionalEmbedding


def _rope_complex_reference(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Pair j of position i as the complex number x[2j] + i x[2j+1], times exp(i * i_pos * theta^(-2j/d))."""
    d = x.shape[-1]
    out = torch.empty_like(x)
    for t, pos in enumerate(positions.tolist()):
        for j in range(d // 2):
            z = complex(x[..., t, 2 * j].item(), x[..., t, 2 * j + 1].item())
            w = z * complex(torch.polar(torch.tensor(1.0, dtype=torch.float64),
                                        torch.tensor(pos * theta ** (-2 * j / d), dtype=torch.float64)))
            out[..., t, 2 * j], out[..., t, 2 * j + 1] = w.real, w.imag
    return out


def test_rope_matches_complex_reference():
    torch.manual_seed(0)
    rope = RotaryPositionalEmbedding(10_000.0, 8, 32)
    x = torch.randn(5, 8, dtype=torch.float64)
    positions = torch.tensor([0, 1, 7, 20, 31])
    ours = rope(x, positions)
    torch.testing.assert_close(ours, _rope_complex_reference(x, positions, 10_000.0).to(ours.dtype),
                               rtol=1e-5, atol=1e-5)


def test_rope_dot_product_depends_only_on_position_difference():
    torch.manual_seed(1)
    rope = RotaryPositionalEmbedding(500.0, 16, 64)
    q, k = torch.randn(1, 16), torch.randn(1, 16)

    def score(m: int, n: int) -> float:
        return (rope(q, torch.tensor([m])) @ rope(k, torch.tensor([n])).T).item()

    base = score(3, 1)
    for shift in (1, 10, 40):
        assert abs(score(3 + shift, 1 + shift) - base) < 1e-4
    assert abs(score(5, 1) - base) > 1e-3  # a different offset gives a different score


def test_rope_buffers_are_not_parameters_nor_state():
    rope = RotaryPositionalEmbedding(10_000.0, 8, 16)
    assert list(rope.parameters()) == []
    assert rope.state_dict() == {}
    assert {n for n, _ in rope.named_buffers()} == {"cos", "sin"}
    assert rope.cos.shape == (16, 4)


def _mha_reference(mha: MultiHeadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Head h takes rows h*d_k .. (h+1)*d_k - 1 of each projection; torch's causal attention per head."""
    h, d_k = mha.num_heads, mha.d_k
    wq, wk, wv, wo = (m.weight.detach() for m in (mha.q_proj, mha.k_proj, mha.v_proj, mha.output_proj))
    positions = torch.arange(x.shape[-2])
    heads = []
    for i in range(h):
        rows = slice(i * d_k, (i + 1) * d_k)
        q, k, v = x @ wq[rows].T, x @ wk[rows].T, x @ wv[rows].T  # (B, T, d_k)
        if mha.rope is not None:
            q, k = mha.rope(q, positions), mha.rope(k, positions)
        heads.append(F.scaled_dot_product_attention(q, k, v, is_causal=True))
    return torch.cat(heads, dim=-1) @ wo.T


def test_mha_matches_per_head_reference_with_and_without_rope():
    torch.manual_seed(2)
    x = torch.randn(2, 9, 12)
    for rope in (None, RotaryPositionalEmbedding(10_000.0, 4, 16)):
        for attention in ("naive", "sdpa"):
            torch.manual_seed(3)
            mha = MultiHeadSelfAttention(12, 3, rope=rope, attention=attention)
            torch.testing.assert_close(mha(x), _mha_reference(mha, x), rtol=1e-5, atol=1e-5)


def test_mha_explicit_positions_match_default():
    torch.manual_seed(4)
    mha = MultiHeadSelfAttention(8, 2, rope=RotaryPositionalEmbedding(10_000.0, 4, 16))
    x = torch.randn(3, 6, 8)
    batch_positions = torch.arange(6).expand(3, 6)
    torch.testing.assert_close(mha(x, batch_positions), mha(x))
    torch.testing.assert_close(mha(x, torch.arange(6)), mha(x))


def test_softmax_saves_only_exp_and_row_sums():
    """The documented saved-tensor map (model/transformer.py) relies on this: nothing of x is kept."""
    from model import softmax

    x = torch.randn(4, 6, requires_grad=True) * 1.0  # non-leaf, like attention scores
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = softmax(x, -1)
    storages = {t.untyped_storage().data_ptr(): tuple(t.shape) for t in saved}
    assert x.untyped_storage().data_ptr() not in storages
    assert sorted(storages.values()) == [(4, 1), (4, 6)]
    e = torch.exp(x - x.max(-1, keepdim=True).values)
    exp_saved = next(t for t in saved if t.shape == (4, 6))
    torch.testing.assert_close(exp_saved, e)
    torch.testing.assert_close(out, torch.softmax(x, -1))
