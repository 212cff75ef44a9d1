"""cross_entropy vs torch's F.cross_entropy; clip_gradients vs torch.nn.utils.clip_grad_norm_."""

import torch
import torch.nn.functional as F

from model import clip_gradients, cross_entropy


def test_cross_entropy_matches_torch_over_batch_dims():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=gen)
    targets = torch.randint(0, 11, (3, 5), generator=gen)
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    torch.testing.assert_close(cross_entropy(logits, targets), expected)


def test_cross_entropy_is_stable_for_huge_logits():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 7, generator=gen) * 1000  # exp() of these overflows float32
    targets = torch.randint(0, 7, (8,), generator=gen)
    got = cross_entropy(logits, targets)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, F.cross_entropy(logits, targets))


def test_cross_entropy_gradient_matches_torch_and_saves_no_logits():
    """Gradient equal to F.cross_entropy's (bf16 logits too, as under autocast, and a
    non-contiguous targets slice as the trainer passes); autograd keeps exp(shifted) (..., V) float32,
    the (...) sums and two (n,) int64 index tensors: never a second (n, V) tensor."""
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 13, (3, 8), generator=gen)
    targets = ids[:, 1:]  # a (3, 7) view with row stride 8: not contiguous
    for dtype in (torch.float32, torch.bfloat16):
        logits = (torch.randn(3, 7, 13, generator=gen) * 4).to(dtype).requires_grad_(True)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t: saved.append((tuple(t.shape), t.dtype)) or t, lambda t: t):
            loss = cross_entropy(logits, targets)
        (ours,) = torch.autograd.grad(loss, logits)
        ref_logits = logits.detach().float().requires_grad_(True)
        (ref,) = torch.autograd.grad(F.cross_entropy(ref_logits.reshape(-1, 13), targets.reshape(-1)),
                                     ref_logits)
        torch.testing.assert_close(ours.float(), ref, **({} if dtype == torch.float32 else
                                                         {"rtol": 1e-2, "atol": 1e-3}))
        assert sorted(saved, key=str) == sorted(
            [((3, 7, 13), torch.float32), ((3, 7), torch.float32), ((21,), torch.int64),
             ((21,), torch.int64)], key=str)


def test_cross_entropy_of_uniform_logits_is_log_vocab():
    # hand-derived: equal scores over V classes give -log(1/V) = log V per position
    logits = torch.zeros(4, 6, 50)
    targets = torch.zeros(4, 6, dtype=torch.long)
    torch.testing.assert_close(cross_entropy(logits, targets), torch.tensor(50.0).log())


def _params_with_grads(scale: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(4, 3, generator=gen)) for _ in range(3)]
    for p in params[:2]:  # the third has no grad and must be skipped
        p.grad = torch.randn(p.shape, generator=gen) * scale
    return params


def test_clip_gradients_matches_torch_when_clipping():
    ours, ref = _params_with_grads(10.0), _params_with_grads(10.0)
    norm = clip_gradients(ours, 1.0)
    ref_norm = torch.nn.utils.clip_grad_norm_([p for p in ref if p.grad is not None], 1.0)
    assert abs(norm - float(ref_norm)) < 1e-4 * float(ref_norm)
    for a, b in zip(ours, ref):
        if b.grad is None:
            assert a.grad is None
        else:
            torch.testing.assert_close(a.grad, b.grad)
    clipped = torch.sqrt(sum((p.grad ** 2).sum() for p in ours if p.grad is not None))
    assert abs(float(clipped) - 1.0) < 1e-5


def test_clip_gradients_leaves_small_gradients_alone():
    params = _params_with_grads(1e-3)
    before = [p.grad.clone() for p in params if p.grad is not None]
    norm = clip_gradients(params, 1.0)
    expected = float(torch.sqrt(sum((g ** 2).sum() for g in before)))
    assert abs(norm - expected) < 1e-9 + 1e-6 * expected
    for b, p in zip(before, params):
        torch.testing.assert_close(p.grad, b, rtol=0, atol=0)
