"""Count every collective where it is issued: a TorchDispatchMode that sees the c10d ops (what
`torch.distributed.all_reduce` & co., DDP's reducer and FSDP2 dispatch) and the functional
collectives (what DTensor dispatches), like torch's CommDebugMode, but also records each call's
bytes and its process group's size.

Bytes S follow accounting.communication: an all-reduce's tensor(s), an all-gather's output, a
reduce-scatter's input, a broadcast's tensor(s).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

_C10D = {  # op name -> (collective, which tensor argument holds S)
    "allreduce_": ("all_reduce", "tensors"),
    "allreduce_coalesced_": ("all_reduce", "tensors"),
    "_allgather_base_": ("all_gather", "output"),
    "allgather_into_tensor_coalesced_": ("all_gather", "output"),
    "_reduce_scatter_base_": ("reduce_scatter", "input"),
    "reduce_scatter_tensor_coalesced_": ("reduce_scatter", "input"),
    "broadcast_": ("broadcast", "tensors"),
    "allgather_": ("all_gather", "output"),
    "reduce_scatter_": ("reduce_scatter", "input"),
    "scatter_": ("scatter", "input"),
    "gather_": ("gather", "tensors"),
    "reduce_": ("reduce", "tensors"),
    "alltoall_base_": ("all_to_all", "input"),
}
_FUNCTIONAL = {
    "all_reduce": "all_reduce", "all_reduce_coalesced": "all_reduce",
    "all_gather_into_tensor": "all_gather", "all_gather_into_tensor_coalesced": "all_gather",
    "reduce_scatter_tensor": "reduce_scatter", "reduce_scatter_tensor_coalesced": "reduce_scatter",
    "broadcast": "broadcast", "all_to_all_single": "all_to_all",
}


@dataclass(frozen=True)
class Call:
    """One collective call: its kind, the phase it ran in, its group's size and S in bytes."""

    collective: str
    phase: str
    ranks: int
    bytes: int


def _tensors(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _tensors(item)]
    return []


def _group_size(args) -> int:
    for a in args:
        if isinstance(a, torch.ScriptObject):
            try:
                return dist.ProcessGroup.unbox(a).size()
            except RuntimeError:  # a ReduceOp, not the group
                continue
    return -1


def _nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class CollectiveCounter(TorchDispatchMode):
    """Records a `Call` per collective dispatched while active into `calls`; set `phase` between
    the forward, the backward and the optimizer step."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "forward"
        self.calls: list[Call] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "c10d" and func._opname in _C10D:
            kind, where = _C10D[func._opname]
            first, second = args[0], args[1]
            # allreduce_(tensors, ...), broadcast_(tensors, ...); *_base_(output, input, ...)
            held = _tensors(first) if where in ("tensors", "output") else _tensors(second)
            self.calls.append(Call(kind, self.phase, _group_size(args), _nbytes(held)))
        elif func.namespace == "_c10d_functional" and func._opname in _FUNCTIONAL:
            kind = _FUNCTIONAL[func._opname]
            from torch.distributed.distributed_c10d import _resolve_process_group

            size = _resolve_process_group(args[-1]).size()
            held = _nbytes(_tensors(args[0]))
            self.calls.append(Call(kind, self.phase, size, held * size if kind == "all_gather" else held))
        return func(*args, **kwargs)
