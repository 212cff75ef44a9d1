"""Activation memory, "textbook" convention (CS336 assignment 1, adamwAccounting).

Elements kept for backward, per block and sequence, each counted once:
  RMSNorms           2 * T*d       (ln1, ln2 outputs; none when norm="none")
  Q, K, V            T*d + 2 * T*d*h_kv/h   (K and V at the h_kv key/value heads)
  QK^T               h * T*T       (naive attention only)
  softmax            h * T*T       (naive attention only; sdpa keeps a logsumexp, h*T, instead)
  weighted sum       T*d
  output projection  T*d
  W1                 T*d_ff
  SiLU / GELU        T*d_ff        (the FFN's activation output)
  W3                 T*d_ff        (SwiGLU only)
  W2                 T*d
  dropout masks      h*T*T (attention weights) + 2*T*d (residual branches)   (dropout > 0)
and once: embedding dropout mask T*d (dropout > 0), final norm T*d (when the model has
ln_final), output embedding (logits) T*V, cross-entropy on the logits T*V. Every element costs
the run dtype's bytes (a mask too: the textbook counts elements, not storage types).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.symbols import B, L, T, V, d, d_ff, h, h_kv


@lru_cache(maxsize=256)
def textbook_element_terms(norm: str, final_norm: bool, ffn: str, attention: str,
                           dropout: bool = False) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, element-count formula, note), aggregated over the L blocks."""
    terms: list[tuple[str, sp.Expr, str]] = []
    if dropout:
        terms.append(("embedding_dropout", B * T * d, "mask"))
    if norm != "none":
        terms.append(("layers.ln1+ln2", L * 2 * B * T * d, "norm outputs"))
    terms.append(("layers.attn.qkv", L * B * T * d * (1 + 2 * h_kv / h), "Q, K, V"))
    if attention == "naive":
        terms.append(("layers.attn.scores", L * B * h * T * T, "QK^T"))
        terms.append(("layers.attn.softmax", L * B * h * T * T, "attention weights"))
    else:
        terms.append(("layers.attn.logsumexp", L * B * h * T, "fused kernel's row statistics"))
    terms.append(("layers.attn.weighted_values", L * B * T * d, ""))
    terms.append(("layers.attn.output_proj", L * B * T * d, ""))
    terms.append(("layers.ffn.w1", L * B * T * d_ff, ""))
    act = "gelu" if ffn == "gelu" else "silu"
    terms.append((f"layers.ffn.{act}", L * B * T * d_ff, "the activation's output"))
    if ffn == "swiglu":
        terms.append(("layers.ffn.w3", L * B * T * d_ff, ""))
    terms.append(("layers.ffn.w2", L * B * T * d, ""))
    if dropout:
        terms.append(("layers.dropout", L * (B * h * T * T + 2 * B * T * d),
                      "masks: attention weights, two residual branches"))
    if final_norm:
        terms.append(("ln_final", B * T * d, ""))
    terms.append(("lm_head", B * T * V, "logits"))
    terms.append(("cross_entropy", B * T * V, "softmax of the logits"))
    return tuple(terms)
