"""AdamW vs torch.optim.AdamW; cosine_lr vs a hand-computed table."""

import math

import pytest
import torch

from model import AdamW, cosine_lr


def _run(opt_cls, weight_decay: float, steps: int = 12, **kw):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6, 5))
    b = torch.nn.Parameter(torch.randn(5))
    opt = opt_cls([w, b], lr=3e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay, **kw)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(7, 6, generator=gen)
        loss = ((x @ w + b) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach(), b.detach(), opt


def test_adamw_equals_torch_without_decay():
    w, b, opt = _run(AdamW, 0.0)
    w_ref, b_ref, _ = _run(torch.optim.AdamW, 0.0, foreach=False)
    torch.testing.assert_close(w, w_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(b, b_ref, rtol=1e-6, atol=1e-7)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"] == 12 and isinstance(state["step"], int)


def test_adamw_with_decay_close_to_torch():
    # torch decays p before the Adam update, we decay after it (CS336 order). Per step the two
    # differ by lr * wd * (Adam update) = lr * wd * alpha_t * m/(sqrt(v)+eps) ~ 3e-2 * 0.1 * 3e-2
    # ~ 1e-4 in each coordinate, and drift stays of that order over 12 steps: allow 1e-3.
    w, b, _ = _run(AdamW, 0.1)
    w_ref, b_ref, _ = _run(torch.optim.AdamW, 0.1, foreach=False)
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-3)
    torch.testing.assert_close(b, b_ref, rtol=0, atol=1e-3)
    w0, _, _ = _run(AdamW, 0.0)
    assert (w - w0).abs().max() > 1e-3  # decay really acted (so the tolerance is meaningful)


def test_adamw_decay_is_applied_after_update_with_current_lr():
    # One step by hand: g = 1 everywhere, p0 = 2. m = 0.1, v = 0.001, alpha_1 = lr*sqrt(.001)/.1,
    # p_adam = 2 - alpha_1 * 0.1/(sqrt(.001)+eps) = 2 - lr*(1 - ~3e-7); then p *= (1 - lr*wd).
    p = torch.nn.Parameter(torch.full((3,), 2.0, dtype=torch.float64))
    opt = AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5)
    p.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    alpha = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9)
    p_adam = 2 - alpha * 0.1 / (math.sqrt(0.001) + 1e-8)
    expected = p_adam * (1 - 0.1 * 0.5)
    assert p.detach().tolist() == pytest.approx([expected] * 3, rel=1e-12)


def test_adamw_rejects_bad_hyperparameters():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="lr"):
        AdamW([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        AdamW([p], betas=(0.9, 1.0))


# max_lr 1, min_lr 0.1, warmup 4, cycle 12: warmup it/4; cosine 0.1 + 0.45 (1 + cos(pi (it-4)/8))
COSINE_TABLE = {
    0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75,
    4: 1.0,
    6: 0.1 + 0.45 * (1 + math.sqrt(0.5)),   # cos(pi/4)
    8: 0.55,                                # cos(pi/2) = 0
    10: 0.1 + 0.45 * (1 - math.sqrt(0.5)),  # cos(3pi/4)
    12: 0.1,                                # cos(pi) = -1
    13: 0.1, 100: 0.1,
}


@pytest.mark.parametrize("it,expected", sorted(COSINE_TABLE.items()))
def test_cosine_lr_table(it, expected):
    assert cosine_lr(it, 1.0, 0.1, 4, 12) == pytest.approx(expected, abs=1e-12)
