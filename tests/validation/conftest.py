"""Shared helpers of the validation tests: the rows that must be exact."""

from __future__ import annotations

EXACT = ("parameters", "forward matmul FLOPs", "backward matmul FLOPs", "activations (implementation)",
         "weights", "weights bf16 copy", "gradients", "AdamW state", "AdamW step FLOPs", "memory timeline")
"""Quantities whose measured value must equal the symbolic one, integer for integer."""


def assert_exact(measurement, allowed_reasons=()):
    """Every row of an EXACT quantity equal (or differing for one of `allowed_reasons`), and no
    row anywhere with an unexplained difference."""
    from validation.reasons import UNEXPLAINED

    for row in measurement.rows:
        assert row.reason != UNEXPLAINED, row
        if row.quantity in EXACT and not row.equal:
            assert row.reason in allowed_reasons, row
    assert not measurement.notes, measurement.notes

