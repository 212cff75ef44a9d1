"""The named reasons a measured number differs from its symbolic counterpart.

Each is a known, explained effect; `reason_for` picks the one that applies to a row from what was
run (device, attention, dtype). A difference no rule explains is reported as UNEXPLAINED (the
tests assert none occurs on meta and CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

SDPA_RECOMPUTE = ("fused sdpa backward recomputes Q K^T (2*B*T^2*d per block); the accounting "
                  "reports it apart (attention_recompute_flops), not in the step")
META_SDPA_MATH = ("sdpa ran as torch's math decomposition (the meta device, or CPU with dropout, "
                  "which torch's CPU kernel lacks): its scaling and softmax are visible at dispatch "
                  "(the accounting counts the fused kernel, whose internal work is not)")
CUDA_SDPA_SAVED = ("CUDA flash / memory-efficient kernels also save RNG seed and offset, and the "
                   "efficient kernel pads logsumexp's T to a multiple of 32")
TEXTBOOK = ("the textbook list counts one tensor per CS336 intermediate in the run dtype; torch "
            "saves float32 RMSNorm internals and loss tensors, int64 ids, a bool mask, and shares "
            "storages between ops")
NO_SYMBOLIC = "no symbolic counterpart (the accounting counts forward non-matmul work only)"
ALLOCATOR_ROUNDING = "allocator rounding: every CUDA block is a multiple of 512 bytes"
CUDA_CONTEXT = "CUDA context (driver, kernels' code): outside torch's allocator, measured once"
CUBLAS_WORKSPACE = "cuBLAS workspace, allocated on the first matmul and kept"
CHECKPOINT_FORWARD = ("activation checkpointing: the timeline keeps a checkpointed block's tensors to "
                      "the block's end; torch frees each at its last use (the timeline's forward "
                      "is an upper bound by the difference shown)")
MEMTRACKER_ROUNDING = "MemTracker on CUDA rounds every storage up to the caching allocator's 512-byte block"
CUDA_RESIDUALS = ("max_memory_allocated beside the timeline's peak plus the measured residuals (cuBLAS "
                  "workspace, 512-byte rounding); what remains is workspace inside kernels (fused "
                  "attention, fused AdamW) and the allocator's block splitting")
UNEXPLAINED = "unexplained difference"


@dataclass(frozen=True)
class RunContext:
    """What ran: device type ("meta" | "cpu" | "cuda"), the attention variant, the dtype, the
    AdamW implementation, whether blocks were checkpointed, whether dropout was on."""

    device: str
    attention: str
    dtype: str = "float32"
    optimizer: str = "reference"
    checkpointing: bool = False
    dropout: bool = False

    @property
    def fake(self) -> bool:
        """Autocast on "meta" runs on fake CPU tensors (validation.run.placement)."""
        return self.device == "meta" and self.dtype == "bfloat16"

    @property
    def sdpa_backend(self) -> str:
        """accounting's sdpa_backend for the saved tensors: "math" on meta (not its fake CPU
        tensors) and on CPU with dropout (torch's CPU flash kernel has none, so torch falls back to
        the math path), else "fused"."""
        cpu = self.device == "cpu" or self.fake
        math_path = (self.device == "meta" and not self.fake) or (cpu and self.dropout)
        return "math" if math_path else "fused"

    @property
    def fused_sdpa(self) -> bool:
        """A fused sdpa kernel ran (CPU without dropout, CUDA)."""
        return self.attention == "sdpa" and self.sdpa_backend == "fused"


def reason_for(quantity: str, component: str, ctx: RunContext, symbolic, measured) -> str:
    """The named reason for a difference in (quantity, component); "" when the values agree or
    either side is missing (such rows carry their own note)."""
    if symbolic is None or measured is None or symbolic == measured:
        return ""
    if quantity == "backward matmul FLOPs" and ctx.fused_sdpa and component in ("layers.attn.core", "total"):
        return SDPA_RECOMPUTE
    if (quantity == "non-matmul forward FLOPs" and ctx.sdpa_backend == "math"
            and ctx.attention == "sdpa" and component in ("layers.attn", "total")):
        return META_SDPA_MATH
    if quantity == "memory timeline":
        return timeline_reason(component, ctx)
    if quantity == "activations (textbook)":
        return TEXTBOOK
    if quantity.startswith("activations") and ctx.device == "cuda" and ctx.attention == "sdpa":
        return CUDA_SDPA_SAVED
    if quantity.startswith("CUDA memory"):
        return cuda_memory_reason(component, ctx)
    return UNEXPLAINED


def timeline_reason(component: str, ctx: RunContext) -> str:
    """Reasons MemTracker's live bytes differ from accounting.timeline's, per row."""
    parts = []
    if ctx.checkpointing and component in ("forward peak", "peak"):
        parts.append(CHECKPOINT_FORWARD)
    if ctx.device == "cuda":
        parts.append(MEMTRACKER_ROUNDING)
        if ctx.attention == "sdpa":
            parts.append(CUDA_SDPA_SAVED)
    return "; ".join(parts) or UNEXPLAINED


def cuda_memory_reason(component: str, ctx: RunContext) -> str:
    """Reasons the allocator's numbers differ from the accounting's, per measured phase."""
    if component in ("after weights", "gradients", "optimizer state"):
        return ALLOCATOR_ROUNDING
    if component == "activations":
        parts = [ALLOCATOR_ROUNDING]
        if ctx.attention == "sdpa":
            parts.append(CUDA_SDPA_SAVED)
        return "; ".join(parts)
    if component in ("peak", "peak, timeline + residuals"):
        return CUDA_RESIDUALS
    if component == "reserved":
        return "the caching allocator reserves whole segments (2 MiB / 20 MiB) and keeps freed blocks"
    return UNEXPLAINED
