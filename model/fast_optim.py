"""AdamW over whole parameter lists: torch's multi-tensor `_foreach` ops or its fused kernel.

`FastAdamW` computes the update of `model.optim.AdamW` (CS336 order: Adam step, then decoupled
weight decay with the current lr) and keeps the same state (`step` a Python int, `exp_avg`,
`exp_avg_sq`), so checkpoints move freely between the two classes. Parameters are bucketed by
(device, dtype, step) and each bucket is updated with one call per op instead of one per tensor.

implementation="foreach": the reference op sequence, each op one `torch._foreach_*` call:
    _foreach_mul_(m, beta1); _foreach_add_(m, g, alpha=1-beta1)            # 1 + 2 FLOPs / element
    _foreach_mul_(v, beta2); _foreach_addcmul_(v, g, g, value=1-beta2)     # 1 + 3
    denom = _foreach_sqrt(v); _foreach_add_(denom, eps)                    # 1 + 1
    _foreach_addcdiv_(p, m, denom, value=-alpha_t)                         # 3
    _foreach_add_(p, p, alpha=-lr*wd)                                      # 2
  14 FLOPs / element under accounting.conventions (= accounting.adamw_flops_per_element()), and
  bit-identical to the reference on CPU (torch's CPU foreach kernels loop over the per-tensor ops).
  Temporaries: `denom` for the whole bucket at once, i.e. one float32 tensor per parameter
  (4 bytes per parameter element at peak), where the reference holds one parameter's denom at a
  time.
implementation="fused": one `torch._fused_adamw_` call per bucket (torch's fused kernel, CPU and
  CUDA), which decays first and folds the bias corrections differently:
      p <- p - lr' wd' p;  m <- lerp(m, g, 1-beta1);  v <- beta2 v + (1-beta2) g^2
      p <- p - lr'/bc1 * m / (sqrt(v)/sqrt(bc2) + eps')          bc_i = 1 - beta_i^t
  With lr' = lr (1 - lr wd), wd' = wd / (1 - lr wd) and eps' = eps / sqrt(bc2) this is exactly the
  CS336 update (p - alpha_t m/(sqrt(v)+eps)) (1 - lr wd), alpha_t = lr sqrt(bc2)/bc1, up to float32
  rounding. No temporaries beyond one scalar step tensor per bucket; its FLOPs happen inside one
  aten op, invisible to a dispatch-level counter. Buckets with lr*wd >= 1 fall back to foreach.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from model.optim import AdamW

IMPLEMENTATIONS = ("foreach", "fused")


class FastAdamW(AdamW):
    """AdamW (same update, hyperparameters and state as `model.optim.AdamW`) over parameter lists.

    `implementation`: "foreach" (torch._foreach_* ops) or "fused" (torch._fused_adamw_).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, *, implementation: str = "foreach") -> None:
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {', '.join(IMPLEMENTATIONS)}; "
                             f"got {implementation!r}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.implementation = implementation

    def _step_group(self, group: dict) -> None:
        """Update one group bucket by bucket (same device, dtype and step count)."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        for key, (params, grads, ms, vs) in self._buckets(group).items():
            if self.implementation == "fused" and lr * wd < 1:
                _fused(params, grads, ms, vs, key[2], lr, beta1, beta2, eps, wd)
            else:
                _foreach(params, grads, ms, vs, key[2], lr, beta1, beta2, eps, wd)

    def _buckets(self, group: dict) -> dict[tuple, tuple[list, list, list, list]]:
        """Advance each parameter's step; bucket (p, g, m, v) by (device, dtype, new step) and,
        for sharded parameters (DTensors, model/parallelize.py), by mesh and placements: torch's
        multi-tensor ops take one kind of tensor per call."""
        buckets: dict[tuple, tuple[list, list, list, list]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            t = self._advance(p)
            state = self.state[p]
            sharding = (getattr(p, "device_mesh", None), tuple(getattr(p, "placements", ())))
            lists = buckets.setdefault((p.device, p.dtype, t, *sharding), ([], [], [], []))
            for seq, item in zip(lists, (p, p.grad, state["exp_avg"], state["exp_avg_sq"])):
                seq.append(item)
        return buckets


def _foreach(params, grads, ms, vs, t: int, lr: float, beta1: float, beta2: float, eps: float,
             wd: float) -> None:
    torch._foreach_mul_(ms, beta1)
    torch._foreach_add_(ms, grads, alpha=1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    alpha_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    denom = torch._foreach_sqrt(vs)  # one temporary per parameter, all alive together
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, ms, denom, value=-alpha_t)
    del denom
    torch._foreach_add_(params, params, alpha=-lr * wd)


def _fused(params, grads, ms, vs, t: int, lr: float, beta1: float, beta2: float, eps: float,
           wd: float) -> None:
    keep = 1.0 - lr * wd  # > 0: the caller falls back to foreach otherwise
    step = torch.full((), float(t), dtype=torch.float32, device=params[0].device)
    torch._fused_adamw_(params, grads, ms, vs, [], [step] * len(params), lr=lr * keep,
                        beta1=beta1, beta2=beta2, weight_decay=wd / keep,
                        eps=eps / math.sqrt(1 - beta2**t), amsgrad=False, maximize=False)
