"""The ledger a memory timeline is written in: tensors allocated and freed in program order.

A program (accounting.timeline.model, accounting.timeline.step) replays one training step the way
torch runs it: every aten call that allocates allocates its outputs here (`new`), the tensors that
die after it are freed (`free`). After each allocating call the ledger records a `Point`: the live
bytes per category at that instant, which is where MemTracker (and the caching allocator's peak
counter) looks. Sizes are polynomials over the accounting's size symbols with integer coefficients
(sympy's sparse `ring`: exact, fast to add and to evaluate); `d_k` stands for d / h and `C` for the
config's context length (the rows of the RoPE tables); accounting.timeline turns them into sympy
expressions in accounting.symbols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sympy.polys.domains import ZZ
from sympy.polys.rings import PolyElement, ring

RING, B, T, L, d, h, d_k, d_ff, V, C, h_kv = ring("B,T,L,d,h,d_k,d_ff,V,C,h_kv", ZZ)
ZERO = RING.zero
kv = h_kv * d_k  # the width of k_proj's and v_proj's outputs

CATEGORIES: tuple[str, ...] = ("weights", "buffers", "batch", "weights_bf16_copy", "gradients",
                               "optimizer_state", "activations", "transients")
"""What a live byte is (accounting.timeline's docstring defines each)."""
INDEX = {c: i for i, c in enumerate(CATEGORIES)}

PHASES: tuple[str, ...] = ("start", "forward", "loss", "backward", "clip", "optimizer", "zero_grad")
"""The step's phases in order ("start": the state the previous step left, before the forward)."""

Sizes = tuple[PolyElement, ...]  # one polynomial per category, CATEGORIES order


@dataclass(frozen=True)
class Point:
    """Live bytes per category right after the call `label` (in `phase`). `boundary` marks the
    end of a phase (not a call: the state after the phase's last frees)."""

    label: str
    phase: str
    live: Sizes
    boundary: bool = False


class Ledger:
    """Live tensors by name, running totals per category, and the points recorded so far."""

    def __init__(self) -> None:
        self.tensors: dict[str, tuple[int, PolyElement]] = {}
        self.totals: list[PolyElement] = [ZERO] * len(CATEGORIES)
        self.points: list[Point] = []
        self.phase = "start"

    def new(self, name: str, nbytes: PolyElement | int, category: str = "transients",
            label: str | None = None) -> str:
        """Allocate `name` and record a point labelled `label` (default: the name); label=""
        records none (one call allocating several outputs records one point after the last)."""
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} allocated twice")
        cat = INDEX[category]
        size = RING(nbytes)
        self.tensors[name] = (cat, size)
        self.totals[cat] += size
        if label != "":
            self.point(label or name)
        return name

    def free(self, *names: str) -> None:
        for name in names:
            cat, size = self.tensors.pop(name)
            self.totals[cat] -= size

    def move(self, name: str, category: str) -> None:
        """Re-categorize a live tensor (a gradient that becomes a parameter's .grad)."""
        cat, size = self.tensors[name]
        self.totals[cat] -= size
        self.totals[INDEX[category]] += size
        self.tensors[name] = (INDEX[category], size)

    def forget(self, name: str) -> None:
        """Drop the name, keep the bytes (in their category): the tensor lives on inside an
        aggregate (`bulk`) that will free it."""
        del self.tensors[name]

    def rename(self, old: str, new: str) -> str:
        self.tensors[new] = self.tensors.pop(old)
        return new

    def point(self, label: str) -> None:
        self.points.append(Point(label, self.phase, tuple(self.totals)))

    def boundary(self, label: str) -> None:
        self.points.append(Point(label, self.phase, tuple(self.totals), boundary=True))

    def bulk(self, delta: Sequence[PolyElement]) -> None:
        """Add an aggregated change (per category) that no named tensor carries: the blocks a
        program does not replay one by one (accounting.timeline.step)."""
        for cat, size in enumerate(delta):
            self.totals[cat] += size

    def snapshot(self) -> Sizes:
        return tuple(self.totals)


def difference(after: Sizes, before: Sizes) -> Sizes:
    return tuple(a - b for a, b in zip(after, before))


def scaled(sizes: Sizes, factor: PolyElement | int) -> Sizes:
    return tuple(s * factor for s in sizes)
