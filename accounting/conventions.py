"""How things are counted: one object, as data, that every result carries and the report prints.

FLOPs
  - A matmul A (m x n) @ B (n x p) costs 2*m*n*p FLOPs (one multiply + one add per multiply-
    accumulate), as torch.utils.flop_counter.FlopCounterMode counts it.
  - Causal attention is counted dense: masking does not reduce the (T x T) score or weighted-value
    matmuls (the kernels compute them in full; FlopCounterMode counts them in full).
  - Backward of a matmul Y = X W costs 2x its forward: one matmul of the same size for dL/dX and
    one for dL/dW. torch's fused attention kernels (sdpa flash / memory-efficient on CUDA) also
    recompute the scores in backward (5 matmuls of the forward core's size instead of 4, as
    FlopCounterMode's sdpa_backward_flop_count counts): that recompute is reported apart, not in
    the training-step count.
  - Non-matmul (elementwise / reduction) FLOPs are a separate, optional term, costed per element with
    `ELEMENTWISE_FLOPS` (below). The validation's TorchDispatchMode counter imports this table.

Activations ("what memory a training step's forward leaves saved for backward")
  - "textbook": the CS336 list of intermediate tensors, each counted once in elements times bytes per
    element of the run dtype (see accounting.activations).
  - "implementation": exactly the tensors the real model (`model/`) plus its loss save for backward,
    deduplicated by storage, excluding parameters, with their real dtypes (RMSNorm internals in
    float32, token ids int64, causal mask bool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DTYPE_BYTES: Mapping[str, int] = MappingProxyType({
    "float64": 8, "float32": 4, "bfloat16": 2, "float16": 2,
    "int64": 8, "int32": 4, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1,
})
"""Bytes per element of each dtype (torch's element sizes)."""

TRAINING_DTYPES: tuple[str, ...] = ("float32", "bfloat16")
"""Run dtypes of a training step (report, CLI, memory, timeline): float32, or "bfloat16" = what the
trainer's --dtype bfloat16 runs: torch.autocast(bfloat16) over float32 master weights, gradients and
AdamW state (accounting.timeline)."""

OPTIMIZERS: tuple[str, ...] = ("reference", "foreach", "fused")
"""The AdamW implementations (model.optim.AdamW; model.fast_optim.FastAdamW's foreach and fused):
one update, three op sequences with different temporaries (accounting.timeline)."""

ACTIVATION_DTYPES: tuple[str, ...] = ("float32", "bfloat16", "bfloat16-pure")
"""Dtypes the activation formulas take: the two training dtypes, and "bfloat16-pure", a model whose
parameters and activations are all bf16 (no autocast, no master weights; not a training dtype of
the trainer, but a model validation builds and measures: `validation.measure(dtype=...)`)."""


def element_bytes(dtype: str) -> int:
    """Bytes per element of a run dtype's matmul outputs (4 for float32, 2 for either bf16)."""
    return 4 if dtype == "float32" else 2

ELEMENTWISE_FLOPS: Mapping[str, int] = MappingProxyType({
    # Pointwise arithmetic: FLOPs per OUTPUT element. Keys are aten overload-packet names with any
    # in-place suffix dropped ("aten.add_" counts as "aten.add").
    "aten.add": 1, "aten.sub": 1, "aten.mul": 1, "aten.div": 1, "aten.neg": 1,
    "aten.rsub": 1, "aten.reciprocal": 1, "aten.pow": 1, "aten.square": 1,
    # Elementary functions count 1 each (exp, log, roots, sigmoid, trig).
    "aten.exp": 1, "aten.log": 1, "aten.sqrt": 1, "aten.rsqrt": 1, "aten.sigmoid": 1,
    "aten.tanh": 1, "aten.sin": 1, "aten.cos": 1,
    # Fused pointwise ops: count the arithmetic they fuse.
    "aten.silu": 2,       # x * sigmoid(x)
    "aten.addcmul": 3,    # out = a + value * (b * c)
    "aten.addcdiv": 3,    # out = a + value * (b / c)
    "aten.lerp": 3,       # a + w * (b - a)
    # add/sub with alpha != 1 scale the second operand first: 2 per output element.
    "add with alpha != 1": 2,
    "sub with alpha != 1": 2,
    # Reductions: FLOPs per INPUT element (one add / compare per element reduced).
    "aten.sum": 1, "aten.mean": 1, "aten.amax": 1, "aten.max": 1, "aten.logsumexp": 2,
})
"""Per-element FLOP cost of non-matmul aten ops (pointwise: per output element; reductions: per
input element). Ops absent from the table (copies, casts, views, where/masked_fill, gathers, index)
cost 0. Matmuls (mm, bmm, addmm, sdpa) are counted by the 2mnp rule, not here."""

_ALPHA_KEYS = {"aten.add": "add with alpha != 1", "aten.sub": "sub with alpha != 1"}


def elementwise_cost(op: str, *, alpha: float = 1) -> int:
    """FLOPs per element for aten op `op` ("aten.add_", "aten.add.Tensor" or "aten.add" all work).

    `alpha` is the add/sub `alpha` keyword: alpha != 1 costs the scaling too.
    """
    packet = ".".join(op.split(".")[:2]).rstrip("_")
    if packet in _ALPHA_KEYS and alpha != 1:
        return ELEMENTWISE_FLOPS[_ALPHA_KEYS[packet]]
    return ELEMENTWISE_FLOPS.get(packet, 0)


REDUCTION_OPS: frozenset[str] = frozenset(
    {"aten.sum", "aten.mean", "aten.amax", "aten.max", "aten.logsumexp"})
"""Ops costed per INPUT element (every other op in ELEMENTWISE_FLOPS: per OUTPUT element)."""


def op_flops(op: str, *, out_numel: int, in_numel: int, alpha: float = 1) -> int:
    """Non-matmul FLOPs of one aten call: cost per element x (input numel for reductions, output
    numel otherwise). `in_numel` is the numel of the op's first tensor argument. The validation's
    TorchDispatchMode counter calls this, so both sides count alike by construction."""
    packet = ".".join(op.split(".")[:2]).rstrip("_")
    return elementwise_cost(op, alpha=alpha) * (in_numel if packet in REDUCTION_OPS else out_numel)


ACTIVATION_CONVENTIONS: tuple[str, ...] = ("implementation", "textbook")


@dataclass(frozen=True)
class Conventions:
    """The counting rules a result was computed under (printed by every report)."""

    matmul_flops: str = "2*m*n*p FLOPs per matmul A(m x n) @ B(n x p) (multiply + add per MAC)"
    causal_attention: str = "dense: the causal mask does not reduce QK^T or weights@V FLOPs"
    backward_flops: str = ("2x forward per matmul (dL/dX and dL/dW, each one matmul of the same "
                           "size); a fused (sdpa) kernel's score recompute is reported apart")
    count_nonmatmul: bool = False
    nonmatmul_flops: str = ("separate optional term: aten ops costed by ELEMENTWISE_FLOPS per output "
                            "element (reductions: per input element; transcendentals count 1)")
    activation: str = "implementation"
    activation_meaning: str = ("bytes the forward (+ loss) saves for backward, deduplicated by "
                               "storage, excluding parameters")
    parameters: str = "tied embeddings counted once; RoPE buffers are not parameters"
    non_embedding: str = "non-embedding parameters exclude token_embeddings, keep lm_head (Kaplan)"
    optimizer: str = ("AdamW: exp_avg + exp_avg_sq per parameter element in the parameter dtype; "
                      "step FLOPs per element from the op sequence under ELEMENTWISE_FLOPS")
    memory_units: str = "bytes; GB = 10^9 bytes, GiB = 2^30 bytes"
    memory_peak: str = ("peak = the maximum of one steady-state step's memory timeline (forward, "
                        "loss, backward, clip, AdamW step, zero_grad(set_to_none=True)): live bytes "
                        "after every allocating call, by category (accounting.timeline); "
                        "attention=sdpa as torch's fused kernel (with dropout torch's CPU kernel "
                        "falls back to its math decomposition: accounting.timeline's "
                        "sdpa_backend=\"math\")")
    transient: str = ("a live tensor that is not a weight, buffer, batch, bf16 weight copy, "
                      "gradient, optimizer state or saved activation: call outputs not yet saved or "
                      "consumed, gradients of activations, clipping's and AdamW's temporaries")
    precision: str = ("bfloat16 = torch.autocast(bfloat16) over float32 weights, gradients and AdamW "
                      "state: each Linear keeps a bf16 copy of its weight and of a float32 input "
                      "(and casts its bias to bf16 for the add)")
    elementwise_flops: Mapping[str, int] = field(default_factory=lambda: ELEMENTWISE_FLOPS,
                                                 repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready), the cost table included."""
        out: dict[str, object] = {
            k: v for k, v in self.__dict__.items() if k != "elementwise_flops"
        }
        out["elementwise_flops"] = dict(self.elementwise_flops)
        return out


DEFAULT_CONVENTIONS = Conventions()
