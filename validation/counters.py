"""The instruments: FLOPs at dispatch (matmul and non-matmul, per component and phase) and the
bytes saved for backward (saved_tensors_hooks, per component).

Matmul FLOPs use torch's own formulas (torch.utils.flop_counter's registry: 2*m*n*p per matmul,
sdpa counted dense, its backward with the score recompute), extended with torch's CPU flash-
attention kernel, which the registry lacks (the same sdpa formulas). Non-matmul FLOPs use
accounting.conventions.op_flops (the per-op cost table the accounting documents), so both sides
count alike by construction.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count, shape_wrapper

from accounting.conventions import op_flops
from validation.attribution import Attribution, label_name

_aten = torch.ops.aten


def _cpu_flash_forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


EXTRA_FLOP_FORMULAS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}
"""torch's sdpa FLOP formulas for the CPU flash kernel (pass as FlopCounterMode(custom_mapping=))."""

_REGISTRY = {**flop_registry, **{k: shape_wrapper(v) for k, v in EXTRA_FLOP_FORMULAS.items()}}
PHASES = ("forward", "backward", "optimizer")
UNATTRIBUTED = "(unattributed)"


class DispatchCounter(TorchDispatchMode):
    """Sums FLOPs of every aten call into `matmul[phase][component]` and
    `nonmatmul[phase][component]`. The component comes from `attribution`: the running forward
    call, or the autograd node in the backward; `phase` is set by the caller."""

    def __init__(self, attribution: Attribution | None = None):
        super().__init__()
        self.attribution = attribution
        self.phase = "forward"
        self.matmul: dict[str, dict[str, int]] = {p: defaultdict(int) for p in PHASES}
        self.nonmatmul: dict[str, dict[str, int]] = {p: defaultdict(int) for p in PHASES}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in _REGISTRY:
            flops = _REGISTRY[packet](*args, **kwargs, out_val=out)
            self.matmul[self.phase][self._component()] += int(flops)
            return out
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is not None and isinstance(out, torch.Tensor):
            flops = op_flops(str(func), out_numel=out.numel(), in_numel=first.numel(),
                             alpha=kwargs.get("alpha", 1))
            if flops:
                self.nonmatmul[self.phase][self._component(True)] += flops
        return out

    def nonmatmul_flops(self, phase: str = "forward") -> int:
        """Non-matmul FLOPs of `phase`, all components."""
        return sum(self.nonmatmul[phase].values())

    def _component(self, module_only: bool = False) -> str:
        """The running component: its full label, or only its module (non-matmul work)."""
        if self.attribution is None:
            return "total"
        if self.phase == "backward":
            label = self.attribution.node_label()
        else:
            label = self.attribution.current
        if label is None:
            return UNATTRIBUTED
        return label[0] if module_only else label_name(label)


def storage_key(t: torch.Tensor) -> int:
    """Identity of a tensor's storage (views share it); works on meta tensors, whose data
    pointers are all 0."""
    return t.untyped_storage()._cdata


class LiveStorages(set):
    """Storage keys (storage_key) of tensors that are still alive: a key leaves the set when its
    tensor dies, so a later tensor that reuses the address is not taken for it. Views keep their
    base alive (and so its key)."""

    def __init__(self) -> None:
        super().__init__()
        self._refs: dict[int, weakref.ref] = {}

    def track(self, t: torch.Tensor) -> int:
        key = storage_key(t)
        self.add(key)
        self._refs[key] = weakref.ref(t, lambda _, k=key: self._dead(k))
        return key

    def _dead(self, key: int) -> None:
        self.discard(key)
        self._refs.pop(key, None)


class WeightCasts(TorchDispatchMode):
    """Records the storages of every cast of a parameter (aten._to_copy of a parameter's storage):
    under autocast, the bf16 working copies each Linear makes of its weight (and of its bias).
    `keys` (a LiveStorages) fills as the forward runs and holds only live casts (a bias's copy dies
    with its add, a weight's copy lives while autograd keeps a view of it); pass `keys` to
    saved_bytes_by_component as `skip`."""

    def __init__(self, parameters: list[torch.Tensor]):
        super().__init__()
        self._params = {storage_key(p) for p in parameters}
        self.keys = LiveStorages()
        self.nbytes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is _aten._to_copy.default and isinstance(args[0], torch.Tensor) \
                and storage_key(args[0]) in self._params:
            self.nbytes[self.keys.track(out)] = out.untyped_storage().nbytes()
        return out


@contextlib.contextmanager
def saved_bytes_by_component(attribution: Attribution | None, parameters: list[torch.Tensor],
                             skip: set[int] | None = None, skipped: dict[int, int] | None = None
                             ) -> Iterator[dict[str, int]]:
    """Within the block, every tensor autograd saves is charged (its storage's bytes, once per
    storage, parameters excluded) to the module that saves it first (attribution.current's
    module; everything to "total" without an attribution). Yields the dict it fills:
    component -> bytes. Storages in `skip` (read at each save: WeightCasts.keys) are not
    charged; the bytes of those saved go to `skipped` (storage -> bytes) when given."""
    skip_casts = skip if skip is not None else set()
    skip = {storage_key(p) for p in parameters}
    seen: set[int] = set()
    by_component: dict[str, int] = defaultdict(int)

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key in skip_casts:
            if skipped is not None:
                skipped[key] = t.untyped_storage().nbytes()
            return t
        if key not in skip and key not in seen:
            seen.add(key)
            label = attribution.current[0] if attribution is not None else "total"
            by_component[label] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield by_component
