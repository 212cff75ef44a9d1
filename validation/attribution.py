"""Which component each op belongs to, in the forward AND in the backward.

FlopCounterMode's per-module breakdown is right in the forward (a module's total includes its
children) but not in the backward: its ModuleTracker keeps a module "entered" until gradient hooks
fire, so e.g. k_proj is charged q_proj's dL/dX. Here every autograd node the forward creates is
labelled with the component that created it, and backward ops are charged to the node running
them (torch._C._current_autograd_node()).

A label is (module, part): `module` is the innermost module's path with layer indices dropped
("layers.attn.q_proj"; the one shared RoPE module is "layers.attn.rope"; ops outside the model
get `outside`, e.g. "cross_entropy"); `part` splits the attention core, which is no module:
"scores" (Q K^T, the first matmul of an attention call), "weighted_values" (the second), or
"core" for torch's fused sdpa (one op holding both).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

Label = tuple[str, str]  # (module path without layer indices, part or "")

_MATMUL_FUNCS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
                 torch.Tensor.bmm, torch.einsum}
_SDPA_FUNCS = {torch.nn.functional.scaled_dot_product_attention}


def component_name(path: str) -> str:
    """'layers.3.attn.q_proj' -> 'layers.attn.q_proj' (layer indices dropped)."""
    return ".".join(p for p in path.split(".") if not p.isdigit())


def label_name(label: Label) -> str:
    module, part = label
    return f"{module}.{part}" if part else module


class Attribution(TorchFunctionMode):
    """Tracks the innermost module of `model` (forward hooks), labels every function call and the
    autograd nodes it creates. `current` is the label of the running forward call; in the backward,
    `node_label()` gives the label of the node being executed (None if unknown)."""

    def __init__(self, model: nn.Module, outside: str = "cross_entropy"):
        super().__init__()
        self.outside = outside
        self._names = {id(m): component_name(n) for n, m in model.named_modules()}
        self._attention_types = tuple({type(m) for m in model.modules() if hasattr(m, "q_proj")})
        self._stack: list[nn.Module] = []
        self._matmuls_in_call: list[int] = []
        self.nodes: dict[object, Label] = {}
        self.current: Label = (outside, "")

    @contextlib.contextmanager
    def tracking(self) -> Iterator["Attribution"]:
        """Module hooks + this function mode, for the forward and the backward of one step."""
        pre = nn.modules.module.register_module_forward_pre_hook(self._enter)
        post = nn.modules.module.register_module_forward_hook(self._exit)
        try:
            with self:
                yield self
        finally:
            pre.remove()
            post.remove()

    def _enter(self, module: nn.Module, args) -> None:
        if id(module) in self._names:
            self._stack.append(module)
            self._matmuls_in_call.append(0)

    def _exit(self, module: nn.Module, args, out) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
            self._matmuls_in_call.pop()

    def _module_name(self) -> str:
        if not self._stack:
            return self.outside
        return self._names[id(self._stack[-1])] or "model"

    def _label(self, func) -> Label:
        module = self._module_name()
        if self._stack and isinstance(self._stack[-1], self._attention_types):
            if func in _SDPA_FUNCS:
                return module, "core"
            if func in _MATMUL_FUNCS:
                self._matmuls_in_call[-1] += 1
                return module, "scores" if self._matmuls_in_call[-1] == 1 else "weighted_values"
        return module, ""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        label = self._label(func)
        previous, self.current = self.current, label
        try:
            out = func(*args, **(kwargs or {}))
        finally:
            self.current = previous
        self._claim(out, label)
        return out

    def _claim(self, out, label: Label) -> None:
        """Label every not-yet-labelled node reachable from the outputs' grad_fn (the nodes this
        call created: older nodes are labelled already, and new ones only point to older ones)."""
        flat, _ = tree_flatten(out)
        todo = [t.grad_fn for t in flat if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or node in self.nodes:
                continue
            self.nodes[node] = label
            todo.extend(n for n, _ in node.next_functions)

    def node_label(self) -> Label | None:
        """Label of the autograd node now running (backward), None outside the backward."""
        node = torch._C._current_autograd_node()
        return None if node is None else self.nodes.get(node)
