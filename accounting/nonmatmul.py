"""Non-matmul forward FLOPs (norms, RoPE, softmax, SiLU/gating, residual adds, cross-entropy), an
optional term costed per element by accounting.conventions.ELEMENTWISE_FLOPS.
PROVISIONAL until derived from model/ (being written).
"""

from __future__ import annotations

from accounting.config import ModelConfig
from accounting.rows import Row


def nonmatmul_forward_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> list[Row]:
    """Non-matmul forward FLOPs per component (unit "flops")."""
    return []


def nonmatmul_forward_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Total non-matmul forward FLOPs (the optional term)."""
    return sum(r.value for r in nonmatmul_forward_rows(cfg, batch_size, context_length))
