"""Activation memory, "implementation" convention: exactly the bytes the real model's forward
(model/transformer.py) and its loss (model/loss.py cross_entropy) save for backward, as
torch.autograd.graph.saved_tensors_hooks sees them, deduplicated by storage, parameters excluded.

Derived from the model's code and checked tensor by tensor on tiny CPU models (every variant, in
each dtype). Three dtypes: "float32"; "bfloat16", the trainer's mixed precision (torch.autocast over
float32 weights: every matmul's output and the attention math on it are bf16, the residual stream,
RMSNorm and the loss float32, and each Linear saves its own bf16 copy of a float32 input: q, k, v
three copies of ln1's output, w1 and w3 two of ln2's); "bfloat16-pure", a model whose parameters
and activations are bf16 (no autocast; validation measures it), where the projections share one
saved input. s = bytes per element of the matmul outputs (4 float32, 2 either bf16); RMSNorm
internals are float32 (4), token ids and targets int64 (8), the causal mask bool (1). The bf16
copies autocast makes of the weights are not activations (accounting.timeline counts them as the
working copy). Per block (names = the module that saves the tensor first):
  layers.ln1, layers.ln2 (RMSNorm, each):  x.float() (B,T,d), rms (B,T,1), x*rms (B,T,d), all
                                           float32: 8*B*T*d + 4*B*T bytes
  layers.attn.q_proj:  the shared q/k/v input (B,T,d): s*B*T*d; autocast: q_proj, k_proj and
                       v_proj each their bf16 copy of it, 2*B*T*d each
  layers.attn.rope:    cos, sin indexed per call for q and for k, (T, d_k/2) each: 2*T*d_k*s
                       (no B: positions are shared by the batch)
  layers.attn, naive:  q, k as bmm operands (B*h,T,d_k) 2*s*B*T*d; v as a bmm operand (a copy of
                       the transposed view) s*B*T*d; causal mask (T,T) bool T^2; exp(.) and
                       probs 2*s*B*h*T^2; row sum s*B*h*T (the max is detached: not saved)
  layers.attn, sdpa:   q, k, v, output (B,h,T,d_k) 4*s*B*T*d; logsumexp (B,h,T) float32 4*B*h*T
                       (torch's CPU flash kernel; CUDA flash/efficient kernels save the same plus
                       RNG seed/offset scalars, and the efficient kernel pads T of logsumexp to 32)
                       sdpa_backend="math" (the meta device, or fused kernels disabled): float32
                       q*scale, k*scale, v, softmax output: 12*B*T*d + 4*B*h*T^2, whatever the dtype
  layers.attn.output_proj: the head-merged copy (B,T,d): s*B*T*d; with sdpa and no RoPE, q is a
                       transposed view, the kernel's output follows its (B,T,h,d_k) layout and the
                       merge is a view of the saved output: 0 (CPU kernel; on CUDA the flash
                       kernel may do this for every layout: the validation on CUDA will tell)
  layers.ffn.w1:       FFN input (B,T,d) (shared with w3): s*B*T*d; autocast: w1 and w3 (SwiGLU)
                       each their bf16 copy, 2*B*T*d each
  layers.ffn:          SwiGLU: W1x, sigmoid(W1x), silu(W1x), W3x (B,T,d_ff): 4*s*B*T*d_ff;
                       SiLU FFN: W1x, sigmoid(W1x): 2*s*B*T*d_ff
  layers.ffn.w2:       w2's input (B,T,d_ff): s*B*T*d_ff
Once: token_embeddings saves the token ids (B,T) int64 8*B*T; ln_final (pre-norm RMSNorm only)
8*B*T*d + 4*B*T; lm_head its input s*B*T*d; cross_entropy exp(shifted logits) (B,T,V) float32
4*B*T*V (the max is detached, the target logit picked by indexing: neither saves the logits), the
sum-of-exp (B,T) float32 4*B*T, and its two int64 index tensors, the row numbers and the targets,
16*B*T (the targets assumed a separate (B,T) tensor, or a non-contiguous view, which the loss
copies; a contiguous view into a larger batch tensor saves that tensor's whole storage).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from accounting.symbols import B, L, T, V, d, d_ff, h

_F32, _I64, _BOOL = 4, 8, 1


def _rmsnorm() -> sp.Expr:
    return 2 * _F32 * B * T * d + _F32 * B * T  # x.float(), x*rms (B,T,d); rms (B,T,1)


SDPA_BACKENDS = ("fused", "math")
"""Which torch kernel runs attention="sdpa": "fused" (the flash kernel torch picks on CPU; CUDA's
flash / memory-efficient kernels save the same tensors) or "math" (the decomposition torch runs on
the meta device, or when the fused kernels are disabled)."""


def _attention_core(attention: str, s: int, sdpa_backend: str) -> tuple[sp.Expr, str]:
    if attention == "sdpa" and sdpa_backend == "math":
        # The math path upcasts q, k, v to float32, scales q and k, and saves the scaled q, k, the
        # v bmm operand and the softmax output, all float32; its mask is not saved.
        return (3 * _F32 * B * T * d + _F32 * B * h * T**2,
                "sdpa math path: float32 q*scale, k*scale, v, softmax output")
    if attention == "sdpa":
        return 4 * s * B * T * d + _F32 * B * h * T, "sdpa: q, k, v, output, logsumexp (fp32)"
    # The softmax max is taken of x.detach() (model commit 63acca0): no amax node, so neither
    # the masked scores nor the row max are saved.
    return (3 * s * B * T * d + _BOOL * T**2 + 2 * s * B * h * T**2 + s * B * h * T,
            "q, k, v bmm operands; causal mask; exp, probs; row sum")


@lru_cache(maxsize=256)
def implementation_byte_terms(norm: str, norm_position: str, positions: str, ffn: str,
                              tie_embeddings: bool, attention: str, dtype: str,
                              sdpa_backend: str = "fused", single_head: bool = False
                              ) -> tuple[tuple[str, sp.Expr, str], ...]:
    """(name, bytes formula, note) per component, aggregated over the L blocks.

    `tie_embeddings` does not change what is saved (the head's weight is a parameter either way).
    `sdpa_backend` ("fused" | "math", see SDPA_BACKENDS) matters only for attention="sdpa";
    `single_head` (h = 1) only for the fused kernel's merge of heads.
    """
    if sdpa_backend not in SDPA_BACKENDS:
        raise ValueError(f"sdpa_backend must be one of {', '.join(SDPA_BACKENDS)}, got {sdpa_backend!r}")
    s = 4 if dtype == "float32" else 2
    autocast = dtype == "bfloat16"
    rms = norm == "rmsnorm"
    terms: list[tuple[str, sp.Expr, str]] = [("token_embeddings", _I64 * B * T, "token ids, int64")]
    block: list[tuple[str, sp.Expr, str]] = []
    if rms:
        block.append(("layers.ln1", _rmsnorm(), "float32 input, rms, normalized"))
    if autocast:
        block += [(f"layers.attn.{n}_proj", 2 * B * T * d, "its bf16 copy of the q/k/v input")
                  for n in ("q", "k", "v")]
    else:
        block.append(("layers.attn.q_proj", s * B * T * d, "q/k/v input"))
    if positions == "rope":
        block.append(("layers.attn.rope", 2 * s * T * d / h, "cos, sin per call (q and k)"))
    core, note = _attention_core(attention, s, sdpa_backend)
    block.append(("layers.attn", core, note))
    if attention == "sdpa" and sdpa_backend == "fused" and (positions == "none" or single_head):
        # q is then a transposed view (B,T,h,d_k in memory); torch's kernel writes its output in
        # that layout, so merging heads is a view of the saved sdpa output: nothing new saved.
        # With one head, (B,1,T,d_k) -> (B,T,d) is a view whatever the layout.
        block.append(("layers.attn.output_proj", sp.Integer(0), "shares the sdpa output's storage"))
    else:
        block.append(("layers.attn.output_proj", s * B * T * d, "merged heads (a copy)"))
    if rms:
        block.append(("layers.ln2", _rmsnorm(), "float32 input, rms, normalized"))
    if autocast:
        block.append(("layers.ffn.w1", 2 * B * T * d, "its bf16 copy of the FFN input"))
        if ffn == "swiglu":
            block.append(("layers.ffn.w3", 2 * B * T * d, "its bf16 copy of the FFN input"))
    else:
        block.append(("layers.ffn.w1", s * B * T * d, "FFN input"))
    n_ffn = 4 if ffn == "swiglu" else 2
    block.append(("layers.ffn", n_ffn * s * B * T * d_ff,
                  "W1x, sigmoid, silu, W3x" if ffn == "swiglu" else "W1x, sigmoid"))
    block.append(("layers.ffn.w2", s * B * T * d_ff, "w2 input"))
    terms += [(name, L * f, n) for name, f, n in block]
    if rms and norm_position == "pre":
        terms.append(("ln_final", _rmsnorm(), "float32 input, rms, normalized"))
    terms.append(("lm_head", s * B * T * d, "lm_head input"))
    terms.append(("cross_entropy", _F32 * B * T * V + _F32 * B * T + 2 * _I64 * B * T,
                  "fp32 exp(shifted logits); sum of exp; int64 row numbers and targets"))
    return tuple(terms)
