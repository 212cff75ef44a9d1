"""One instrumented training step of the real model: forward (+ loss), backward, one AdamW step,
with every instrument attached. Returns raw measured numbers (`RawCounts`); validation.compare puts
them beside the accounting.

On the meta device nothing is allocated (shapes only), so GPT-2 XL is measured in seconds; torch
runs sdpa there as its math decomposition (float32 q, k, v and softmax output are saved).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.loss import cross_entropy
from model.optim import AdamW
from model.transformer import TransformerLM
from validation.attribution import Attribution, component_name
from validation.counters import EXTRA_FLOP_FORMULAS, DispatchCounter, saved_bytes_by_component, storage_key

Progress = Callable[[str, float], None]
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class RawCounts:
    """Measured numbers of one step. Dicts map component -> value (FLOPs, bytes or params)."""

    parameters: dict[str, int]
    forward_matmul: dict[str, int]
    backward_matmul: dict[str, int]
    forward_nonmatmul: dict[str, int]
    backward_nonmatmul: dict[str, int]
    saved_bytes: dict[str, int]
    flop_counter_forward: int       # FlopCounterMode's own totals (the reference instrument)
    flop_counter_backward: int
    weight_bytes: int
    gradient_bytes: int
    adamw_state_bytes: int
    adamw_step_flops: int
    adamw_step_matmul_flops: int
    extra: dict[str, float] = field(default_factory=dict)


def parameters_by_component(model: torch.nn.Module) -> dict[str, int]:
    """Parameter elements per component (shared parameters counted once, under their first name)."""
    out: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        out[component_name(name.rsplit(".", 1)[0])] += p.numel()
    return dict(out)


def _unique_nbytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        seen.setdefault(storage_key(t), t.untyped_storage().nbytes())
    return sum(seen.values())


def build(cfg, device: str, dtype: str) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(cfg, device=device, dtype=TORCH_DTYPES[dtype])


def batch(cfg, batch_size: int, context_length: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids and targets, (B, T) int64 each (separate contiguous tensors)."""
    g = None if device == "meta" else torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch_size, context_length), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch_size, context_length), generator=g)
    return x.to(device), y.to(device)


def instrumented_step(model: TransformerLM, x: torch.Tensor, y: torch.Tensor,
                      progress: Progress = lambda phase, done: None) -> RawCounts:
    """Forward + loss, backward and one AdamW step with every instrument attached."""
    params = list(model.parameters())
    attribution = Attribution(model)
    counter = DispatchCounter(attribution)
    flop_counter = FlopCounterMode(display=False, custom_mapping=dict(EXTRA_FLOP_FORMULAS))
    progress("forward", 0.1)
    with attribution.tracking(), flop_counter, counter:
        with saved_bytes_by_component(attribution, params) as saved:
            loss = cross_entropy(model(x), y)
        fc_forward = flop_counter.get_total_flops()
        progress("backward", 0.3)
        counter.phase = "backward"
        loss.backward()
    fc_backward = flop_counter.get_total_flops() - fc_forward
    del loss
    attribution.nodes.clear()
    progress("optimizer step", 0.5)
    optimizer = AdamW(params, lr=1e-3, weight_decay=0.01)
    step_counter = DispatchCounter()
    step_counter.phase = "optimizer"
    with step_counter:
        optimizer.step()
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return RawCounts(
        parameters=parameters_by_component(model),
        forward_matmul=dict(counter.matmul["forward"]),
        backward_matmul=dict(counter.matmul["backward"]),
        forward_nonmatmul=dict(counter.nonmatmul["forward"]),
        backward_nonmatmul=dict(counter.nonmatmul["backward"]),
        saved_bytes=dict(saved),
        flop_counter_forward=int(fc_forward),
        flop_counter_backward=int(fc_backward),
        weight_bytes=_unique_nbytes(params),
        gradient_bytes=_unique_nbytes(p.grad for p in params if p.grad is not None),
        adamw_state_bytes=_unique_nbytes(state),
        adamw_step_flops=sum(step_counter.nonmatmul["optimizer"].values()),
        adamw_step_matmul_flops=sum(step_counter.matmul["optimizer"].values()),
    )
