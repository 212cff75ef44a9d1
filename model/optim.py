"""AdamW with decoupled weight decay (CS336 order) and the cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


class AdamW(torch.optim.Optimizer):
    """AdamW (Loshchilov & Hutter), step written as an explicit op sequence.

    Per parameter p with gradient g, at step t = 1, 2, ... (state: t in state["step"], a Python int;
    m = state["exp_avg"] and v = state["exp_avg_sq"], float tensors shaped like p, zero at t = 0):

        m.mul_(beta1).add_(g, alpha=1 - beta1)             # 1 + 2 FLOPs / element
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)      # 1 + 3 FLOPs / element
        alpha_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t) # Python floats, no tensor work
        denom = v.sqrt().add_(eps)                         # 1 + 1 FLOPs / element (1 temp tensor)
        p.addcdiv_(m, denom, value=-alpha_t)               # 3 FLOPs / element
        p.add_(p, alpha=-lr * weight_decay)                # 2 FLOPs / element

    so 14 elementwise FLOPs per parameter element, counted as accounting.conventions costs each
    aten op (add with alpha != 1 = 2: scale + add; addcmul / addcdiv = 3; mul, sqrt = 1), which is
    accounting.adamw_flops_per_element(); and 2 state tensors (m, v) per parameter element plus
    one parameter-sized temporary (denom) at a time. model.fast_optim.FastAdamW runs the same
    update over whole parameter lists. Weight decay is applied
    after the Adam update (CS336 order); torch.optim.AdamW decays before it, so the two agree exactly
    with weight_decay=0 and to O(lr * weight_decay * alpha_t) per step otherwise. Parameters are
    assumed dense and real; `lr` may be changed between steps through `param_groups`.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        """Update every parameter of one group that has a gradient (one tensor at a time)."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is not None:
                t = self._advance(p)
                self._update(p, p.grad, self.state[p], t, lr, beta1, beta2, eps, weight_decay)

    def _advance(self, p: torch.Tensor) -> int:
        """Create p's state on its first step (m = v = 0), count the step; returns the new t."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] = t = int(state["step"]) + 1
        return t

    @staticmethod
    def _update(p: torch.Tensor, g: torch.Tensor, state: dict, t: int, lr: float, beta1: float,
                beta2: float, eps: float, weight_decay: float) -> None:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        alpha_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        denom = v.sqrt().add_(eps)
        p.addcdiv_(m, denom, value=-alpha_t)
        p.add_(p, alpha=-lr * weight_decay)


def cosine_lr(it: int, max_lr: float, min_lr: float, warmup_iters: int,
              cosine_cycle_iters: int) -> float:
    """Learning rate at iteration `it` (0-based): linear warmup, cosine decay, then constant.

    it < warmup_iters:                       it / warmup_iters * max_lr
    warmup_iters <= it <= cosine_cycle_iters: min_lr + (1 + cos(pi * (it - Tw) / (Tc - Tw))) / 2
                                              * (max_lr - min_lr)
    it > cosine_cycle_iters:                  min_lr
    """
    if it < warmup_iters:
        return it / warmup_iters * max_lr
    if it <= cosine_cycle_iters:
        span = cosine_cycle_iters - warmup_iters
        if span <= 0:  # no cosine phase: warmup goes straight to the floor
            return min_lr
        progress = (it - warmup_iters) / span
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    return min_lr
