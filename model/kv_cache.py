"""The key/value cache of incremental decoding: every block's K and V of the tokens seen so far.

`KVCache(cfg, batch_size, capacity)` preallocates, per block, one K and one V buffer of shape
(B, h_kv, capacity, d_k) in the model's dtype (grouped-query attention stores h_kv heads, not h).
A forward with the cache (`TransformerLM(..)(ids, positions, kv_cache=cache)`) writes the new
tokens' rotated K and V at positions `length .. length + T - 1` of each block's buffers, attends
over positions 0 .. length + T - 1, then advances `length` by T. Nothing is ever copied or
reallocated: the buffers are the cache's whole memory, `nbytes` = 2 * L * B * capacity * h_kv * d_k
* element size (accounting.inference.kv_cache_bytes).

The buffers start uninitialised (torch.empty): a position is read only after it is written.
"""

from __future__ import annotations

import torch

from accounting.config import ModelConfig


class LayerKV:
    """One block's slice of a KVCache: `append(k, v)` writes and returns the keys/values so far."""

    def __init__(self, cache: "KVCache", index: int):
        self.cache = cache
        self.index = index

    @property
    def length(self) -> int:
        """Positions already written (the new tokens go at length, length + 1, ...)."""
        return self.cache.length

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, h_kv, T, d_k) at the next T positions; return this block's keys and
        values at positions 0 .. length + T - 1, (B, h_kv, length + T, d_k) views of the buffers."""
        start = self.cache.length
        end = start + k.shape[-2]
        if end > self.cache.capacity:
            raise ValueError(f"KV cache full: {end} positions needed, capacity {self.cache.capacity}")
        keys, values = self.cache.keys[self.index], self.cache.values[self.index]
        keys[:, :, start:end] = k  # one copy_ into the buffer: the new K written
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class KVCache:
    """Per-block K and V buffers, (B, h_kv, capacity, d_k) each; `length` positions written."""

    def __init__(self, cfg: ModelConfig, batch_size: int, capacity: int, *, device=None,
                 dtype: torch.dtype | None = None):
        if batch_size <= 0 or capacity <= 0:
            raise ValueError(f"batch_size and capacity must be positive, got {batch_size}, {capacity}")
        if capacity > cfg.context_length:
            raise ValueError(f"capacity {capacity} exceeds context_length {cfg.context_length}")
        shape = (batch_size, cfg.kv_heads, capacity, cfg.head_dim)
        self.batch_size = batch_size
        self.capacity = capacity
        self.length = 0
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)]
        self._layers = [LayerKV(self, i) for i in range(cfg.num_layers)]

    @classmethod
    def for_model(cls, model: torch.nn.Module, batch_size: int, capacity: int) -> "KVCache":
        """A cache for `model` (its config; device and dtype of its parameters)."""
        weight = next(model.parameters())
        return cls(model.config, batch_size, capacity, device=weight.device, dtype=weight.dtype)

    def layer(self, index: int) -> LayerKV:
        """Block `index`'s view of the cache (what its attention appends to)."""
        return self._layers[index]

    def advance(self, tokens: int) -> None:
        """Mark `tokens` more positions written (after every block has appended them)."""
        self.length += tokens

    def tensors(self) -> list[torch.Tensor]:
        """Every buffer, K then V per block."""
        return [t for pair in zip(self.keys, self.values) for t in pair]

    @property
    def nbytes(self) -> int:
        """Bytes of all buffers (the cache's memory, whatever `length` is)."""
        return sum(t.nelement() * t.element_size() for t in self.tensors())
