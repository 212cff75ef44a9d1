"""Activation memory, "implementation" convention: the bytes the real model's forward and its loss
save for backward (torch.autograd.graph.saved_tensors_hooks), deduplicated by storage, excluding
parameters. PROVISIONAL until derived from model/ (being written).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.activations_textbook import textbook_element_terms
from accounting.conventions import DTYPE_BYTES


@lru_cache(maxsize=256)
def implementation_byte_terms(norm: str, norm_position: str, positions: str, ffn: str,
                              tie_embeddings: bool, attention: str, dtype: str
                              ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) per component."""
    size = DTYPE_BYTES[dtype]
    final = norm == "rmsnorm" and norm_position == "pre"
    return tuple((n, size * f, note) for n, f, note in textbook_element_terms(norm, final, ffn, attention))
