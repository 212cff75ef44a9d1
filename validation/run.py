"""One instrumented training step of the real model: forward (+ loss), backward, one AdamW step,
with every instrument attached. Returns raw measured numbers (`RawCounts`); validation.compare puts
them beside the accounting.

On the meta device nothing is allocated (shapes only), so GPT-2 XL is measured in seconds; torch
runs sdpa there as its math decomposition (float32 q, k, v and softmax output are saved).

Dtypes (DTYPES): "float32"; "bfloat16", the trainer's mixed precision: a float32 model run under
torch.autocast(bfloat16) (autocast has no meta backend, so on "meta" the run uses fake CPU tensors,
torch's FakeTensorMode: shapes only, autocast's casts and torch's CPU kernels, sdpa included);
"bfloat16-pure", a model whose parameters are bf16 and that runs without autocast.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.loss import cross_entropy
from model.optim import AdamW
from model.transformer import TransformerLM
from validation.attribution import Attribution, component_name
from validation.counters import (
    EXTRA_FLOP_FORMULAS, DispatchCounter, WeightCasts, saved_bytes_by_component, storage_key,
)

Progress = Callable[[str, float], None]
MODEL_DTYPES = {"float32": torch.float32, "bfloat16": torch.float32, "bfloat16-pure": torch.bfloat16}
"""The parameters' dtype of each run dtype (bfloat16 = float32 master weights under autocast)."""
DTYPES = tuple(MODEL_DTYPES)


@dataclass(frozen=True)
class Placement:
    """Where a run's tensors live: `device` ("cpu" for fake tensors), `fake` (FakeTensorMode), and
    the run dtype (`autocast()` opens its autocast region, a no-op unless dtype is "bfloat16")."""

    device: str
    fake: bool
    dtype: str

    def autocast(self):
        if self.dtype != "bfloat16":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def placement(device: str, dtype: str) -> Iterator[Placement]:
    """The run's placement; for autocast on the meta device, a FakeTensorMode with CPU tensors."""
    if torch.device(device).type == "meta" and dtype == "bfloat16":
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode(allow_non_fake_inputs=True):
            yield Placement("cpu", True, dtype)
        return
    yield Placement(device, False, dtype)


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
    weight_copy_bytes: int = 0      # autocast's bf16 copies of parameters that autograd saved
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


def build(cfg, device: str | Placement, dtype: str | None = None,
          checkpointing: bool = False) -> TransformerLM:
    """The model for a placement (or a device and a run dtype)."""
    where = device if isinstance(device, Placement) else Placement(device, False, dtype or "float32")
    torch.manual_seed(0)
    if where.fake:  # shapes only: build on meta (no init, outside the fake mode), then fake CPU
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily():
            model = TransformerLM(cfg, device="meta", dtype=MODEL_DTYPES[where.dtype],
                                  activation_checkpointing=checkpointing)
        model = model.to_empty(device="cpu")
        if cfg.tie_embeddings:  # to_empty gives each module its own tensor: tie them again
            model.lm_head.weight = model.token_embeddings.weight
        return model
    return TransformerLM(cfg, device=where.device, dtype=MODEL_DTYPES[where.dtype],
                         activation_checkpointing=checkpointing)


def batch(cfg, batch_size: int, context_length: int, device: str | Placement
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids and targets, (B, T) int64 each (separate contiguous tensors)."""
    fake = isinstance(device, Placement) and device.fake
    device = device.device if isinstance(device, Placement) else device
    g = None if device == "meta" or fake else torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch_size, context_length), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch_size, context_length), generator=g)
    return x.to(device), y.to(device)


def instrumented_step(model: TransformerLM, x: torch.Tensor, y: torch.Tensor,
                      progress: Progress = lambda phase, done: None,
                      autocast: Callable = contextlib.nullcontext) -> RawCounts:
    """Forward (under `autocast()`) + loss, backward and one AdamW step with every instrument
    attached. The bf16 copies autocast makes of the weights are not activations: their saved
    bytes are `weight_copy_bytes`."""
    params = list(model.parameters())
    attribution = Attribution(model)
    counter = DispatchCounter(attribution)
    flop_counter = FlopCounterMode(display=False, custom_mapping=dict(EXTRA_FLOP_FORMULAS))
    casts, copies = WeightCasts(params), {}
    progress("forward", 0.1)
    with attribution.tracking(), flop_counter, counter, casts:
        with saved_bytes_by_component(attribution, params, casts.keys, copies) as saved:
            with autocast():
                logits = model(x)
            loss = cross_entropy(logits, y)
            del logits
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
        weight_copy_bytes=sum(copies.values()),
    )
