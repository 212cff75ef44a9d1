"""Autoregressive sampling from a TransformerLM: temperature, top-p (nucleus), EOS, context crop."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from accounting.errors import UserError


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """Sampling distribution (V,) from last-position logits (V,).

    temperature > 0 divides the logits before the softmax; top_p < 1 keeps the smallest set of
    most-probable tokens whose total probability reaches top_p, zeroes the rest and renormalizes.
    temperature == 0 is greedy: a one-hot vector on the argmax.
    """
    if not 0 <= temperature < float("inf"):  # also refuses NaN
        raise UserError(f"temperature must be a finite number >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
    scaled = logits / temperature
    probs = (scaled - scaled.max()).exp()
    probs = probs / probs.sum()
    if top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(0) - sorted_probs  # mass of strictly more probable tokens
        keep_sorted = before < top_p  # token i is needed while the mass before it is short of p
        keep = torch.zeros_like(probs, dtype=torch.bool)
        keep[order[keep_sorted]] = True
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    return probs


@torch.no_grad()
def generate(model: torch.nn.Module, prompt_ids: Sequence[int], max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
             generator: torch.Generator | None = None) -> list[int]:
    """The new token ids (prompt excluded) sampled one at a time from `model`.

    The model sees at most its last `model.config.context_length` tokens. Generation stops after
    `max_new_tokens` tokens or right after emitting `eos_id` (which is included in the result).
    """
    if max_new_tokens < 0:
        raise UserError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if len(prompt_ids) == 0:
        raise UserError("the prompt must hold at least one token")
    context_length = model.config.context_length
    device = next(model.parameters()).device
    tokens = list(int(t) for t in prompt_ids)
    new: list[int] = []
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            window = torch.tensor(tokens[-context_length:], dtype=torch.long, device=device)[None]
            logits = model(window)[0, -1]  # (V,) scores for the next token
            probs = next_token_probs(logits, temperature, top_p).cpu()
            token = int(torch.multinomial(probs, 1, generator=generator)) if temperature > 0 \
                else int(probs.argmax())
            tokens.append(token)
            new.append(token)
            if eos_id is not None and token == eos_id:
                break
    finally:
        model.train(was_training)
    return new
