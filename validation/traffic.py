"""Bytes a forward reads and writes, counted at dispatch: the instrument behind the decode-bytes
comparison (validation.inference).

`TrafficCounter` (a TorchDispatchMode) looks at every aten call's tensor arguments and charges
their bytes to one of the accounting's parts (accounting.inference.step_byte_terms):
  - a parameter argument: "weights read"; except when the op is a gather (index, embedding,
    index_select) of a parameter: "embedding rows read", the bytes it returns (the rows looked up);
  - a KV-cache argument (a view of the cache's buffers) the op writes (its schema marks it
    mutated, e.g. copy_'s destination): "KV cache written"; any other cache argument: "KV cache read";
  - a copy of the cache (a clone of a cache view: grouped-query attention's repeat of K and V to
    h heads on the naive path, and sdpa's math decomposition on the meta device): "KV cache
    copies read", part of the residual: the accounting counts the cache read once;
  - anything else (activations, logits, RoPE tables, masks, token ids): "other tensors read", the
    residual the accounting excludes by convention.
Rules: view and metadata ops move nothing (their results are counted where an op reads them); an
argument's bytes are those of the distinct memory it covers (an expanded view, stride 0, counts
its elements once); a gather (index, embedding, index_select) reads from its table the bytes it
returns (the embedding's rows, RoPE's cos / sin rows); within one op each storage counts once per
part (the largest view of it).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from validation.counters import LiveStorages, storage_key

_aten = torch.ops.aten
GATHERS = {_aten.index.Tensor, _aten.embedding.default, _aten.index_select.default}
PARTS = ("weights read", "embedding rows read", "KV cache read", "KV cache written")
COPIES = "KV cache copies read"
OTHER = "other tensors read"
RESIDUAL = (COPIES, OTHER)
_COPY_OPS = {_aten.clone.default, _aten._to_copy.default, _aten.repeat_interleave.self_Tensor,
             _aten.repeat_interleave.self_int, _aten.repeat.default, _aten.expand_copy.default}


def distinct_nbytes(t: torch.Tensor) -> int:
    """Bytes of the memory a (possibly strided or expanded) tensor covers: a stride-0 dimension
    repeats the same elements, so it does not multiply them."""
    elements = math.prod(size for size, stride in zip(t.shape, t.stride()) if stride != 0)
    return elements * t.element_size() if t.numel() else 0


def _written(func) -> set[str]:
    """Names of the arguments `func` mutates (alias annotations with `!` in its schema)."""
    return {a.name for a in func._schema.arguments if a.alias_info is not None and a.alias_info.is_write}


def _named_tensors(func, args, kwargs) -> list[tuple[str, torch.Tensor]]:
    """(schema argument name, tensor) for every tensor argument, lists flattened."""
    names = [a.name for a in func._schema.arguments]
    out = []
    for i, value in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        out += [(name, t) for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    for name, value in kwargs.items():
        out += [(name, t) for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return out


class TrafficCounter(TorchDispatchMode):
    """`bytes[part]`: bytes of parameters and cache tensors read / written by the ops run inside,
    and the residual `bytes[OTHER]` (module docstring). Parameters and cache are given as tensors;
    any view of their storages counts as them."""

    def __init__(self, parameters, cache_tensors):
        super().__init__()
        self._parameters = {storage_key(p) for p in parameters}
        self._cache = {storage_key(c) for c in cache_tensors}
        self._copies = LiveStorages()  # live copies only: a dead copy's address is reused
        self.bytes: dict[str, int] = defaultdict(int)

    def _part(self, func, name: str, key: int, written: set[str]) -> str:
        if key in self._parameters:
            return "embedding rows read" if func in GATHERS else "weights read"
        if key in self._cache:
            return "KV cache written" if name in written else "KV cache read"
        return COPIES if key in self._copies else OTHER

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func._schema.name in _METADATA:
            return out
        written = _written(func)
        charged: dict[tuple[str, int], int] = {}
        for name, t in _named_tensors(func, args, kwargs):
            key = storage_key(t)
            part = self._part(func, name, key, written)
            gathered = func in GATHERS and name in ("self", "weight")  # the table rows are looked up from
            size = distinct_nbytes(out) if gathered else distinct_nbytes(t)
            charged[(part, key)] = max(charged.get((part, key), 0), size)
        for (part, _), size in charged.items():
            self.bytes[part] += size
        if func in _COPY_OPS and any(p in ("KV cache read", COPIES) for p, _ in charged):
            self._copies.track(out)
        return out


_METADATA = {"aten::_unsafe_view", "aten::view", "aten::_reshape_alias", "aten::lift_fresh",
             "aten::detach", "aten::alias", "aten::empty", "aten::empty_strided"}
"""Ops that allocate or relabel memory without reading it (not all are flagged `is_view`)."""
