"""Shared helpers of the validation tests: tiny configs and the rows that must be exact."""

from __future__ import annotations

import pytest

EXACT = ("parameters", "forward matmul FLOPs", "backward matmul FLOPs", "activations (implementation)",
         "weights", "weights bf16 copy", "gradients", "AdamW state", "AdamW step FLOPs", "memory timeline")
"""Quantities whose measured value must equal the symbolic one, integer for integer."""


def tiny(**variants):
    from accounting.config import ModelConfig

    return ModelConfig(vocab_size=37, context_length=16, d_model=24, num_layers=2, num_heads=3,
                       d_ff=40, **variants)


def assert_exact(measurement, allowed_reasons=()):
    """Every row of an EXACT quantity equal (or differing for one of `allowed_reasons`), and no
    row anywhere with an unexplained difference."""
    from validation.reasons import UNEXPLAINED

    for row in measurement.rows:
        assert row.reason != UNEXPLAINED, row
        if row.quantity in EXACT and not row.equal:
            assert row.reason in allowed_reasons, row
    assert not measurement.notes, measurement.notes


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and leaves cores to others
