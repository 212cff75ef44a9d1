"""Typed result rows: one component, its sympy formula and its exact value.

A `Row`'s `value` is an exact Python int in the unit `unit` ("params", "flops", "bytes",
"elements"). Component names follow the real model's module paths, aggregated over layers where the
module repeats ("layers.attn.q_proj" is the sum over the L blocks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Row:
    """One component: `name` (module path), `formula` (sympy, in accounting.symbols), `value`
    (exact int in `unit`) and an optional `note` (e.g. "shared with token_embeddings")."""

    name: str
    formula: sp.Expr
    value: int
    unit: str
    note: str = ""


def evaluate(expr: sp.Expr, subs: Mapping[sp.Symbol, int]) -> int:
    """Exact integer value of a size formula at `subs` (raises if it is not an integer)."""
    value = sp.sympify(sp.sympify(expr).xreplace({k: sp.Integer(v) for k, v in subs.items()}))
    if not value.is_Integer:
        raise ValueError(f"formula {expr} is not an integer at these sizes: {value}")
    return int(value)


def make_rows(terms: Iterable[tuple[str, sp.Expr, str]], subs: Mapping[sp.Symbol, int],
              unit: str) -> list[Row]:
    """Rows from (name, formula, note) triples evaluated at `subs`."""
    return [Row(name, sp.sympify(f), evaluate(f, subs), unit, note) for name, f, note in terms]


def total(rows: Iterable[Row]) -> int:
    return sum(r.value for r in rows)
