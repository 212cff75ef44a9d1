"""Matmul FLOPs of one training step, per component, as sympy formulas in B, T, L, d, d_ff, V.

Conventions (accounting.conventions): 2*m*n*p per matmul; causal attention counted dense; backward
= 2x forward per matmul (dL/dX and dL/dW, each a matmul of the forward's size; for the attention
core, dL/dQ and dL/dK from the scores, dL/dP and dL/dV from the weighted values). Token embedding
lookup, norms, softmax, RoPE and activations are not matmuls (see accounting.nonmatmul).

Forward, per block and sequence of T tokens:
  q, output projections      2*T*d*d each        (T x d) @ (d x d)
  k, v projections           2*T*d*d*h_kv/h each (T x d) @ (d x h_kv*d_k)   (grouped-query)
  attn.scores   Q K^T        2*T*T*d             h heads of (T x d/h) @ (d/h x T) (every query head,
  attn.weighted_values  P V  2*T*T*d             h heads of (T x T) @ (T x d/h)   whatever h_kv)
  ffn.w1, w3 (d -> d_ff), w2 (d_ff -> d)  2*T*d*d_ff each
and once: lm_head 2*T*d*V.

torch's fused attention kernels (sdpa on CUDA: flash / memory-efficient) recompute the scores in
backward: `attention_recompute_flops` (2*B*T*T*d per block) is reported beside the step, not in it.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.config import ModelConfig
from accounting.parameters import (
    ATTENTION_PROJECTIONS, ffn_matrices, matmul_parameters_formula, non_embedding_parameters_formula, projection_width,
)
from accounting.rows import Row, evaluate, make_rows
from accounting.symbols import B, L, T, V, d, d_ff, values

ATTENTION_CORE = ("layers.attn.scores", "layers.attn.weighted_values")
"""Components of the attention core (the T^2 terms)."""


@lru_cache(maxsize=64)
def forward_terms(ffn: str) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, forward FLOPs formula, note), aggregated over the L blocks."""
    terms: list[tuple[str, sp.Expr, str]] = [
        (f"layers.attn.{p}", L * 2 * B * T * d * projection_width(p), "") for p in ATTENTION_PROJECTIONS
    ]
    terms.append(("layers.attn.scores", L * 2 * B * T * T * d, "QK^T, dense"))
    terms.append(("layers.attn.weighted_values", L * 2 * B * T * T * d, "softmax(.) V, dense"))
    terms += [(f"layers.ffn.{w}", L * 2 * B * T * d * d_ff, "") for w in ffn_matrices(ffn)]
    terms.append(("lm_head", 2 * B * T * d * V, ""))
    return tuple(terms)


def forward_flops_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> list[Row]:
    """Forward matmul FLOPs per component (unit "flops")."""
    return make_rows(forward_terms(cfg.ffn), values(cfg, batch_size, context_length), "flops")


def backward_flops_rows(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> list[Row]:
    """Backward matmul FLOPs per component: 2x forward (grad wrt input + grad wrt weight)."""
    terms = [(n, 2 * f, "dL/dX + dL/dW") for n, f, _ in forward_terms(cfg.ffn)]
    return make_rows(terms, values(cfg, batch_size, context_length), "flops")


@lru_cache(maxsize=64)
def forward_flops_formula(ffn: str) -> sp.Expr:
    return sp.Add(*(f for _, f, _ in forward_terms(ffn)))


def forward_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Forward matmul FLOPs of the whole model for B sequences of T tokens."""
    return evaluate(forward_flops_formula(cfg.ffn), values(cfg, batch_size, context_length))


def train_step_flops_formula(cfg: ModelConfig) -> sp.Expr:
    """Forward + backward matmul FLOPs (3x forward); the optimizer step is separate."""
    return 3 * forward_flops_formula(cfg.ffn)


def train_step_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Exact matmul FLOPs of one training step (forward + backward, no optimizer)."""
    return 3 * forward_flops(cfg, batch_size, context_length)


def attention_recompute_flops(cfg: ModelConfig, batch_size: int, context_length: int | None = None) -> int:
    """Scores recomputed in a fused (flash / memory-efficient) attention backward: L*2*B*T*T*d."""
    return evaluate(L * 2 * B * T * T * d, values(cfg, batch_size, context_length))


def kaplan_6nd_formula(cfg: ModelConfig) -> sp.Expr:
    """6*N*D with N = non-embedding parameters (Kaplan et al. 2020), D = B*T tokens."""
    return 6 * non_embedding_parameters_formula(cfg) * B * T


def palm_formula(cfg: ModelConfig) -> sp.Expr:
    """(6*N + 12*L*d*T) * B*T (PaLM, Chowdhery et al. 2022, App. B) with N = matmul parameters
    (projections, FFN and LM head, the head counted even when tied; no embeddings, no norm gains).
    Under this package's conventions it equals the exact training-step matmul FLOPs."""
    return (6 * matmul_parameters_formula(cfg) + 12 * L * d * T) * B * T
