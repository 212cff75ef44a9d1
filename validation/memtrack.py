"""The memory timeline measured: torch's MemTracker over one steady-state training step, beside
accounting.timeline.

The step is model.trainer.training_step (forward, loss, backward, clip, AdamW, zero_grad with
set_to_none), after one untracked step that creates the AdamW state, on a fresh model. MemTracker
(torch.distributed._tools.mem_tracker) counts every tensor storage made in its context, plus the
model, optimizer and batch given to track_external, by category, on any device (CPU, CUDA, meta and
fake tensors; on CUDA it rounds each storage up to the caching allocator's 512-byte block). Inside
it, a TorchDispatchMode reads MemTracker's current total before and after every aten call: a call
whose total grew allocated, and its after-total is a point of the timeline (where MemTracker takes
its own peak). training_step's phase marks give each point its phase and the boundaries.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from model.trainer import clip_gradients, training_step

_TOTAL = "Total"


@dataclass(frozen=True)
class MeasuredTimeline:
    """Live bytes of one measured step: `points` (phase, bytes) after every call that allocated,
    `boundaries` (phase, bytes) at each phase's start ("end": after zero_grad), MemTracker's own
    `peak` and its categories there."""

    points: tuple[tuple[str, int], ...]
    boundaries: tuple[tuple[str, int], ...]
    peak: int
    peak_categories: dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> int:
        return self.boundaries[0][1]

    def phase_peak(self, phase: str) -> int | None:
        """The largest point of `phase` (None when the phase allocated nothing)."""
        return max((b for p, b in self.points if p == phase), default=None)

    def phase_end(self, phase: str) -> int:
        """Live bytes when `phase` ended (the next phase's start)."""
        names = [p for p, _ in self.boundaries]
        return self.boundaries[names.index(phase) + 1][1]


class _Points(TorchDispatchMode):
    def __init__(self, tracker) -> None:
        super().__init__()
        self.tracker = tracker
        self.phase = "start"
        self.points: list[tuple[str, int]] = []

    def total(self) -> int:
        current = getattr(self.tracker, "_curr_mem_snap", None)  # read without get_tracker_snapshot's copy
        if current is None:
            current = self.tracker.get_tracker_snapshot("current")
        return sum(snap.get(_TOTAL, 0) for snap in current.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.total()
        out = func(*args, **(kwargs or {}))
        after = self.total()
        if after > before:
            self.points.append((self.phase, after))
        return out


def _step_tracker():
    """A MemTracker. Its per-module peak snapshots (which this measurement does not use) cost a
    walk over every module at every call (GPT-2 XL on meta: 40 of 58 s), so the global peak is
    kept the way MemTracker keeps it and the walk is skipped, where that private hook exists."""
    from torch.distributed._tools.mem_tracker import MemTracker

    if not hasattr(MemTracker, "_update_peak_stats"):
        return MemTracker()

    class StepTracker(MemTracker):
        def _update_peak_stats(self, peak_state) -> None:
            for dev, snap in self._curr_mem_snap.items():
                if self._peak_mem.get(dev, 0) < snap[_TOTAL]:
                    self._peak_mem[dev] = snap[_TOTAL]
                    self._peak_mem_snap[dev] = dict(snap)

    return StepTracker()


def clip_without_reading(parameters, max_norm: float) -> float:
    """clip_gradients' tensor work (each gradient squared and summed, the sum's square root)
    without reading the norm, for tensors that have no values (meta, fake): nothing is scaled."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads))
    return 0.0


def make_optimizer(model: torch.nn.Module, name: str) -> torch.optim.Optimizer:
    """The trainer's AdamW ("reference" | "foreach" | "fused"), its default hyperparameters."""
    from model.optim import AdamW

    kwargs = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    if name == "reference":
        return AdamW(model.parameters(), **kwargs)
    from model.fast_optim import FastAdamW

    return FastAdamW(model.parameters(), implementation=name, **kwargs)


def measure_timeline(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                     optimizer: str = "reference", autocast: Callable = contextlib.nullcontext,
                     max_norm: float = 1.0, values: bool = True) -> MeasuredTimeline:
    """One untracked step (AdamW state), then one step under MemTracker. `values`: False for
    meta / fake tensors (clipping then skips reading the norm)."""
    opt = make_optimizer(model, optimizer)
    clip = None if values else clip_without_reading
    kwargs = dict(autocast=autocast, max_norm=max_norm if max_norm > 0 else math.inf,
                  **({} if clip is None else {"clip": clip}))
    loss, _ = training_step(model, opt, x, y, **kwargs)
    del loss
    return tracked_step(model, opt, x, y, externals=(model, opt, x, y), **kwargs)


def measure_ddp_timeline(ddp: torch.nn.Module, model: torch.nn.Module, opt: torch.optim.Optimizer,
                         x: torch.Tensor, y: torch.Tensor, max_norm: float = 1.0) -> MeasuredTimeline:
    """One DDP rank's steady-state step (DDP(model, gradient_as_bucket_view=True) after its bucket
    rebuild, i.e. from its third step on) under MemTracker. DDP's buckets are allocated before the
    step and are not the parameters' gradients at its start (set_to_none), so one untracked step
    first keeps a view of every bucket (the gradients as clipping sees them) and MemTracker tracks
    those from the start: the live bytes include the buckets at every call."""
    views: list[torch.Tensor] = []

    def keep_views(parameters, norm: float) -> float:
        parameters = list(parameters)
        views[:] = [p.grad for p in parameters if p.grad is not None]
        return clip_gradients(parameters, norm)

    norm = max_norm if max_norm > 0 else math.inf
    loss, _ = training_step(ddp, opt, x, y, max_norm=norm, clip=keep_views)
    del loss
    return tracked_step(ddp, opt, x, y, externals=(model, opt, x, y, *views), max_norm=norm)


def tracked_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 *, externals: tuple, **kwargs) -> MeasuredTimeline:
    """One training_step(model, opt, x, y, **kwargs) under MemTracker, which also tracks the
    tensors, modules and optimizers of `externals` from the start."""
    tracker = _step_tracker()
    tracker.track_external(*externals)
    points = _Points(tracker)
    boundaries: list[tuple[str, int]] = []

    def mark(phase: str) -> None:
        boundaries.append((phase, points.total()))
        points.phase = phase

    with tracker, points:
        loss, _ = training_step(model, opt, x, y, mark=mark, **kwargs)
        del loss
    snap = next(iter(tracker.get_tracker_snapshot("peak").values()), {})
    peak = snap.get(_TOTAL, 0)
    categories = {getattr(k, "value", str(k)): v for k, v in snap.items() if k != _TOTAL}
    return MeasuredTimeline(tuple(points.points), tuple(boundaries), peak, categories)
