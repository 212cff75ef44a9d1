"""Communication of one training step under a parallel layout: every collective, its bytes, how
many per step, and its time on a link by the ring formulas.

Conventions:
  - `bytes` S of a collective is the whole buffer each rank hands to it: an all-reduce's tensor, an
    all-gather's output (all ranks' shards), a reduce-scatter's input. Per call, a rank sends (and
    receives) 2(n-1)/n * S for an all-reduce and (n-1)/n * S for an all-gather or a reduce-scatter
    over n ranks (ring algorithms); time = that / bw, bw = the link's bandwidth per direction.
  - Overlap: none assumed. The step time is compute + communication (an upper bound); the fully
    overlapped bound max(compute, communication) is given beside it.
  - What is counted is the steady state of what torch issues in one step (forward, backward,
    optimizer step; validation/distributed.py counts the same calls at dispatch):
      DDP (torch 2.13, default bucket_cap_mb): gradients all-reduced in buckets filled in the order
        the gradients become ready (the reverse of their first use in the forward), a bucket closing
        once it holds >= its cap: 1 MiB for the first, 25 MiB after. (The first step all-reduces
        one bucket of everything; before the second forward DDP rebuilds the buckets, broadcasting
        their layout once: two int32 broadcasts.)
      FSDP2 (zero2 / zero3), groups per fully_shard call (each block; the root: embedding, final
        norm, LM head): one all-gather of each group's padded shards in the forward; zero3 one more
        in the backward; one reduce-scatter of each group's padded gradients.
      Tensor parallelism: per block, in the forward one all-reduce of the attention output and one
        of the FFN output, b*T*d elements of the compute dtype (bfloat16 under autocast: 2 bytes);
        in the backward one of the gradient at the attention input and one at the FFN input, b*T*d
        float32 elements whatever the dtype (the gradient reaches the replicated input through
        autocast's cast back to the float32 residual stream; measured, tests/model).
      ZeRO-1 (accounted only): a reduce-scatter of the gradients and an all-gather of the updated
        parameters (the ZeRO paper's stage 1: the volume of DDP's all-reduce).
  - Not counted, named and sized from counts at dispatch (2 gloo ranks, V=37 d=16 L=2 tiny config):
    model.train's all-reduce of the logged loss (4 bytes) and, for sharded layouts, of the squared
    gradient norm (4 bytes) each step; once, DDP's construction (an all-gather of 16 bytes and a
    broadcast of 592 checking shapes, then rank 0's parameters and buffers broadcast: 4P + the
    RoPE tables, 22,720 bytes there), its first step (one all-reduce of all 4P gradient bytes) and
    its bucket rebuild before the second forward (two int32 broadcasts: (tensors + 1) * 4 and 4
    bytes); DTensor's set-up of tensor parallelism (a scatter of each split weight from rank 0,
    S = the whole weight); FSDP2's set-up issues none (each rank keeps its chunk of its own copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from accounting.config import ModelConfig
from accounting.conventions import DTYPE_BYTES
from accounting.hardware import Link
from accounting.layout import Layout
from accounting.parallel import (
    ParamTensor, fsdp_groups, gathered_group_bytes, layout_values, parameter_tensors,
)
from accounting.rows import evaluate
from accounting.symbols import L, T, b, d

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")
_RING = {"all_reduce": 2, "all_gather": 1, "reduce_scatter": 1}
DDP_FIRST_BUCKET_BYTES = 1024 * 1024
DDP_BUCKET_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Collective:
    """`count` calls per step of `collective` over `ranks` ranks of mesh dimension `group` ("dp" or
    "tp"), each of `bytes` S (formula `formula`), in `phase` ("forward" | "backward")."""

    collective: str
    name: str
    phase: str
    group: str
    ranks: int
    bytes: int
    count: int
    formula: sp.Expr

    @property
    def traffic_bytes(self) -> float:
        """Bytes one rank sends per call on a ring: 2(n-1)/n S (all-reduce), (n-1)/n S (others)."""
        return _RING[self.collective] * (self.ranks - 1) / self.ranks * self.bytes

    def seconds(self, link: Link) -> float:
        """Time of all `count` calls at the link's per-direction bandwidth, without overlap."""
        return self.count * self.traffic_bytes / link.bytes_per_s


def ddp_buckets(sizes: list[int], first_cap: int = DDP_FIRST_BUCKET_BYTES,
                cap: int = DDP_BUCKET_BYTES) -> list[list[int]]:
    """Indices of `sizes` (bytes, in gradient-ready order) per bucket: a bucket closes once it
    holds >= its cap (`first_cap` for the first, `cap` after); the rest form the last bucket."""
    buckets: list[list[int]] = []
    current: list[int] = []
    filled, limit = 0, first_cap
    for i, size in enumerate(sizes):
        current.append(i)
        filled += size
        if filled >= limit:
            buckets.append(current)
            current, filled, limit = [], 0, cap
    if current:
        buckets.append(current)
    return buckets


def _ready_order(cfg: ModelConfig) -> list[ParamTensor]:
    """Every parameter tensor (blocks unrolled) in the order its gradient becomes ready."""
    tensors = parameter_tensors(cfg)
    block = [t for t in tensors if t.per_block]
    first = [t for t in tensors if not t.per_block and t.name == "token_embeddings.weight"]
    last = [t for t in tensors if not t.per_block and t not in first]
    return [*reversed(last), *[t for _ in range(cfg.num_layers) for t in reversed(block)],
            *reversed(first)]


def _ddp(cfg: ModelConfig, layout: Layout, subs) -> list[Collective]:
    order = _ready_order(cfg)
    sizes = [4 * evaluate(t.tp_numel, subs) for t in order]
    buckets = ddp_buckets(sizes)
    out = []
    for i, members in enumerate(buckets):
        formula = sp.Add(*(4 * order[j].tp_numel for j in members))
        out.append(Collective("all_reduce", f"gradients, DDP bucket {i + 1} of {len(buckets)}",
                              "backward", "dp", layout.data_parallel, sum(sizes[j] for j in members),
                              1, formula))
    return out


def _fsdp(cfg: ModelConfig, layout: Layout, subs) -> list[Collective]:
    groups = fsdp_groups(cfg)
    out = []
    phases = [("all_gather", "forward")]
    if layout.strategy == "zero3":
        phases.append(("all_gather", "backward"))
    phases.append(("reduce_scatter", "backward"))
    for collective, phase in phases:
        what = "parameters" if collective == "all_gather" else "gradients"
        for group, count in (("block", cfg.num_layers), ("root", 1)):
            if not groups[group]:
                continue
            formula = gathered_group_bytes(groups[group])
            out.append(Collective(collective, f"{what} of the {group} group{'s' if count > 1 else ''}",
                                  phase, "dp", layout.data_parallel, evaluate(formula, subs), count,
                                  formula))
    return out


def _zero1(cfg: ModelConfig, layout: Layout, subs) -> list[Collective]:
    whole = sp.Add(*(4 * t.count * t.tp_numel for t in parameter_tensors(cfg)))
    value = evaluate(whole, subs)
    return [Collective("reduce_scatter", "gradients (ZeRO-1)", "backward", "dp", layout.data_parallel,
                       value, 1, whole),
            Collective("all_gather", "updated parameters (ZeRO-1)", "step", "dp",
                       layout.data_parallel, value, 1, whole)]


def _tensor_parallel(layout: Layout, subs, dtype: str) -> list[Collective]:
    forward = DTYPE_BYTES[dtype] * b * T * d  # the matmuls' outputs, in the compute dtype
    backward = DTYPE_BYTES["float32"] * b * T * d  # the residual stream's gradient, float32
    return [Collective("all_reduce", "block outputs: attention and FFN (partial sums)", "forward",
                       "tp", layout.tensor_parallel, evaluate(forward, subs), 2 * subs[L], forward),
            Collective("all_reduce", "gradients at the attention and FFN inputs", "backward", "tp",
                       layout.tensor_parallel, evaluate(backward, subs), 2 * subs[L], backward)]


def collectives(cfg: ModelConfig, layout: Layout, batch_size: int, context_length: int | None = None,
                dtype: str = "float32") -> list[Collective]:
    """Every collective of one steady-state step of global batch `batch_size` under `layout`."""
    subs = layout_values(cfg, layout, batch_size, context_length)
    out: list[Collective] = []
    if layout.data_parallel > 1:
        if layout.strategy == "ddp":
            out += _ddp(cfg, layout, subs)
        elif layout.strategy == "zero1":
            out += _zero1(cfg, layout, subs)
        else:
            out += _fsdp(cfg, layout, subs)
    if layout.tensor_parallel > 1:
        out += _tensor_parallel(layout, subs, dtype)
    return out


@dataclass(frozen=True)
class StepTime:
    """Seconds of one step on each GPU: `compute` (its FLOPs at peak x MFU), `communication` (every
    collective, ring formulas), `no_overlap` = their sum (the stated assumption) and `overlapped` =
    their max (the bound with perfect overlap)."""

    compute: float
    communication: float

    @property
    def no_overlap(self) -> float:
        return self.compute + self.communication

    @property
    def overlapped(self) -> float:
        return max(self.compute, self.communication)


def step_time(calls: list[Collective], per_gpu_flops: int, peak_flops_per_s: float, mfu: float,
              link: Link) -> StepTime:
    return StepTime(per_gpu_flops / (peak_flops_per_s * mfu), sum(c.seconds(link) for c in calls))
