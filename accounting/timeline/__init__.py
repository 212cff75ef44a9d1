"""The memory timeline of one steady-state training step: live bytes, by category, at every event.

The step is the loop of model/trainer.py (and of validation's measured step):

    logits = model(x)                       # under torch.autocast(bfloat16) for dtype="bfloat16"
    loss = cross_entropy(logits, y); del logits
    loss.backward()
    clip_gradients(model.parameters(), max_norm)
    optimizer.step()                        # AdamW: reference, foreach or fused
    optimizer.zero_grad(set_to_none=True)

with x, y the batch, two (B, T) int64 tensors, and the AdamW state already created (steady state:
no gradients exist when the forward starts; the previous step's zero_grad freed them).

Events. One after every aten call that allocates (the instants where torch's allocator, and
MemTracker, take their peak), named for what the call made ("layers[L-1].attn: exp", "cross_entropy
backward: index_put"), in phases "forward", "loss", "backward", "clip", "optimizer", "zero_grad";
plus one boundary event at the end of each phase (and "start"). Clipping and AdamW have one event
per parameter (that parameter's temporary alive); the blocks between the first and the last are one
aggregated event each way (their maxima are never above the first's or the last's: the bytes at a
block's call are linear in the block index); with activation checkpointing a block's recompute and
backward carry a prime ("layers[0]'.ffn backward: ..."). The peak is the maximum over events.

Categories (CATEGORIES), what a live byte is:
  weights            the float32 parameters (a tied matrix once)
  buffers            RoPE's cos and sin tables, (context_length, d_k/2) float32 each
  batch              the token ids and targets, (B, T) int64 each (autograd saves both; they are
                     counted here, not in activations)
  weights_bf16_copy  autocast only: the bf16 copy each Linear makes of its weight per call (only
                     the matmul weights, the LM head included, tied or not; the embedding is not
                     cast), alive from the cast to that Linear's backward
  gradients          the parameters' .grad, from their first backward contribution to zero_grad
  optimizer_state    AdamW's m and v, float32
  activations        what autograd holds for backward (saved tensors), besides the two above
  transients         everything else that is alive: call outputs not yet consumed or saved (the
                     logits, RMSNorm's outputs under autocast), gradients of activations,
                     autograd's sum of two gradients of one tensor, clipping's squares, AdamW's
                     sqrt(v), the loss. A transient is, by this definition, any live tensor no
                     other category claims.

Not in the bytes: allocator rounding and caching (CUDA rounds every block to 512 bytes and keeps
freed segments), the CUDA context, cuBLAS workspaces, and workspace a kernel allocates inside one
call (torch's fused attention and fused AdamW) which a dispatch-level tracker cannot see.
validation.memtrack measures the timeline with torch's MemTracker and names each difference.

T = 1 (a one-token step) is not modelled: some head-split views then need no copy.

Exactness: written op by op from the model's code and checked against MemTracker on CPU at every
event, for every variant of the model, in float32 and autocast bf16, with the reference, foreach
and fused AdamW (tests/accounting/test_timeline.py). Activation checkpointing: the backward (the
early-stopping recompute of each block, then its backward) is replayed exactly; the checkpointed
forward's events inside a block are an upper bound (torch frees a block's tensors at their last
use, the timeline at the block's end).

Public API: memory_timeline(cfg, batch_size, context_length=None, dtype="float32",
optimizer="reference", checkpointing=False) -> Timeline (.events, .peak, .peak_bytes,
.phase_peak(phase), .phase_end(phase), .formula(event, category=None)); TimelineEvent (.index,
.name, .phase, .boundary, .bytes {category: int}, .total); timeline_peak_bytes(...);
largest_batch(cfg, budget, ...) -> Bound; CATEGORIES, PHASES, OPTIMIZERS, TIMELINE_DTYPES.
"""

from accounting.timeline.core import (
    TIMELINE_DTYPES, Bound, Timeline, TimelineEvent, largest_batch, memory_timeline, timeline_peak_bytes,
    to_sympy,
)
from accounting.timeline.ledger import CATEGORIES, PHASES
from accounting.timeline.step import OPTIMIZERS

__all__ = ["CATEGORIES", "PHASES", "OPTIMIZERS", "TIMELINE_DTYPES", "Bound", "Timeline", "TimelineEvent",
           "largest_batch", "memory_timeline", "timeline_peak_bytes", "to_sympy"]
