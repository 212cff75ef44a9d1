"""Cross-entropy loss and global gradient clipping (written out, no torch.nn.functional)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood, in nats, over every batch position.

    logits: (..., V) unnormalized scores; targets: (...) int64 class ids. Stable for large logits:
    the row max is subtracted before exponentiating, so log-sum-exp never overflows. The max is
    detached (the loss is shift-invariant, so its gradient through the max is exactly zero) and the
    target logit is picked by indexing, which saves only the indices: autograd keeps exp(shifted)
    (..., V) float32, the sums (...) and the indices, not the logits themselves.
    """
    # Upcast so bf16 logits (autocast) do not lose precision in the sum of exponentials.
    logits = logits.float()
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)  # (..., V); sub saves nothing
    log_norm = shifted.exp().sum(dim=-1).log()  # (...); exp saves its output, log the sums
    flat_targets = targets.reshape(-1)  # (n,)
    rows = torch.arange(flat_targets.numel(), device=targets.device)  # (n,)
    target_logit = shifted.reshape(-1, shifted.shape[-1])[rows, flat_targets]  # (n,)
    return (log_norm.reshape(-1) - target_logit).mean()


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float,
                   eps: float = 1e-6) -> float:
    """Scale all gradients in place so their global L2 norm is at most `max_l2_norm`.

    The norm is taken over the concatenation of every parameter's gradient (parameters without a
    gradient are skipped). When it exceeds the maximum, each gradient is multiplied by
    max_l2_norm / (norm + eps). Returns the norm before clipping, as a Python float.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads))
    total = float(norm)
    if total > max_l2_norm:
        scale = max_l2_norm / (total + eps)
        for g in grads:
            g.mul_(scale)
    return total
