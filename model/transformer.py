"""The Transformer block and the decoder-only Transformer LM (CS336 assignment 1, and the original
GPT-2 and Llama blocks as variants).

`TransformerLM`: token_embeddings (+ position_embeddings) -> dropout -> num_layers x
TransformerBlock -> ln_final -> lm_head, returning unnormalized logits (B, T, V). Variants follow
`accounting.config.ModelConfig`: norm ("rmsnorm" | "layernorm" | "none"), norm_position
("pre" | "post"), positions ("rope" | "learned" | "none"), ffn ("swiglu" | "silu" | "gelu"),
bias ("none" | "qkv" | "attention" | "all"), attention ("naive" | "sdpa"), num_kv_heads,
tie_embeddings, dropout.

Decisions:
  - ln_final is the block's norm only when norm_position="pre"; otherwise it is an identity with
    no parameters (post-norm: the last block's output is already normalized; with no norm there
    is none).
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
backends differ). The other variants (LayerNorm, GELU, learned positions, biases, dropout masks,
grouped-query attention) are listed with their saved tensors in accounting.activations_impl;
validation/ measures all of them exactly.

Activation checkpointing (`TransformerLM(cfg, activation_checkpointing=True)`, off by default):
each block runs under torch.utils.checkpoint (use_reentrant=False) when grad is enabled. The
forward then keeps only each block's input (B,T,d) for the L blocks (plus everything outside the
blocks, as above); the backward reruns one block's forward at a time, holding that block's saved tensors while its
gradient is taken (accounting.checkpointed_activation_bytes, checkpoint_recompute_flops).
Losses and gradients equal the plain model's (same ops, same order).

Randomness: `TransformerLM(cfg, generator=g)` draws the initial weights and every dropout mask
from the torch.Generator `g` (on the model's device) instead of torch's default generator, so a
run is reproducible whatever else the process runs; with checkpointing, the recompute redraws
the forward's masks from g's saved state. One exception: attention="sdpa" with dropout > 0 draws
its attention-dropout mask inside torch's kernel, from the default generator (the kernel takes
no generator).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from accounting.config import ModelConfig
from accounting.errors import UserError
from model.attention import MultiHeadSelfAttention
from model.kv_cache import KVCache, LayerKV
from model.layers import (
    MLP, Dropout, Embedding, Identity, LayerNorm, LearnedPositions, Linear, RMSNorm, SwiGLU,
    gelu_tanh, init_generator, silu,
)
from model.rope import RotaryPositionalEmbedding


def _norm(cfg: ModelConfig, device, dtype, kind: str | None = None) -> nn.Module:
    kind = cfg.norm if kind is None else kind
    norms = {"rmsnorm": RMSNorm, "layernorm": LayerNorm}
    return norms[kind](cfg.d_model, eps=cfg.norm_eps, device=device, dtype=dtype) if kind in norms \
        else Identity()


def _ffn(cfg: ModelConfig, device, dtype) -> nn.Module:
    bias = cfg.bias == "all"
    if cfg.ffn == "swiglu":
        return SwiGLU(cfg.d_model, cfg.d_ff, device=device, dtype=dtype, bias=bias)
    activation = gelu_tanh if cfg.ffn == "gelu" else silu
    return MLP(cfg.d_model, cfg.d_ff, device=device, dtype=dtype, bias=bias, activation=activation)


def _rope(cfg: ModelConfig, device) -> RotaryPositionalEmbedding | None:
    """The RoPE tables for positions < context_length (None unless positions="rope")."""
    if cfg.positions != "rope":
        return None
    return RotaryPositionalEmbedding(cfg.rope_theta, cfg.head_dim, cfg.context_length, device=device,
                                     scaling=cfg.rope_scaling)


def _cs336_config(d_model: int, num_heads: int, d_ff: int, context_length: int, rope_theta: float,
                  *, vocab_size: int = 1, num_layers: int = 1, eps: float = 1e-5,
                  **variants) -> ModelConfig:
    """The ModelConfig of CS336's positional signature (`eps` is norm_eps)."""
    return ModelConfig(vocab_size=vocab_size, context_length=context_length, d_model=d_model,
                       num_layers=num_layers, num_heads=num_heads, d_ff=d_ff,
                       rope_theta=float(rope_theta), norm_eps=eps, **variants)


class TransformerBlock(nn.Module):
    """One decoder block of `cfg` with submodules `attn`, `ln1`, `ffn`, `ln2` (and `drop1`,
    `drop2`: dropout on the two residual branches, identities at p = 0 or in eval mode).

    pre-norm:  z = x + drop1(attn(ln1(x)));  y = z + drop2(ffn(ln2(z)))
    post-norm: z = ln1(x + drop1(attn(x)));  y = ln2(z + drop2(ffn(z)))
    norm="none" makes ln1/ln2 identities. positions="rope" applies RoPE to Q and K; pass `rope`
    to share one RoPE module between blocks. The block reads the config's sizes d_model,
    num_heads, d_ff, context_length (RoPE's table) and its variant switches, not vocab_size or
    num_layers.
    """

    def __init__(self, cfg: ModelConfig, rope: RotaryPositionalEmbedding | None = None, *,
                 device=None, dtype=None):
        super().__init__()
        self.norm_position = cfg.norm_position
        if rope is None:
            rope = _rope(cfg, device)
        self.attn = MultiHeadSelfAttention(cfg.d_model, cfg.num_heads,
                                           rope=rope if cfg.positions == "rope" else None,
                                           attention=cfg.attention, device=device, dtype=dtype,
                                           num_kv_heads=cfg.kv_heads,
                                           qkv_bias=cfg.bias != "none",
                                           output_bias=cfg.bias in ("attention", "all"),
                                           dropout=cfg.dropout)
        self.ln1 = _norm(cfg, device, dtype)
        self.ffn = _ffn(cfg, device, dtype)
        self.ln2 = _norm(cfg, device, dtype)
        self.drop1, self.drop2 = Dropout(cfg.dropout), Dropout(cfg.dropout)

    @classmethod
    def from_cs336(cls, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float,
                   *, eps: float = 1e-5, device=None, dtype=None, **variants) -> "TransformerBlock":
        """CS336's signature (`run_transformer_block`'s adapter): sizes, then variant keywords."""
        cfg = _cs336_config(d_model, num_heads, d_ff, max_seq_len, theta, eps=eps, **variants)
        return cls(cfg, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None,
                kv_cache: LayerKV | None = None) -> torch.Tensor:
        if self.norm_position == "pre":
            z = x + self.drop1(self.attn(self.ln1(x), token_positions, kv_cache))  # (B, T, d)
            return z + self.drop2(self.ffn(self.ln2(z)))  # (B, T, d)
        z = self.ln1(x + self.drop1(self.attn(x, token_positions, kv_cache)))  # (B, T, d)
        return self.ln2(z + self.drop2(self.ffn(z)))  # (B, T, d)


class TransformerLM(nn.Module):
    """Decoder-only LM built from a `ModelConfig`: token ids (B, T) int64 -> unnormalized
    next-token logits (B, T, V).

    Submodules `token_embeddings`, `position_embeddings` (positions="learned" only: context_length
    x d_model, added to the token embeddings), `embedding_dropout`, `layers` (ModuleList of
    TransformerBlock), `ln_final`, `lm_head`; `config` is the `cfg` it was built from. Sequences
    longer than context_length are rejected (the RoPE and position tables stop there).
    `forward(token_ids, token_positions=None)`: positions default to arange(T). `activation_checkpointing` (a plain attribute, may be toggled):
    recompute each block in backward. `forward(token_ids, token_positions, kv_cache=cache)`
    (model.kv_cache.KVCache; generation): the T tokens follow the cache's `length` cached ones,
    every block appends their K, V, and only the last position's logits (B, 1, V) are computed.
    `generator`: the torch.Generator of the initial weights and the dropout masks (None: torch's
    default generator; see the module docstring).
    """

    def __init__(self, cfg: ModelConfig, *, activation_checkpointing: bool = False, device=None,
                 dtype=None, generator: torch.Generator | None = None):
        super().__init__()
        with init_generator(generator):
            self._build(cfg, device, dtype)
        self.activation_checkpointing = bool(activation_checkpointing)
        self.generator = generator
        for module in self.modules():
            if isinstance(module, Dropout):
                module.generator = generator

    def _build(self, cfg: ModelConfig, device, dtype) -> None:
        self.config = cfg
        self.token_embeddings = Embedding(cfg.vocab_size, cfg.d_model, device=device, dtype=dtype)
        if cfg.positions == "learned":
            self.position_embeddings = LearnedPositions(cfg.context_length, cfg.d_model,
                                                        device=device, dtype=dtype)
        self.embedding_dropout = Dropout(cfg.dropout)
        rope = _rope(cfg, device)  # one table, shared by every block
        self.layers = nn.ModuleList(TransformerBlock(cfg, rope, device=device, dtype=dtype)
                                    for _ in range(cfg.num_layers))
        final = cfg.norm != "none" and cfg.norm_position == "pre"  # post-norm blocks end normalized
        self.ln_final = _norm(cfg, device, dtype, kind=cfg.norm if final else "none")
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, device=device, dtype=dtype)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.token_embeddings.weight

    def _recompute_contexts(self):
        """torch.utils.checkpoint's context_fn: (around the forward, around the recompute). torch
        restores only its default generators for the recompute; with our own generator and
        dropout, the recompute redraws the forward's masks from the generator's saved state."""
        g = self.generator
        saved: list[torch.Tensor] = []

        @contextmanager
        def forward():
            saved.append(g.get_state())
            yield

        @contextmanager
        def recompute():
            now = g.get_state()
            g.set_state(saved[0])
            try:
                yield
            finally:
                g.set_state(now)

        return forward(), recompute()

    @classmethod
    def from_cs336(cls, vocab_size: int, context_length: int, d_model: int, num_layers: int,
                   num_heads: int, d_ff: int, rope_theta: float, *, eps: float = 1e-5,
                   activation_checkpointing: bool = False, device=None, dtype=None,
                   **variants) -> "TransformerLM":
        """CS336's signature (`run_transformer_lm`'s adapter): sizes, then variant keywords
        (norm, norm_position, positions, ffn, attention, tie_embeddings); `eps` is norm_eps."""
        cfg = _cs336_config(d_model, num_heads, d_ff, context_length, rope_theta, eps=eps,
                            vocab_size=vocab_size, num_layers=num_layers, **variants)
        return cls(cfg, activation_checkpointing=activation_checkpointing, device=device, dtype=dtype)

    def forward(self, token_ids: torch.Tensor, token_positions: torch.Tensor | None = None,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        T = token_ids.shape[-1]
        start = 0 if kv_cache is None else kv_cache.length
        if start + T > self.config.context_length:
            raise UserError(f"sequence length {start + T} exceeds context_length {self.config.context_length}")
        x = self.token_embeddings(token_ids)  # (B, T, d)
        if self.config.positions == "learned":  # decoding: the positions after the cached ones
            positions = torch.arange(start, start + T, device=token_ids.device) \
                if token_positions is None else token_positions
            x = self.position_embeddings(x, positions)  # (B, T, d)
        x = self.embedding_dropout(x)
        if kv_cache is not None:  # incremental decoding (model.sampling): blocks write the cache
            for i, layer in enumerate(self.layers):
                x = layer(x, token_positions, kv_cache.layer(i))  # (B, T, d)
            kv_cache.advance(T)
            return self.lm_head(self.ln_final(x[..., -1:, :]))  # (B, 1, V): the next token only
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        # only our own generator needs its state carried to the recompute (torch handles its own)
        redraw = {"context_fn": self._recompute_contexts} if self.generator is not None and \
            self.config.dropout > 0 else {}
        for layer in self.layers:
            if recompute:  # keeps only x; reruns the block's forward in backward
                x = checkpoint(layer, x, token_positions, use_reentrant=False, **redraw)  # (B, T, d)
            else:
                x = layer(x, token_positions)  # (B, T, d)
        return self.lm_head(self.ln_final(x))  # (B, T, V)
