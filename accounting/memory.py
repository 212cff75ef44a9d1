"""Peak training memory and the largest batch that fits a budget (solved, not searched).

Peak = weights + gradients + optimizer state + activations, all alive at once (a conservative sum:
at the end of the forward every activation is alive, and from the second step on the gradients and
AdamW state are allocated too). Two precisions (`dtype`):
  - "float32": weights, gradients, AdamW m and v in float32 (4 bytes each); activations of the
    model run in float32.
  - "bfloat16" (mixed precision): float32 master weights, gradients and AdamW m, v (4 + 4 + 8 bytes
    per parameter) plus a bfloat16 working copy of the weights (2 bytes per parameter) that the
    forward and backward read (under torch.autocast: the per-op weight casts the matmuls save);
    activations are those of the model run in bfloat16 (its RMSNorm internals stay float32, token
    ids int64: the activation formulas carry those).
Not counted: the CUDA context, cuBLAS workspaces, allocator fragmentation, temporaries freed
within an op (validation reports them beside these numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import sympy as sp

from accounting.activations import activation_bytes_formula
from accounting.config import ModelConfig
from accounting.conventions import TRAINING_DTYPES
from accounting.errors import UserError
from accounting.parameters import total_parameters_formula
from accounting.rows import Row, evaluate
from accounting.symbols import B, values

# (weights, working copy, gradients, optimizer) bytes per parameter element.
_BYTES_PER_PARAM: dict[str, tuple[int, int, int, int]] = {
    "float32": (4, 0, 4, 8),
    "bfloat16": (4, 2, 4, 8),
}


def _check_dtype(dtype: str) -> None:
    if dtype not in TRAINING_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TRAINING_DTYPES)}, got {dtype!r}")


@lru_cache(maxsize=256)
def memory_terms(cfg: ModelConfig, dtype: str = "float32", convention: str = "implementation"
                 ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note): weights, [bf16 copy], gradients, optimizer, activations."""
    _check_dtype(dtype)
    n = total_parameters_formula(cfg)
    w, copy, g, opt = _BYTES_PER_PARAM[dtype]
    terms: list[tuple[str, sp.Expr, str]] = [("weights", w * n, "float32")]
    if copy:
        terms.append(("weights_bf16_copy", copy * n, "bfloat16 working copy"))
    terms.append(("gradients", g * n, "float32"))
    terms.append(("optimizer_state", opt * n, "AdamW m + v, float32"))
    terms.append(("activations", activation_bytes_formula(cfg, convention, dtype),
                  f"{convention} convention, model run in {dtype}"))
    return tuple(terms)


def peak_memory_formula(cfg: ModelConfig, dtype: str = "float32",
                        convention: str = "implementation") -> sp.Expr:
    """Peak training bytes as a sympy expression (linear in B)."""
    return sp.expand(sp.Add(*(f for _, f, _ in memory_terms(cfg, dtype, convention))))


def memory_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                dtype: str = "float32", convention: str = "implementation") -> list[Row]:
    """Peak-memory components in bytes."""
    subs = values(cfg, batch_size, context_length)
    return [Row(name, f, evaluate(f, subs), "bytes", note)
            for name, f, note in memory_terms(cfg, dtype, convention)]


def peak_memory_bytes(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                      dtype: str = "float32", convention: str = "implementation") -> int:
    return evaluate(peak_memory_formula(cfg, dtype, convention), values(cfg, batch_size, context_length))


@dataclass(frozen=True)
class BatchFit:
    """The largest batch in a budget: `batch_size` = floor(`exact_solution`) of the linear bound."""

    batch_size: int
    exact_solution: float
    budget_bytes: int
    fixed_bytes: int          # weights + gradients + optimizer (independent of B)
    bytes_per_sequence: int   # activation bytes per unit of B
    inequality: str           # "<fixed> + <per_seq>*B <= <budget>"


def largest_batch_size(cfg: ModelConfig, memory_budget_bytes: int, context_length: int | None = None,
                       dtype: str = "float32", convention: str = "implementation") -> BatchFit:
    """Solve peak_memory(B) <= budget for B (sympy, linear in B) and take the floor.

    Raises ValueError when the budget is smaller than the weights, gradients and optimizer state.
    """
    if memory_budget_bytes <= 0:
        raise UserError(f"memory budget must be positive, got {memory_budget_bytes}")
    subs = values(cfg, 1, context_length)
    subs.pop(B)
    peak = sp.expand(peak_memory_formula(cfg, dtype, convention).xreplace(subs))
    per_seq, fixed = int(peak.coeff(B, 1)), int(peak.coeff(B, 0))
    if fixed > memory_budget_bytes:
        raise UserError(f"memory budget {memory_budget_bytes:,} bytes is smaller than the weights, "
                         f"gradients and optimizer state ({fixed:,} bytes)")
    budget = sp.Integer(memory_budget_bytes)
    b_real = sp.Symbol("B_real", positive=True)  # B relaxed to a real to solve, then floored
    (solution,) = sp.solve(sp.Eq(peak.xreplace({B: b_real}), budget), b_real)
    batch = int(sp.floor(solution))
    return BatchFit(batch, float(solution), memory_budget_bytes, fixed, per_seq,
                    f"{fixed} + {per_seq}*B <= {memory_budget_bytes}")

