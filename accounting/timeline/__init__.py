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
  weights            the float32 parameters (a tied matrix once; biases, norms' gains and biases,
                     a learned position table (context_length, d) included)
  buffers            RoPE's cos and sin tables, (context_length, d_k/2) float32 each
  batch              the token ids and targets, (B, T) int64 each (autograd saves both; they are
                     counted here, not in activations)
  weights_bf16_copy  autocast only: the bf16 copy each Linear makes of its weight per call (only
                     the matmul weights, the LM head included, tied or not; the embedding is not
                     cast), alive from the cast to that Linear's backward; and of its bias, which
                     dies with the add
  gradients          the parameters' .grad, from their first backward contribution to zero_grad
  optimizer_state    AdamW's m and v, float32
  activations        what autograd holds for backward (saved tensors), besides the two above
                     (dropout's bool keep masks; the math sdpa path's float32 noise included)
  transients         everything else that is alive: call outputs not yet consumed or saved (the
                     logits, the norms' outputs under autocast), gradients of activations,
                     autograd's sum of two gradients of one tensor, dropout's float32 draws,
                     clipping's squares, AdamW's sqrt(v), the loss. A transient is, by this
                     definition, any live tensor no other category claims.

Not in the bytes: allocator rounding and caching (CUDA rounds every block to 512 bytes and keeps
freed segments), the CUDA context, cuBLAS workspaces, and workspace a kernel allocates inside one
call (torch's fused attention and fused AdamW) which a dispatch-level tracker cannot see.
validation.memtrack measures the timeline with torch's MemTracker and names each difference.

T = 1 (a one-token step) is not modelled: some head-split views then need no copy.

attention="sdpa" runs one of two programs (`sdpa_backend`): "fused", torch's flash kernel as it
runs on CPU (q, k, v, the output and the logsumexp saved; k and v at h_kv heads), the default; with
dropout that is the kernel CUDA runs, whose dropout happens inside (the RNG seed and offset it also
saves are not counted); "math", torch's decomposition, which runs on the meta device and, because
torch's CPU flash kernel has no dropout, on CPU with dropout: float32 whatever the dtype, its
(B,h,T,T) weights, float32 noise and dropped weights saved. validation and the trainer's memory
guard pass the backend that runs.

Exactness: written op by op from the model's code and checked against MemTracker on CPU (and the
math sdpa path on the meta device) at every event, for every variant of the model: norm rmsnorm |
layernorm | none, pre or post; positions rope | learned | none; ffn swiglu | silu | gelu; bias none
| qkv | attention | all; dropout; grouped-query attention (h_kv < h); tied embeddings; attention
naive | sdpa (either backend); in float32 and autocast bf16, with the reference, foreach and fused
AdamW (tests/accounting/test_timeline.py). Activation checkpointing: the backward is replayed
call by call (the recompute starts at the block's first backward node that uses a saved tensor,
after the ones that do not: the residual's cast, the second dropout's division, a bias's
gradient; it stops at the block's last saved tensor; a recomputed tensor dies inside its last
node, before that node's reductions; the checkpoint keeps the block's input until the block's
last node that saved a tensor is released); the checkpointed forward's events inside a block are
an upper bound (torch frees a block's tensors at their last use, the timeline at the block's
end).

Public API: memory_timeline(cfg, batch_size, context_length=None, dtype="float32",
optimizer="reference", checkpointing=False, sdpa_backend="fused", gradient_buckets=False)
-> Timeline (.events, .peak, .peak_bytes,
.phase_peak(phase), .phase_end(phase), .formula(event, category=None)); TimelineEvent (.index,
.name, .phase, .boundary, .bytes {category: int}, .total); timeline_peak_bytes(...);
largest_batch(cfg, budget, ...) -> Bound; CATEGORIES, PHASES, OPTIMIZERS, TIMELINE_DTYPES,
SDPA_BACKENDS. gradient_buckets=True: one DDP rank's step (its gradients in DDP's buckets for the
whole step; accounting.timeline.core).
"""

from accounting.timeline.core import (
    SDPA_BACKENDS, TIMELINE_DTYPES, Bound, Timeline, TimelineEvent, largest_batch, memory_timeline,
    timeline_peak_bytes, to_sympy,
)
from accounting.timeline.ledger import CATEGORIES, PHASES
from accounting.timeline.step import OPTIMIZERS

__all__ = ["CATEGORIES", "PHASES", "OPTIMIZERS", "SDPA_BACKENDS", "TIMELINE_DTYPES", "Bound", "Timeline",
           "TimelineEvent", "largest_batch", "memory_timeline", "timeline_peak_bytes", "to_sympy"]
