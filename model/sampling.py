"""Autoregressive sampling from a TransformerLM: temperature, top-p (nucleus), EOS, context crop,
batches of prompts, and incremental decoding with a KV cache.

With the cache (the default for a TransformerLM) the prompt is run once (the prefill, which fills
a model.kv_cache.KVCache), then each new token is one decode step: a forward of that token alone,
at its explicit position, attending to the cached keys and values. Without it every new token
reruns the model over the whole window. Both give the same tokens (greedy decoding is tested
identical; the logits agree to float rounding, from matmuls of other shapes).

Positions: a sequence longer than the model's context_length cannot be decoded with a cache
(every position shifts when the window slides, so every cached key is stale): tokens past that
point are generated the no-cache way, from the last context_length tokens.

Batches: `generate_batch` takes prompts of any lengths. Prompts of equal length are decoded as one
batch (B rows of one cache); prompts of different lengths are grouped by length, each group its
own batch, so nothing is padded or masked. Each row stops at its own EOS.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from accounting.errors import UserError
from model.kv_cache import KVCache


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """Sampling distribution (..., V) from last-position logits (..., V) (one row or a batch).

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
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    scaled = logits / temperature
    probs = (scaled - scaled.amax(-1, keepdim=True)).exp()
    probs = probs / probs.sum(-1, keepdim=True)
    if top_p < 1:
        sorted_probs, order = probs.sort(-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more probable tokens
        keep_sorted = before < top_p  # token i is needed while the mass before it is short of p
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def _check(prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    if max_new_tokens < 0:
        raise UserError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not prompts:
        raise UserError("no prompts given")
    if any(len(p) == 0 for p in prompts):
        raise UserError("the prompt must hold at least one token")


def _sample(logits: torch.Tensor, temperature: float, top_p: float,
            generator: torch.Generator | None) -> list[int]:
    """One token per row of logits (B, V)."""
    probs = next_token_probs(logits, temperature, top_p).cpu()  # (B, V)
    if temperature == 0:
        return probs.argmax(-1).tolist()
    return torch.multinomial(probs, 1, generator=generator)[:, 0].tolist()


def _decode_group(model: torch.nn.Module, prompts: list[list[int]], max_new_tokens: int,
                  temperature: float, top_p: float, eos_id: int | None,
                  generator: torch.Generator | None, use_cache: bool) -> list[list[int]]:
    """New tokens for B prompts of one length, decoded as one batch."""
    context_length = model.config.context_length
    device = next(model.parameters()).device
    rows = [list(p) for p in prompts]
    new: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    # The cache holds every token fed to the model: the prompt and all new tokens but the last.
    capacity = min(len(rows[0]) + max_new_tokens - 1, context_length)
    cache = KVCache.for_model(model, len(rows), capacity) if use_cache and max_new_tokens else None
    for _ in range(max_new_tokens):
        length = len(rows[0])
        if cache is not None and length <= cache.capacity:
            # the tokens the cache has not seen: the whole prompt first, then one token a step
            ids = torch.tensor([r[cache.length:] for r in rows], dtype=torch.long, device=device)
            positions = torch.arange(cache.length, length, device=device)
            logits = model(ids, positions, kv_cache=cache)[:, -1]  # (B, V)
        else:  # no cache, or past the context window: rerun the last context_length tokens
            window = torch.tensor([r[-context_length:] for r in rows], dtype=torch.long, device=device)
            logits = model(window)[:, -1]  # (B, V)
        for i, token in enumerate(_sample(logits, temperature, top_p, generator)):
            rows[i].append(token)
            if not done[i]:
                new[i].append(token)
                done[i] = eos_id is not None and token == eos_id
        if all(done):
            break
    return new


def _takes_cache(model: torch.nn.Module) -> bool:
    from model.transformer import TransformerLM

    return isinstance(model, TransformerLM)


@torch.no_grad()
def generate_batch(model: torch.nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                   temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
                   generator: torch.Generator | None = None,
                   use_cache: bool | None = None) -> list[list[int]]:
    """The new token ids of each prompt (prompt excluded), in the prompts' order.

    Each row stops after `max_new_tokens` tokens or right after emitting `eos_id` (included).
    `use_cache`: decode with a KV cache (default: when the model is a TransformerLM). Rows are
    sampled in order from one `generator`, so a seeded generator reproduces the whole batch.
    """
    _check(prompts, max_new_tokens)
    if use_cache is None:
        use_cache = _takes_cache(model)
    elif use_cache and not _takes_cache(model):
        raise UserError(f"{type(model).__name__} takes no KV cache (use_cache=False)")
    groups: dict[int, list[int]] = defaultdict(list)  # prompt length -> indices, first-seen order
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for indices in groups.values():
            rows = [[int(t) for t in prompts[i]] for i in indices]
            for i, tokens in zip(indices, _decode_group(model, rows, max_new_tokens, temperature,
                                                        top_p, eos_id, generator, use_cache)):
                out[i] = tokens
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def generate(model: torch.nn.Module, prompt_ids: Sequence[int], max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
             generator: torch.Generator | None = None, use_cache: bool | None = None) -> list[int]:
    """The new token ids (prompt excluded) sampled one at a time from `model`.

    The model sees at most its last `model.config.context_length` tokens. Generation stops after
    `max_new_tokens` tokens or right after emitting `eos_id` (which is included in the result).
    `use_cache`: decode with a KV cache (default: when the model is a TransformerLM).
    """
    if len(prompt_ids) == 0:
        raise UserError("the prompt must hold at least one token")
    return generate_batch(model, [prompt_ids], max_new_tokens, temperature, top_p, eos_id,
                          generator, use_cache)[0]
