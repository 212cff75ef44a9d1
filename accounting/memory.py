"""Peak training memory and the largest batch that fits a budget (solved, not searched).

The peak is the maximum of one steady-state training step's memory timeline (accounting.timeline):
the live bytes after every allocating call of forward, loss, backward, gradient clipping, the
AdamW step and zero_grad(set_to_none=True), as the trainer runs them. It is not the sum of every
component: gradients do not exist during the forward (zero_grad freed them), saved activations are
freed as the backward goes, and transients (the logits, the loss's (B,T,V) gradients, clipping's
and AdamW's temporaries) come and go. `memory_rows` is the peak event's composition by category.

Two precisions (`dtype`, accounting.conventions.TRAINING_DTYPES):
  - "float32": weights, gradients, AdamW m and v and activations in float32.
  - "bfloat16": what the trainer's --dtype bfloat16 runs, torch.autocast(bfloat16) over float32
    master weights, gradients and AdamW state; each Linear's bf16 copy of its weight lives from
    its forward to its backward (the working copy: only the matmul weights, 2 bytes each), and
    the activations are autocast's (accounting.activations_impl).

convention="textbook" keeps the old static estimate: weights + [bf16 copy of the matmul weights] +
gradients + AdamW state + the textbook activations, all at once (linear in B).

Not counted: the CUDA context, cuBLAS workspaces, allocator rounding and caching, workspace inside a
kernel (validation measures and names them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from accounting.activations import activation_bytes_formula
from accounting.config import ModelConfig
from accounting.conventions import ACTIVATION_CONVENTIONS, TRAINING_DTYPES
from accounting.errors import UserError
from accounting.parameters import matmul_parameters_formula, total_parameters_formula
from accounting.rows import Row, evaluate
from accounting.symbols import B, values
from accounting.timeline import largest_batch, memory_timeline

_ROWS = (  # (row name, timeline categories, note)
    ("weights", ("weights",), "float32 parameters, tied once"),
    ("buffers", ("buffers",), "RoPE cos/sin tables, float32"),
    ("weights_bf16_copy", ("weights_bf16_copy",), "autocast's bf16 copies of the matmul weights alive"),
    ("gradients", ("gradients",), "float32 gradients alive (none during the forward)"),
    ("optimizer_state", ("optimizer_state",), "AdamW m + v, float32"),
    ("activations", ("batch", "activations"), "saved for backward and alive, the batch included"),
    ("transients", ("transients",), "everything else alive at the peak (logits, gradients of "
                                    "activations, temporaries)"),
)


def _check(dtype: str, convention: str) -> None:
    if dtype not in TRAINING_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TRAINING_DTYPES)}, got {dtype!r}")
    if convention not in ACTIVATION_CONVENTIONS:
        raise UserError(f"unknown activation convention {convention!r}; "
                         f"choose one of: {', '.join(ACTIVATION_CONVENTIONS)}")


def memory_terms(cfg: ModelConfig, dtype: str = "float32", convention: str = "implementation",
                 batch_size: int = 1, context_length: int | None = None, optimizer: str = "reference",
                 checkpointing: bool = False) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) of the peak: the peak event's categories (implementation; rows
    that are zero in every case are left out: buffers without RoPE, the copy in float32), or the
    static textbook components. Formulas hold at these sizes for every B >= 2 (or at B = 1)."""
    _check(dtype, convention)
    if convention == "textbook":
        return _textbook_terms(cfg, dtype)
    tl = memory_timeline(cfg, batch_size, context_length, dtype, optimizer, checkpointing)
    peak = tl.peak
    out = []
    for name, cats, note in _ROWS:
        if name == "buffers" and cfg.positions != "rope" or name == "weights_bf16_copy" and dtype != "bfloat16":
            continue
        formula = sp.expand(sum((tl.formula(peak, c) for c in cats), sp.Integer(0)))
        out.append((name, formula, f"{note}; at the peak: {peak.phase}, {peak.name}"))
    return tuple(out)


@lru_cache(maxsize=128)
def _textbook_terms(cfg: ModelConfig, dtype: str) -> tuple[tuple[str, sp.Expr, str], ...]:
    n = total_parameters_formula(cfg)
    terms: list[tuple[str, sp.Expr, str]] = [("weights", 4 * n, "float32")]
    if dtype == "bfloat16":
        terms.append(("weights_bf16_copy", 2 * matmul_parameters_formula(cfg), "bf16 copies of the matmul weights"))
    terms.append(("gradients", 4 * n, "float32"))
    terms.append(("optimizer_state", 8 * n, "AdamW m + v, float32"))
    terms.append(("activations", activation_bytes_formula(cfg, "textbook", dtype),
                  "textbook convention; every component counted at once"))
    return tuple(terms)


def peak_memory_formula(cfg: ModelConfig, dtype: str = "float32", convention: str = "implementation",
                        batch_size: int = 1, context_length: int | None = None,
                        optimizer: str = "reference", checkpointing: bool = False) -> sp.Expr:
    """The peak's bytes as a sympy expression (linear in B): the formula of the event that is the
    peak at `batch_size` (another event may be the peak at other sizes: the peak is a maximum)."""
    terms = memory_terms(cfg, dtype, convention, batch_size, context_length, optimizer, checkpointing)
    return sp.expand(sp.Add(*(f for _, f, _ in terms)))


def memory_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                dtype: str = "float32", convention: str = "implementation",
                optimizer: str = "reference", checkpointing: bool = False) -> list[Row]:
    """The peak's composition in bytes (see memory_terms)."""
    subs = values(cfg, batch_size, context_length)
    return [Row(name, f, evaluate(f, subs), "bytes", note) for name, f, note in
            memory_terms(cfg, dtype, convention, batch_size, context_length, optimizer, checkpointing)]


def peak_memory_bytes(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                      dtype: str = "float32", convention: str = "implementation",
                      optimizer: str = "reference", checkpointing: bool = False,
                      sdpa_backend: str = "fused", gradient_buckets: bool = False) -> int:
    """The step's peak bytes: the timeline's maximum (textbook: the static sum). `sdpa_backend`
    (accounting.timeline.memory_timeline): "math" for attention="sdpa" run as torch's math
    decomposition (CPU with dropout); `gradient_buckets`: one DDP rank's step (the timeline's)."""
    _check(dtype, convention)
    if convention == "textbook":
        subs = values(cfg, batch_size, context_length)
        return sum(evaluate(f, subs) for _, f, _ in _textbook_terms(cfg, dtype))
    return memory_timeline(cfg, batch_size, context_length, dtype, optimizer, checkpointing,
                           sdpa_backend, gradient_buckets).peak_bytes


@dataclass(frozen=True)
class BatchFit:
    """The largest batch in a budget: `batch_size` = floor(`exact_solution`) of the binding event's
    line `fixed_bytes + bytes_per_sequence * B <= budget` (the first event of the step to exceed
    the budget as B grows: `event`, in `phase`)."""

    batch_size: int
    exact_solution: float
    budget_bytes: int
    fixed_bytes: int          # the binding event's bytes at B = 0
    bytes_per_sequence: int   # and per unit of B
    inequality: str           # "<fixed> + <per_seq>*B <= <budget>"
    event: str = ""
    phase: str = ""


def largest_batch_size(cfg: ModelConfig, memory_budget_bytes: int, context_length: int | None = None,
                       dtype: str = "float32", convention: str = "implementation",
                       optimizer: str = "reference", checkpointing: bool = False,
                       sdpa_backend: str = "fused", gradient_buckets: bool = False) -> BatchFit:
    """The largest B with peak(B) <= budget. The peak is the maximum of the timeline's events, each
    linear in B, so the peak fits iff every event does: B = min over events of
    floor((budget - fixed) / per_sequence), exact integer arithmetic (textbook: one line, solved).

    Raises ValueError when the budget is smaller than the memory the step needs before any
    sequence (weights, AdamW state, and gradients with their temporaries)."""
    _check(dtype, convention)
    if memory_budget_bytes <= 0:
        raise UserError(f"memory budget must be positive, got {memory_budget_bytes}")
    if convention == "textbook":
        return _textbook_fit(cfg, memory_budget_bytes, context_length, dtype)
    bound = largest_batch(cfg, memory_budget_bytes, context_length, dtype, optimizer, checkpointing,
                          sdpa_backend, gradient_buckets)
    return BatchFit(bound.batch_size, bound.exact_solution, memory_budget_bytes, bound.fixed_bytes,
                    bound.bytes_per_sequence,
                    f"{bound.fixed_bytes} + {bound.bytes_per_sequence}*B <= {memory_budget_bytes}",
                    bound.event, bound.phase)


def _textbook_fit(cfg: ModelConfig, budget: int, context_length: int | None, dtype: str) -> BatchFit:
    subs = values(cfg, 1, context_length)
    subs.pop(B)
    peak = sp.expand(sp.Add(*(f for _, f, _ in _textbook_terms(cfg, dtype))).xreplace(subs))
    per_seq, fixed = int(peak.coeff(B, 1)), int(peak.coeff(B, 0))
    if fixed > budget:
        raise UserError(f"memory budget {budget:,} bytes is smaller than the weights, "
                         f"gradients and optimizer state ({fixed:,} bytes)")
    solution = sp.Rational(budget - fixed, per_seq)
    return BatchFit(int(sp.floor(solution)), float(solution), budget, fixed, per_seq,
                    f"{fixed} + {per_seq}*B <= {budget}", "every component at once", "")
