"""AdamW (model/optim.py): state bytes and step FLOPs, per parameter element.

The step runs exactly, per parameter p with gradient g (alpha_t, lr, wd are Python floats):
    m.mul_(beta1).add_(g, alpha=1-beta1)
    v.mul_(beta2).addcmul_(g, g, value=1-beta2)
    denom = v.sqrt().add_(eps)
    p.addcdiv_(m, denom, value=-alpha_t)
    p.add_(p, alpha=-lr*wd)
State: exp_avg (m) and exp_avg_sq (v), same shape and dtype as p, and a Python-int step (no tensor
bytes). FLOPs per element follow accounting.conventions.ELEMENTWISE_FLOPS, op by op (`ADAMW_OPS`).
"""

from __future__ import annotations

from accounting.config import ModelConfig
from accounting.conventions import DTYPE_BYTES, elementwise_cost
from accounting.parameters import total_parameters

ADAMW_OPS: tuple[tuple[str, str, float], ...] = (
    ("m.mul_(beta1)", "aten.mul", 1),
    ("m.add_(g, alpha=1-beta1)", "aten.add", 0.1),        # alpha != 1: scale + add
    ("v.mul_(beta2)", "aten.mul", 1),
    ("v.addcmul_(g, g, value=1-beta2)", "aten.addcmul", 1),
    ("denom = v.sqrt()", "aten.sqrt", 1),
    ("denom.add_(eps)", "aten.add", 1),
    ("p.addcdiv_(m, denom, value=-alpha_t)", "aten.addcdiv", 1),
    ("p.add_(p, alpha=-lr*wd)", "aten.add", 0.1),           # alpha != 1
)
"""(source line, aten op, a representative alpha) for each tensor op of one AdamW step."""

ADAMW_STATE_TENSORS_PER_PARAM = 2  # exp_avg, exp_avg_sq


def adamw_flops_per_element() -> int:
    """FLOPs per parameter element of one AdamW step (14 under the default cost table)."""
    return sum(elementwise_cost(op, alpha=alpha) for _, op, alpha in ADAMW_OPS)


def adamw_step_flops(cfg: ModelConfig) -> int:
    """FLOPs of one AdamW step over all parameters (tied matrix once)."""
    return adamw_flops_per_element() * total_parameters(cfg)


def adamw_state_bytes(cfg: ModelConfig, dtype: str = "float32") -> int:
    """Bytes of exp_avg + exp_avg_sq for every parameter, each in `dtype` (the parameters' dtype;
    float32 under bf16 mixed precision)."""
    return ADAMW_STATE_TENSORS_PER_PARAM * DTYPE_BYTES[dtype] * total_parameters(cfg)
