"""Activation memory of one training step (bytes saved by the forward for backward), by convention.

Two conventions side by side (accounting.conventions):
  - "implementation": exactly what the real model + loss save (accounting.activations_impl);
  - "textbook": the CS336 list (accounting.activations_textbook), elements x bytes of the dtype.
Both are linear in B. Activation checkpointing per block keeps only each block's input for the L
blocks, plus one block's full activations while it is recomputed in backward, and costs one extra
forward of the blocks (`checkpoint_recompute_flops`).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.conventions import ACTIVATION_CONVENTIONS, ACTIVATION_DTYPES, element_bytes
from accounting.errors import UserError
from accounting.flops import forward_terms
from accounting.activations_impl import implementation_byte_terms
from accounting.activations_textbook import textbook_element_terms
from accounting.parameters import has_final_norm
from accounting.rows import Row, evaluate, make_rows
from accounting.symbols import B, L, T, d, values


def _check(convention: str, dtype: str) -> None:
    if convention not in ACTIVATION_CONVENTIONS:
        raise UserError(f"unknown activation convention {convention!r}; "
                         f"choose one of: {', '.join(ACTIVATION_CONVENTIONS)}")
    if dtype not in ACTIVATION_DTYPES:
        raise UserError(f"activation dtype must be one of {', '.join(ACTIVATION_DTYPES)}, got {dtype!r}")


def activation_terms(cfg: ModelConfig, convention: str = "implementation", dtype: str = "float32",
                     sdpa_backend: str = "fused") -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) per component for a model run in `dtype` ("float32",
    "bfloat16" = autocast mixed precision, "bfloat16-pure"; see ACTIVATION_DTYPES). `sdpa_backend`
    ("fused" | "math") picks which torch kernel's saved tensors attention="sdpa" is counted with
    (implementation convention only; see accounting.activations_impl)."""
    _check(convention, dtype)
    if convention == "implementation":
        return implementation_byte_terms(cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn,
                                         cfg.tie_embeddings, cfg.attention, dtype, sdpa_backend,
                                         cfg.num_heads == 1, cfg.dropout > 0)
    size = element_bytes(dtype)
    terms = textbook_element_terms(cfg.norm, has_final_norm(cfg), cfg.ffn, cfg.attention,
                                   cfg.dropout > 0)
    return tuple((n, size * f, note) for n, f, note in terms)


@lru_cache(maxsize=256)
def _total_formula(cfg: ModelConfig, convention: str, dtype: str, sdpa_backend: str = "fused") -> sp.Expr:
    return sp.expand(sp.Add(*(f for _, f, _ in activation_terms(cfg, convention, dtype, sdpa_backend))))


def activation_bytes_formula(cfg: ModelConfig, convention: str = "implementation",
                             dtype: str = "float32", sdpa_backend: str = "fused") -> sp.Expr:
    """Total activation bytes as a sympy expression in B, T (and the model sizes)."""
    return _total_formula(cfg, convention, dtype, sdpa_backend)


def activation_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                    convention: str = "implementation", dtype: str = "float32",
                    sdpa_backend: str = "fused") -> list[Row]:
    """Activation bytes per component (unit "bytes")."""
    terms = activation_terms(cfg, convention, dtype, sdpa_backend)
    return make_rows(terms, values(cfg, batch_size, context_length), "bytes")


def activation_bytes(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                     convention: str = "implementation", dtype: str = "float32",
                     sdpa_backend: str = "fused") -> int:
    """Bytes the forward (+ loss) keeps for backward, for B sequences of T tokens.

    sdpa_backend="math" counts attention="sdpa" as torch's math decomposition (what runs on the
    meta device); "fused" as its flash kernel (CPU, and CUDA's flash / efficient kernels)."""
    formula = _total_formula(cfg, convention, dtype, sdpa_backend)
    return evaluate(formula, values(cfg, batch_size, context_length))


def _block_share(formula: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Split a formula into (per-block part, rest): the per-block part is d/dL (terms linear in L)."""
    expanded = sp.expand(formula)
    per_block = sp.diff(expanded, L)
    return per_block, sp.expand(expanded - L * per_block)


def checkpointed_activation_bytes_formula(cfg: ModelConfig, convention: str = "implementation",
                                          dtype: str = "float32") -> sp.Expr:
    """Per-block checkpointing: the L block inputs (B*T*d each: float32, the residual stream, also
    under autocast; bf16 in a pure-bf16 model) + one block's activations (recomputed in backward) +
    everything outside the blocks (embedding, final norm, head, loss)."""
    per_block, outside = _block_share(_total_formula(cfg, convention, dtype))
    return L * B * T * d * (2 if dtype == "bfloat16-pure" else 4) + per_block + outside


def checkpointed_activation_bytes(cfg: ModelConfig, batch_size: int, context_length: int | None = None,
                                  convention: str = "implementation", dtype: str = "float32") -> int:
    formula = checkpointed_activation_bytes_formula(cfg, convention, dtype)
    return evaluate(formula, values(cfg, batch_size, context_length))


def checkpoint_recompute_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Extra forward matmul FLOPs of per-block checkpointing (torch.utils.checkpoint, non-reentrant,
    early stop on: torch's default): every block's forward once more, except a matmul whose output
    nothing saves for backward. A block that ends in `z + W2(...)` (pre-norm, or no norm) has its
    last W2 matmul skipped by the early stop; a post-norm RMSNorm saves its input, so there the
    whole block is rerun."""
    skip_w2 = not (cfg.norm == "rmsnorm" and cfg.norm_position == "post")
    blocks = sp.Add(*(f for n, f, _ in forward_terms(cfg.ffn)
                      if n.startswith("layers.") and not (skip_w2 and n == "layers.ffn.w2")))
    return evaluate(blocks, values(cfg, batch_size, context_length))
