"""The report's `parallelism` section: per-GPU memory, communication and time of one layout.

Built by `parallel_section` (accounting.report.build_report calls it when a layout is given);
rendered by accounting.render_json and accounting.tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.communication import Collective, StepTime, collectives, step_time
from accounting.config import ModelConfig
from accounting.hardware import DEFAULT_LINK, Link, get_link
from accounting.layout import Layout
from accounting.parallel import (
    PerRankBatchFit, ddp_timeline_rows, largest_per_rank_batch, per_rank_memory_rows, per_rank_peak_bytes,
    per_rank_train_step_flops, timeline_applies,
)
from accounting.rows import Row

CONVENTIONS = (
    "per-rank bytes are rank 0's (the rank that holds the most under FSDP's uneven chunks); "
    "float32 master weights, gradients and AdamW state",
    "FSDP2 groups: each Transformer block, and the root (embedding, final norm, LM head); each "
    "parameter's dim 0 padded to a multiple of the data-parallel ranks",
    "tensor parallelism splits the attention and FFN projections (Megatron); the embedding, the "
    "norms and the LM head are replicated",
    "gathered parameters and unsharded gradients (zero2 / zero3) are modeled transients, not "
    "measured; activations are those alive at the start of the backward; the peak is their sum",
    "communication: S = the buffer each rank hands to the collective; ring time 2(n-1)/n S / bw "
    "(all-reduce), (n-1)/n S / bw (all-gather, reduce-scatter); bw = the link's bandwidth per "
    "direction; one link for every collective",
    "overlap: none assumed (step time = compute + communication, an upper bound); the fully "
    "overlapped bound max(compute, communication) is given beside it",
)
DDP_NOTE = ("DDP (one tensor-parallel rank): the rows are the peak event of the per-rank step's memory "
            "timeline with the gradients held at full size for the whole step (DDP's buckets, "
            "gradient_as_bucket_view), measured equal with MemTracker on gloo ranks; their sum is "
            "the peak")
ZERO1_NOTE = ("ZeRO-1 is accounted only (no trainer here runs it): AdamW state partitioned into "
              "ceil(P / N_dp) elements per rank; parameters and gradients whole; gradients "
              "reduce-scattered and updated parameters all-gathered")


@dataclass(frozen=True)
class ParallelSection:
    """`layout` at a global batch split into `per_rank_batch` sequences per data-parallel rank."""

    layout: Layout
    link: Link
    per_rank_batch: int
    per_rank: list[Row]                    # rank 0's bytes by category (activations last)
    peak_bytes: int
    budget_bytes: int
    largest: PerRankBatchFit | None        # None: not even b = 1 fits
    communication: list[Collective]
    per_gpu_flops: int                     # forward + backward matmul FLOPs of one GPU
    time: StepTime                         # seconds per step on each GPU
    steps: int
    notes: tuple[str, ...]

    @property
    def communication_bytes(self) -> float:
        """Bytes one rank sends per step (ring), all collectives."""
        return sum(c.count * c.traffic_bytes for c in self.communication)

    @property
    def training_seconds(self) -> float:
        """`steps` steps without overlap (the stated assumption)."""
        return self.steps * self.time.no_overlap

    @property
    def training_seconds_overlapped(self) -> float:
        return self.steps * self.time.overlapped


def parallel_section(cfg: ModelConfig, layout: Layout, *, batch_size: int, context_length: int,
                     dtype: str, peak_flops_per_s: float, mfu: float, budget_bytes: int,
                     steps: int, link: str | Link | None = None, optimizer: str = "reference",
                     checkpointing: bool = False) -> ParallelSection:
    """Everything the report says about `layout` for a step of global batch `batch_size`.
    `optimizer` and `checkpointing` (the training path) shape DDP's timeline; the other layouts'
    sums hold the reference AdamW without checkpointing."""
    link = link if isinstance(link, Link) else get_link(link or DEFAULT_LINK)
    if timeline_applies(layout):
        rows, peak = ddp_timeline_rows(cfg, layout, batch_size, context_length, dtype, optimizer,
                                       checkpointing)
    else:
        rows = per_rank_memory_rows(cfg, layout, batch_size, context_length, dtype)
        peak = per_rank_peak_bytes(rows, next(r.value for r in rows if r.name == "activations"))
    calls = collectives(cfg, layout, batch_size, context_length, dtype)
    flops = per_rank_train_step_flops(cfg, layout, batch_size, context_length)
    notes = CONVENTIONS + ((ZERO1_NOTE,) if layout.strategy == "zero1" else ()) + (
        (DDP_NOTE,) if timeline_applies(layout) else ())
    return ParallelSection(
        layout, link, layout.per_rank_batch(batch_size), rows, peak,
        budget_bytes, largest_per_rank_batch(cfg, layout, budget_bytes, context_length, dtype,
                                             optimizer, checkpointing), calls,
        flops, step_time(calls, flops, peak_flops_per_s, mfu, link), steps, notes)
