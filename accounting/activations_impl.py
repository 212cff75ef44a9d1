"""Activation memory, "implementation" convention: exactly the bytes the real model's forward
(model/transformer.py) and its loss (model/loss.py cross_entropy) save for backward, as
torch.autograd.graph.saved_tensors_hooks sees them, deduplicated by storage, parameters excluded.

Derived from the model's code and checked tensor by tensor on tiny CPU models (every variant, in
each dtype). Three dtypes: "float32"; "bfloat16", the trainer's mixed precision (torch.autocast over
float32 weights: every matmul's output and the attention math on it are bf16, the residual stream,
norms and the loss float32, and each Linear saves its own bf16 copy of a float32 input: q, k, v
three copies of ln1's output, w1 and w3 two of ln2's); "bfloat16-pure", a model whose parameters
and activations are bf16 (no autocast; validation measures it), where the projections share one
saved input. s = bytes per element of the matmul outputs (4 float32, 2 either bf16); norm
internals are float32 (4), token ids and targets int64 (8), the causal mask and dropout masks bool
(1). The bf16 copies autocast makes of the weights are not activations (accounting.timeline counts
them as the working copy). Biases save nothing
(their adds need no input for backward). Per block (names = the module that saves the tensor
first):
  layers.ln1, layers.ln2 (each):  RMSNorm: x.float() (B,T,d), rms (B,T,1), x*rms (B,T,d);
                                  LayerNorm: x - mean (B,T,d), rstd (B,T,1), (x - mean)*rstd
                                  (B,T,d); all float32: 8*B*T*d + 4*B*T bytes either way
  layers.attn.q_proj:  the shared q/k/v input (B,T,d): s*B*T*d; autocast: q_proj, k_proj and
                       v_proj each their bf16 copy of it, 2*B*T*d each
  layers.attn.rope:    cos, sin indexed per call for q and for k, (T, d_k/2) each: 2*T*d_k*s
                       (no B: positions are shared by the batch)
  layers.attn, naive:  q, k as bmm operands (B*h,T,d_k) 2*s*B*T*d; v as a bmm operand (a copy of
                       the transposed view) s*B*T*d (grouped-query: k and v are first repeated to
                       h heads, and those copies are the operands: the same bytes); causal mask
                       (T,T) bool T^2; exp(.) and probs 2*s*B*h*T^2; row sum s*B*h*T (the max is
                       detached: not saved)
  layers.attn.attn_dropout (dropout > 0, naive): the keep mask (B,h,T,T) bool B*h*T^2 (the
                       dropped weights replace probs as the matmul's operand: same bytes)
  layers.attn, sdpa:   q, output (B,h,T,d_k) 2*s*B*T*d; k, v at their h_kv heads (B,h_kv,T,d_k)
                       2*s*B*T*d*h_kv/h (the kernel shares them across a group of query heads);
                       logsumexp (B,h,T) float32 4*B*h*T
                       (torch's CPU flash kernel; CUDA flash/efficient kernels save the same plus
                       RNG seed/offset scalars, and the efficient kernel pads T of logsumexp to 32)
                       sdpa_backend="math" (the meta device, torch's CPU kernel with dropout, or
                       fused kernels disabled): float32 q*scale, k*scale, v, softmax output:
                       12*B*T*d + 4*B*h*T^2, whatever the dtype (k and v repeated to h heads
                       first under grouped-query attention); with dropout also its float32 mask
                       and the dropped weights, 8*B*h*T^2 (CUDA's fused kernels regenerate the
                       mask from the RNG state instead: nothing more)
  layers.attn.output_proj: the head-merged copy (B,T,d): s*B*T*d; with sdpa and no RoPE, q is a
                       transposed view, the kernel's output follows its (B,T,h,d_k) layout and the
                       merge is a view of the saved output: 0 (CPU kernel; on CUDA the flash
                       kernel may do this for every layout: the validation on CUDA will tell)
  layers.ffn.w1:       FFN input (B,T,d) (shared with w3): s*B*T*d; autocast: w1 and w3 (SwiGLU)
                       each their bf16 copy, 2*B*T*d each
  layers.ffn:          SwiGLU: W1x, sigmoid(W1x), silu(W1x), W3x (B,T,d_ff): 4*s*B*T*d_ff;
                       SiLU FFN: W1x, sigmoid(W1x): 2*s*B*T*d_ff;
                       GELU (tanh form): W1x, tanh(.), 0.5*W1x, 1 + tanh(.): 4*s*B*T*d_ff
  layers.ffn.w2:       w2's input (B,T,d_ff): s*B*T*d_ff
  layers.drop1, drop2 (dropout > 0): the keep masks on the two residual branches, 2*B*T*d bool
Once: token_embeddings saves the token ids (B,T) int64 8*B*T; position_embeddings (learned) the
positions (T,) int64 8*T; embedding_dropout (dropout > 0) its mask B*T*d bool; ln_final
(pre-norm with a norm) 8*B*T*d + 4*B*T; lm_head its input s*B*T*d; cross_entropy exp(shifted logits) (B,T,V) float32
4*B*T*V (the max is detached, the target logit picked by indexing: neither saves the logits), the
sum-of-exp (B,T) float32 4*B*T, and its two int64 index tensors, the row numbers and the targets,
16*B*T (the targets assumed a separate (B,T) tensor, or a non-contiguous view, which the loss
copies; a contiguous view into a larger batch tensor saves that tensor's whole storage).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.symbols import B, L, T, V, d, d_ff, h, h_kv

_F32, _I64, _BOOL = 4, 8, 1


def _norm() -> sp.Expr:
    """RMSNorm and LayerNorm alike: two float32 (B,T,d) tensors and one (B,T,1)."""
    return 2 * _F32 * B * T * d + _F32 * B * T


SDPA_BACKENDS = ("fused", "math")
"""Which torch kernel runs attention="sdpa": "fused" (the flash kernel torch picks on CPU without
dropout; CUDA's flash / memory-efficient kernels save the same tensors) or "math" (the
decomposition torch runs on the meta device, on CPU with dropout, or when the fused kernels are
disabled)."""



def _attention_core(attention: str, s: int, sdpa_backend: str, dropout: bool) -> tuple[sp.Expr, str]:
    if attention == "sdpa" and sdpa_backend == "math":
        # The math path upcasts q, k, v to float32, scales q and k, and saves the scaled q, k, the
        # v bmm operand and the softmax output, all float32; its causal mask is not saved. With
        # dropout it also saves its float32 mask and the dropped weights (the bmm operand).
        extra = 2 * _F32 * B * h * T**2 if dropout else 0
        return (3 * _F32 * B * T * d + _F32 * B * h * T**2 + extra,
                "sdpa math path: float32 q*scale, k*scale, v, softmax output"
                + ("; float32 dropout mask, dropped weights" if dropout else ""))
    if attention == "sdpa":
        return (2 * s * B * T * d + 2 * s * B * T * d * h_kv / h + _F32 * B * h * T,
                "sdpa: q, output; k, v at h_kv heads; logsumexp (fp32)")
    # The softmax max is taken of x.detach() (model commit 63acca0): no amax node, so neither
    # the masked scores nor the row max are saved.
    return (3 * s * B * T * d + _BOOL * T**2 + 2 * s * B * h * T**2 + s * B * h * T,
            "q, k, v bmm operands; causal mask; exp, probs; row sum")


_FFN_SAVED = {"swiglu": (4, "W1x, sigmoid, silu, W3x"), "silu": (2, "W1x, sigmoid"),
              "gelu": (4, "W1x, tanh, 0.5*W1x, 1 + tanh")}
"""(d_ff-wide tensors the FFN's activation saves, what they are)."""


@lru_cache(maxsize=256)
def implementation_byte_terms(norm: str, norm_position: str, positions: str, ffn: str,
                              tie_embeddings: bool, attention: str, dtype: str,
                              sdpa_backend: str = "fused", single_head: bool = False,
                              dropout: bool = False) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) per component, aggregated over the L blocks.

    `tie_embeddings` does not change what is saved (the head's weight is a parameter either way),
    nor do biases. `sdpa_backend` ("fused" | "math", see SDPA_BACKENDS) matters only for
    attention="sdpa"; `single_head` (h = 1) only for the fused kernel's merge of heads;
    `dropout`: whether p > 0 (the masks' bytes do not depend on p).
    """
    if sdpa_backend not in SDPA_BACKENDS:
        raise ValueError(f"sdpa_backend must be one of {', '.join(SDPA_BACKENDS)}, got {sdpa_backend!r}")
    s = 4 if dtype == "float32" else 2
    autocast = dtype == "bfloat16"
    normed = norm != "none"
    norm_note = "float32 centered input, rstd, normalized" if norm == "layernorm" else \
        "float32 input, rms, normalized"
    terms: list[tuple[str, sp.Expr, str]] = [("token_embeddings", _I64 * B * T, "token ids, int64")]
    if positions == "learned":
        terms.append(("position_embeddings", _I64 * T, "positions, int64 (shared by the batch)"))
    if dropout:
        terms.append(("embedding_dropout", _BOOL * B * T * d, "keep mask, bool"))
    block: list[tuple[str, sp.Expr, str]] = []
    if normed:
        block.append(("layers.ln1", _norm(), norm_note))
    if autocast:
        block += [(f"layers.attn.{n}_proj", 2 * B * T * d, "its bf16 copy of the q/k/v input")
                  for n in ("q", "k", "v")]
    else:
        block.append(("layers.attn.q_proj", s * B * T * d, "q/k/v input"))
    if positions == "rope":
        block.append(("layers.attn.rope", 2 * s * T * d / h, "cos, sin per call (q and k)"))
    core, note = _attention_core(attention, s, sdpa_backend, dropout)
    block.append(("layers.attn", core, note))
    if dropout and attention == "naive":
        block.append(("layers.attn.attn_dropout", _BOOL * B * h * T**2, "keep mask, bool"))
    if attention == "sdpa" and sdpa_backend == "fused" and (positions != "rope" or single_head):
        # q is then a transposed view (B,T,h,d_k in memory); torch's kernel writes its output in
        # that layout, so merging heads is a view of the saved sdpa output: nothing new saved.
        # With one head, (B,1,T,d_k) -> (B,T,d) is a view whatever the layout.
        block.append(("layers.attn.output_proj", sp.Integer(0), "shares the sdpa output's storage"))
    else:
        block.append(("layers.attn.output_proj", s * B * T * d, "merged heads (a copy)"))
    if dropout:
        block.append(("layers.drop1", _BOOL * B * T * d, "keep mask, bool"))
    if normed:
        block.append(("layers.ln2", _norm(), norm_note))
    if autocast:
        block.append(("layers.ffn.w1", 2 * B * T * d, "its bf16 copy of the FFN input"))
        if ffn == "swiglu":
            block.append(("layers.ffn.w3", 2 * B * T * d, "its bf16 copy of the FFN input"))
    else:
        block.append(("layers.ffn.w1", s * B * T * d, "FFN input"))
    n_ffn, ffn_note = _FFN_SAVED[ffn]
    block.append(("layers.ffn", n_ffn * s * B * T * d_ff, ffn_note))
    block.append(("layers.ffn.w2", s * B * T * d_ff, "w2 input"))
    if dropout:
        block.append(("layers.drop2", _BOOL * B * T * d, "keep mask, bool"))
    terms += [(name, L * f, n) for name, f, n in block]
    if normed and norm_position == "pre":
        terms.append(("ln_final", _norm(), norm_note))
    terms.append(("lm_head", s * B * T * d, "lm_head input"))
    terms.append(("cross_entropy", _F32 * B * T * V + _F32 * B * T + 2 * _I64 * B * T,
                  "fp32 exp(shifted logits); sum of exp; int64 row numbers and targets"))
    return tuple(terms)
