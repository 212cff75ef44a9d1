"""The Transformer block and the decoder-only Transformer LM (CS336 assignment 1).

`TransformerLM`: token_embeddings -> num_layers x TransformerBlock -> ln_final -> lm_head, returning
unnormalized logits (B, T, V). Variants follow `accounting.config.ModelConfig`:
norm ("rmsnorm" | "none"), norm_position ("pre" | "post"), positions ("rope" | "none"),
ffn ("swiglu" | "silu"), attention ("naive" | "sdpa"), tie_embeddings.

Decisions:
  - ln_final is an RMSNorm only when norm="rmsnorm" and norm_position="pre"; otherwise it is an
    identity with no parameters (post-norm: the last block's output is already normalized; with
    no norm there is none).
  - tie_embeddings: lm_head.weight IS token_embeddings.weight (one Parameter, counted once), with
    the embedding's init N(0, 1) truncated at +-3.
  - One RoPE module (non-persistent cos/sin buffers, max_seq_len = context_length) is shared by
    all blocks.

What autograd saves in the forward (measured with saved_tensors_hooks on CPU, float32; per block,
pre-norm, RMSNorm, RoPE, SwiGLU, naive attention; x is (B, T, d); activations in the model dtype
unless said float32; parameters and tensors sharing storage are counted once):
  ln1 (RMSNorm): x32 = x.float() (x itself when float32, a float32 copy otherwise) (B,T,d);
                 rms (B,T,1) float32; the product x32*rms (B,T,d) float32 (saved by the *weight)
  q/k/v_proj:    their shared input ln1(x) (B,T,d) (the cast to the model dtype, a copy only when
                 the dtype is not float32)
  RoPE on q, k:  only cos and sin (T, d_k/2) each, indexed (and cast) per call, so 2 x 2 tensors;
                 with (B, T) token_positions they are (B, 1, T, d_k/2)
  QK^T:          rotated q, rotated k (B,h,T,d_k) each
  mask:          the (T, T) bool causal mask, built per call with torch.tril
  softmax:       e = exp(scores - max) (B,h,T,T); the row sums (B,h,T,1) (the max is detached)
  probs @ V:     probs (B,h,T,T); a contiguous copy of v (B,h,T,d_k) (v is a strided view)
  output_proj:   the head-merged copy (B,T,d)
  ln2:           as ln1, on z = x + attn (B,T,d)
  SwiGLU:        ln2(z) (B,T,d) (shared by w1 and w3); a = W1 x (B,T,d_ff); sigmoid(a) (B,T,d_ff);
                 silu(a) (B,T,d_ff); b = W3 x (B,T,d_ff); silu(a)*b (B,T,d_ff) (input of w2)
  SiLU FFN:      ln2(z); a; sigmoid(a); silu(a) (input of w2)
Plus, once: the token ids (B,T) int64 (embedding), ln_final as an RMSNorm, ln_final's output
(B,T,d) (input of lm_head). The sdpa variant saves torch's own q, k, v (B,h,T,d_k), output
(B,h,T,d_k) and logsumexp (B,h,T) float32 instead of mask/scores/e/probs/v-copy (on CPU; other
backends differ). validation/ measures these exactly.

Activation checkpointing (`activation_checkpointing=True`, off by default): each block runs under
torch.utils.checkpoint (use_reentrant=False) when grad is enabled. The forward then keeps only
each block's input (B,T,d) for the L blocks (plus everything outside the blocks, as above); the
backward reruns one block's forward at a time, holding that block's saved tensors while its
gradient is taken (accounting.checkpointed_activation_bytes, checkpoint_recompute_flops).
Losses and gradients equal the plain model's (same ops, same order).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from accounting.config import VARIANT_CHOICES, ModelConfig
from model.attention import MultiHeadSelfAttention
from model.layers import Embedding, Identity, Linear, RMSNorm, SiLUFFN, SwiGLU
from model.rope import RotaryPositionalEmbedding


def _check(name: str, value: str) -> None:
    if value not in VARIANT_CHOICES[name]:
        raise ValueError(f"{name} must be one of {', '.join(VARIANT_CHOICES[name])}; got {value!r}")


def _norm(kind: str, d_model: int, eps: float, device, dtype) -> nn.Module:
    _check("norm", kind)
    return RMSNorm(d_model, eps=eps, device=device, dtype=dtype) if kind == "rmsnorm" else Identity()


def _ffn(kind: str, d_model: int, d_ff: int, device, dtype) -> nn.Module:
    _check("ffn", kind)
    cls = SwiGLU if kind == "swiglu" else SiLUFFN
    return cls(d_model, d_ff, device=device, dtype=dtype)


class TransformerBlock(nn.Module):
    """One decoder block with submodules `attn`, `ln1`, `ffn`, `ln2`.

    pre-norm:  z = x + attn(ln1(x));  y = z + ffn(ln2(z))
    post-norm: z = ln1(x + attn(x));  y = ln2(z + ffn(z))
    norm="none" makes ln1/ln2 identities. positions="rope" applies RoPE (base `theta`, positions
    < max_seq_len) to Q and K; pass `rope` to share one RoPE module between blocks.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float, *,
                 norm: str = "rmsnorm", norm_position: str = "pre", positions: str = "rope",
                 ffn: str = "swiglu", attention: str = "naive", eps: float = 1e-5,
                 rope: RotaryPositionalEmbedding | None = None, device=None, dtype=None):
        super().__init__()
        _check("norm_position", norm_position)
        _check("positions", positions)
        self.norm_position = norm_position
        if positions == "rope" and rope is None:
            rope = RotaryPositionalEmbedding(theta, d_model // num_heads, max_seq_len, device=device)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, rope=rope if positions == "rope" else None,
                                           attention=attention, device=device, dtype=dtype)
        self.ln1 = _norm(norm, d_model, eps, device, dtype)
        self.ffn = _ffn(ffn, d_model, d_ff, device, dtype)
        self.ln2 = _norm(norm, d_model, eps, device, dtype)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_position == "pre":
            z = x + self.attn(self.ln1(x), token_positions)  # (B, T, d)
            return z + self.ffn(self.ln2(z))  # (B, T, d)
        z = self.ln1(x + self.attn(x, token_positions))  # (B, T, d)
        return self.ln2(z + self.ffn(z))  # (B, T, d)


class TransformerLM(nn.Module):
    """Decoder-only LM: token ids (B, T) int64 -> unnormalized next-token logits (B, T, V).

    Submodules `token_embeddings`, `layers` (ModuleList of TransformerBlock), `ln_final`,
    `lm_head`. `config` is the `ModelConfig` it was built from (or one built from the keyword
    arguments; `eps` is its `norm_eps`). Sequences longer than context_length are rejected (RoPE
    tables stop there). `forward(token_ids, token_positions=None)`: positions default to arange(T).
    `activation_checkpointing` (a plain attribute, may be toggled): recompute each block in backward.
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int,
                 num_heads: int, d_ff: int, rope_theta: float, *, norm: str = "rmsnorm",
                 norm_position: str = "pre", positions: str = "rope", ffn: str = "swiglu",
                 attention: str = "naive", eps: float = 1e-5, tie_embeddings: bool = False,
                 activation_checkpointing: bool = False, device=None, dtype=None):
        super().__init__()
        self.activation_checkpointing = bool(activation_checkpointing)
        self.config = ModelConfig(
            vocab_size=vocab_size, context_length=context_length, d_model=d_model,
            num_layers=num_layers, num_heads=num_heads, d_ff=d_ff, rope_theta=float(rope_theta),
            norm_eps=eps, norm=norm, norm_position=norm_position, positions=positions, ffn=ffn,
            tie_embeddings=tie_embeddings, attention=attention,
        )
        self.token_embeddings = Embedding(vocab_size, d_model, device=device, dtype=dtype)
        rope = (RotaryPositionalEmbedding(rope_theta, d_model // num_heads, context_length, device=device)
                if positions == "rope" else None)
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, context_length, rope_theta, norm=norm,
                             norm_position=norm_position, positions=positions, ffn=ffn,
                             attention=attention, eps=eps, rope=rope, device=device, dtype=dtype)
            for _ in range(num_layers)
        )
        final = norm == "rmsnorm" and norm_position == "pre"
        self.ln_final = _norm("rmsnorm" if final else "none", d_model, eps, device, dtype)
        self.lm_head = Linear(d_model, vocab_size, device=device, dtype=dtype)
        if tie_embeddings:
            self.lm_head.weight = self.token_embeddings.weight

    @classmethod
    def from_config(cls, cfg: ModelConfig, device=None, dtype=None,
                    activation_checkpointing: bool = False) -> "TransformerLM":
        """Build from the shared `ModelConfig`; `model.config` is `cfg` itself."""
        model = cls(cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.num_layers, cfg.num_heads,
                    cfg.d_ff, cfg.rope_theta, norm=cfg.norm, norm_position=cfg.norm_position,
                    positions=cfg.positions, ffn=cfg.ffn, attention=cfg.attention, eps=cfg.norm_eps,
                    tie_embeddings=cfg.tie_embeddings,
                    activation_checkpointing=activation_checkpointing, device=device, dtype=dtype)
        model.config = cfg
        return model

    def forward(self, token_ids: torch.Tensor, token_positions: torch.Tensor | None = None) -> torch.Tensor:
        T = token_ids.shape[-1]
        if T > self.config.context_length:
            raise ValueError(f"sequence length {T} exceeds context_length {self.config.context_length}")
        x = self.token_embeddings(token_ids)  # (B, T, d)
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        for layer in self.layers:
            if recompute:  # keeps only x; reruns the block's forward in backward
                x = checkpoint(layer, x, token_positions, use_reentrant=False)  # (B, T, d)
            else:
                x = layer(x, token_positions)  # (B, T, d)
        return self.lm_head(self.ln_final(x))  # (B, T, V)
