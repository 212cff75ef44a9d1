"""Instruments for validation.hf_reference: which module is running, FLOPs and saved bytes charged
to it, the answers to HF's data-dependent input checks on the meta device, and the CUDA kernel
dispatch (dropout, sdpa) emulated on meta. Internal; the API is validation.hf_reference.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

_aten = torch.ops.aten
_LAYER_INDEX = re.compile(r"\.\d+(?=\.|$)")
OUTSIDE = "(outside any submodule)"
"""Work the top-level model's own forward does (HF's loss on the logits, position ids)."""


def component_name(module_path: str) -> str:
    """A module path with layer indices folded: 'model.layers.3.mlp' -> 'model.layers.*.mlp'."""
    return _LAYER_INDEX.sub(".*", module_path) or OUTSIDE


def storage_key(t: torch.Tensor) -> int:
    """Identity of a tensor's storage (views share it); meta tensors' data pointers are all 0."""
    return t.untyped_storage()._cdata


class ModuleStack:
    """The innermost running module's component name, kept by global forward (pre-)hooks."""

    def __init__(self, model: torch.nn.Module):
        self._names = {id(m): component_name(n) for n, m in model.named_modules()}
        self._stack: list[str] = []

    @property
    def current(self) -> str:
        return self._stack[-1] if self._stack else OUTSIDE

    @contextlib.contextmanager
    def tracking(self) -> Iterator[ModuleStack]:
        def push(module, args):
            self._stack.append(self._names.get(id(module), self.current))

        def pop(module, args, output):
            self._stack.pop()

        pre = torch.nn.modules.module.register_module_forward_pre_hook(push)
        post = torch.nn.modules.module.register_module_forward_hook(pop, always_call=True)
        try:
            yield self
        finally:
            pre.remove()
            post.remove()
            self._stack.clear()


class FlopsByComponent(TorchDispatchMode):
    """Matmul FLOPs (torch.utils.flop_counter's formulas: 2mnp per matmul) per running component.

    On the meta device it also answers HF's data-dependent checks: `Tensor.__bool__` on a meta
    bool scalar (HF asks "is this batch free of packed sequences / padding?") returns True, which
    is the true answer for the inputs hf_reference builds (one unpadded sequence per row,
    positions 0..T-1). Any other value read on meta still raises."""

    def __init__(self, stack: ModuleStack | None):
        super().__init__()
        self.stack = stack
        self.flops: dict[str, int] = defaultdict(int)
        self.checks_answered = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _aten._local_scalar_dense.default and args[0].is_meta and args[0].dtype == torch.bool:
            self.checks_answered += 1
            return True
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            name = self.stack.current if self.stack is not None else "total"
            self.flops[name] += int(flop_registry[packet](*args, **kwargs, out_val=out))
        return out


@contextlib.contextmanager
def saved_bytes_by_component(stack: ModuleStack, parameters: list[torch.Tensor]) -> Iterator[dict[str, int]]:
    """Bytes autograd saves for backward inside the block, charged to the running component: each
    storage once (its full nbytes, so views of one buffer count once), parameters excluded."""
    skip = {storage_key(p) for p in parameters}
    seen: set[int] = set()
    by_component: dict[str, int] = defaultdict(int)

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in skip and key not in seen:
            seen.add(key)
            by_component[stack.current] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield by_component


class CudaKernels(TorchFunctionMode):
    """What CUDA dispatches to, run on meta (whose own dispatch is CPU-like):

    - F.dropout -> aten.native_dropout: saves a bool mask (1 byte/element). On CPU and meta,
      ATen's dropout is `input * (bernoulli(1-p) / (1-p))`, which saves a mask in the input's
      dtype (4 bytes/element in float32).
    - F.scaled_dot_product_attention with no mask -> the flash kernel for fp16/bf16 (grouped
      kv heads allowed), else the memory-efficient kernel (equal heads): both save q, k, v, the
      output and a float32 logsumexp, no (T, T) tensor. Meta runs the math decomposition, which
      saves the (B, h, T, T) probabilities. Grouped heads in float32 run the math path (recorded).

    `kernels` records which attention kernels ran."""

    def __init__(self):
        super().__init__()
        self.kernels: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            return self._dropout(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            return self._sdpa(func, *args, **kwargs)
        return func(*args, **kwargs)

    @staticmethod
    def _dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0 or input.numel() == 0:
            return input  # ATen returns the input itself in these cases
        if inplace:
            raise NotImplementedError("in-place dropout is not emulated")
        return torch.native_dropout(input, p, True)[0]

    def _sdpa(self, func, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
              scale=None, enable_gqa=False):
        grouped = key.shape[-3] != query.shape[-3]
        if attn_mask is None and query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256:
            self.kernels.add("flash")
            return _aten._scaled_dot_product_flash_attention(
                query, key, value, dropout_p, is_causal, False, scale=scale)[0]
        if not grouped:
            self.kernels.add("memory-efficient")
            return _aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, query.requires_grad, dropout_p, is_causal, scale=scale)[0]
        self.kernels.add("math")
        return func(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                    scale=scale, enable_gqa=enable_gqa)
