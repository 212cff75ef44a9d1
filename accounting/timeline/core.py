"""Evaluating a step's ledger program: typed events with exact bytes, the peak, the largest batch.

Every point's bytes are linear in B (for B >= 2; B = 1 runs its own program, accounting.timeline.
layers.Layers explains why), so a point is a pair (fixed, per_sequence) per category once the other
sizes are known, cached per (program, sizes).

`gradient_buckets=True` is the step under DistributedDataParallel with gradient_as_bucket_view (the
trainer's DDP): the gradients live in DDP's buckets, allocated once, so the gradients category holds
its full size (every gradient, float32) at every event instead of growing in the backward and
being freed by zero_grad; a tied matrix's gradients wait in autograd's input buffer (transients)
until their sum goes into the bucket. Measured equal with MemTracker on gloo ranks (validation.distributed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType

import sympy as sp

from accounting.activations_impl import SDPA_BACKENDS
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.timeline.layers import Variant
from accounting.timeline.ledger import CATEGORIES, RING, PolyElement
from accounting.timeline.step import OPTIMIZERS, StepKey, step_points

TIMELINE_DTYPES: tuple[str, ...] = ("float32", "bfloat16")
"""float32, or "bfloat16" = torch.autocast(bfloat16) over float32 master weights (the trainer's)."""

Linear = tuple[int, int]  # (bytes at B = 0, bytes per sequence)


@dataclass(frozen=True)
class TimelineEvent:
    """The live bytes right after one call of the step (`boundary`: at the end of a phase).

    `name` says what the call made ("layers[L-1].attn: exp", "AdamW: sqrt(v) of lm_head.weight");
    `phase` is one of PHASES; `bytes` maps every category of CATEGORIES to exact bytes."""

    index: int
    name: str
    phase: str
    boundary: bool
    bytes: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


@dataclass(frozen=True)
class Timeline:
    """One steady-state training step's memory, event by event (see accounting.timeline)."""

    config: ModelConfig
    batch_size: int
    context_length: int
    dtype: str
    optimizer: str
    checkpointing: bool
    events: tuple[TimelineEvent, ...]
    sdpa_backend: str = "fused"
    gradient_buckets: bool = False

    @property
    def peak(self) -> TimelineEvent:
        """The first event with the largest total (the step's peak)."""
        return max(self.events, key=lambda e: e.total)

    @property
    def peak_bytes(self) -> int:
        return self.peak.total

    def phase_peak(self, phase: str) -> TimelineEvent:
        """The first event of `phase` with that phase's largest total."""
        return max((e for e in self.events if e.phase == phase), key=lambda e: e.total)

    def phase_end(self, phase: str) -> TimelineEvent:
        """The state at the end of `phase` (its boundary event)."""
        return [e for e in self.events if e.phase == phase][-1]

    def formula(self, event: TimelineEvent, category: str | None = None) -> sp.Expr:
        """The event's bytes (one category's, or the total) as a sympy expression in the
        accounting's symbols (accounting.symbols), linear in B; exact at this timeline's sizes
        (and any B >= 2, or B = 1 when this timeline is at B = 1)."""
        key = _key(self.config, self.batch_size, self.dtype, self.optimizer, self.checkpointing,
                   self.sdpa_backend, self.gradient_buckets)
        live = list(step_points(key)[event.index].live)
        if self.gradient_buckets:  # every gradient, as the one-device step holds them at its end
            plain = _without_buckets(key)
            live[_GRADIENTS] = step_points(plain)[_fullest_gradients(plain)].live[_GRADIENTS]
        polys = [live[CATEGORIES.index(category)]] if category else live
        return sp.expand(sum((to_sympy(p, self.config) for p in polys), sp.Integer(0)))


def to_sympy(poly: PolyElement, cfg: ModelConfig) -> sp.Expr:
    """A ledger polynomial as a sympy expression in accounting.symbols (d_k = d / h; C, the rows
    of the RoPE tables and of a learned position table, is n_ctx)."""
    from accounting.symbols import B, L, T, V, d, d_ff, h, h_kv, n_ctx

    return poly.as_expr(B, T, L, d, h, d / h, d_ff, V, n_ctx, h_kv)


def _check(dtype: str, optimizer: str, sdpa_backend: str = "fused") -> None:
    if dtype not in TIMELINE_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TIMELINE_DTYPES)}, got {dtype!r}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if sdpa_backend not in SDPA_BACKENDS:
        raise UserError(f"sdpa_backend must be one of {', '.join(SDPA_BACKENDS)}, got {sdpa_backend!r}")


def _key(cfg: ModelConfig, batch_size: int, dtype: str, optimizer: str, checkpointing: bool,
         sdpa_backend: str = "fused", gradient_buckets: bool = False) -> StepKey:
    v = Variant(cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.tie_embeddings,
                cfg.attention, dtype == "bfloat16", cfg.bias, cfg.dropout > 0,
                cfg.kv_heads < cfg.num_heads, cfg.attention == "sdpa" and sdpa_backend == "math",
                bool(gradient_buckets))
    return StepKey(v, optimizer, bool(checkpointing), min(cfg.num_layers, 3), batch_size > 1,
                   cfg.num_heads > 1, cfg.kv_heads > 1)


def _sizes(cfg: ModelConfig, t: int) -> tuple[int, ...]:
    """Values of the ledger's generators except B (T, L, d, h, d_k, d_ff, V, C, h_kv)."""
    return (t, cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.head_dim, cfg.d_ff,
            cfg.vocab_size, cfg.context_length, cfg.kv_heads)


@lru_cache(maxsize=256)
def _linear_points(key: StepKey, sizes: tuple[int, ...]) -> tuple[tuple[Linear, ...], ...]:
    """Per point, per category: (bytes at B = 0, bytes per sequence)."""
    gens = RING.gens[1:]
    subs = list(zip(gens, sizes))
    cache: dict[PolyElement, Linear] = {}

    def linear(p: PolyElement) -> Linear:
        if p not in cache:
            q = p.evaluate(subs) if p else p
            terms = dict(q.terms()) if q else {}
            if any(m[0] > 1 for m in terms):
                raise AssertionError(f"timeline bytes not linear in B: {p}")
            cache[p] = (int(terms.get((0,), 0)), int(terms.get((1,), 0)))
        return cache[p]

    return tuple(tuple(linear(p) for p in point.live) for point in step_points(key))


_GRADIENTS = CATEGORIES.index("gradients")


def _without_buckets(key: StepKey) -> StepKey:
    return replace(key, variant=replace(key.variant, gradient_buckets=False))


def _fullest_gradients(key: StepKey) -> int:
    """Index of the backward's end (its boundary point): every gradient defined, nothing in flight."""
    return max(i for i, p in enumerate(step_points(key)) if p.phase == "backward" and p.boundary)


def _points(key: StepKey, sizes: tuple[int, ...]) -> tuple[tuple[Linear, ...], ...]:
    """_linear_points; for a DDP rank's step (key.variant.gradient_buckets) the gradients are
    held at their full size (the one-device step's at the end of its backward) at every point."""
    lines = _linear_points(key, sizes)
    if not key.variant.gradient_buckets:
        return lines
    plain = _without_buckets(key)
    full = _linear_points(plain, sizes)[_fullest_gradients(plain)][_GRADIENTS]
    if full[1]:
        raise AssertionError("gradient bytes grow with the batch size")
    return tuple(lin[:_GRADIENTS] + (full,) + lin[_GRADIENTS + 1:] for lin in lines)


def memory_timeline(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                    dtype: str = "float32", optimizer: str = "reference",
                    checkpointing: bool = False, sdpa_backend: str = "fused",
                    gradient_buckets: bool = False) -> Timeline:
    """The memory timeline of one steady-state training step of model/trainer.py (see the
    package docstring for the loop, the events and the categories; `sdpa_backend`:
    SDPA_BACKENDS; `gradient_buckets`: one DDP rank's step, see the module docstring)."""
    from accounting.symbols import values

    _check(dtype, optimizer, sdpa_backend)
    t = cfg.context_length if context_length is None else context_length
    values(cfg, batch_size, t)  # validates the sizes
    key = _key(cfg, batch_size, dtype, optimizer, checkpointing, sdpa_backend, gradient_buckets)
    points = step_points(key)
    events = tuple(
        TimelineEvent(i, p.label, p.phase, p.boundary, MappingProxyType(
            {c: a + b * batch_size for c, (a, b) in zip(CATEGORIES, lin)}))
        for i, (p, lin) in enumerate(zip(points, _points(key, _sizes(cfg, t)))))
    return Timeline(cfg, batch_size, t, dtype, optimizer, bool(checkpointing), events, sdpa_backend,
                    bool(gradient_buckets))


def timeline_peak_bytes(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                        dtype: str = "float32", optimizer: str = "reference",
                        checkpointing: bool = False, sdpa_backend: str = "fused",
                        gradient_buckets: bool = False) -> int:
    """The step's peak bytes (the timeline's maximum), without building the events."""
    _check(dtype, optimizer, sdpa_backend)
    t = cfg.context_length if context_length is None else context_length
    key = _key(cfg, batch_size, dtype, optimizer, checkpointing, sdpa_backend, gradient_buckets)
    return max(sum(a + b * batch_size for a, b in lin) for lin in _points(key, _sizes(cfg, t)))


@dataclass(frozen=True)
class Bound:
    """The binding constraint of the largest batch: the event that first exceeds the budget."""

    batch_size: int
    exact_solution: float      # (budget - fixed) / per_sequence of the binding event
    fixed_bytes: int           # the binding event's bytes at B = 0 (its line's intercept)
    bytes_per_sequence: int
    event: str                 # the binding event's name
    phase: str


def largest_batch(cfg: ModelConfig, budget: int, context_length: int | None = None,
                  dtype: str = "float32", optimizer: str = "reference",
                  checkpointing: bool = False, sdpa_backend: str = "fused",
                  gradient_buckets: bool = False) -> Bound:
    """The largest B whose peak fits `budget` bytes: every event is a line a + b*B (B >= 2), so
    the peak fits iff every line does; B = min over events of floor((budget - a) / b) (exact
    integer arithmetic). B = 1 is checked with its own program. Raises ValueError when even the
    batch-independent part of some event (B -> 0) exceeds the budget."""
    _check(dtype, optimizer, sdpa_backend)
    t = cfg.context_length if context_length is None else context_length
    sizes = _sizes(cfg, t)
    key = _key(cfg, 2, dtype, optimizer, checkpointing, sdpa_backend, gradient_buckets)
    points = step_points(key)
    lines = [(sum(a for a, _ in lin), sum(b for _, b in lin)) for lin in _points(key, sizes)]
    fixed = max(a for a, _ in lines)
    if fixed > budget:
        raise UserError(f"memory budget {budget:,} bytes is smaller than the weights, AdamW state "
                         f"and the step's batch-independent memory ({fixed:,} bytes)")
    growing = [(Fraction(budget - a, b), i) for i, (a, b) in enumerate(lines) if b > 0]
    if not growing:
        raise ValueError("no event of the step grows with the batch size")
    solution, index = min(growing)  # the event that first exceeds the budget as B grows
    a, b = lines[index]
    batch = (budget - a) // b
    if batch < 2:  # the lines hold for B >= 2; B = 1 runs another program
        batch = 1 if timeline_peak_bytes(cfg, 1, t, dtype, optimizer, checkpointing,
                                         sdpa_backend, gradient_buckets) <= budget else 0
    return Bound(batch, float(solution), a, b, points[index].label, points[index].phase)
