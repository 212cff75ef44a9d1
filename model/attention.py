"""Softmax, scaled dot-product attention and causal multi-head self-attention (CS336 conventions).

The reference ("naive") path uses tensor ops only and materializes the (T, T) scores; the
"sdpa" variant calls torch.nn.functional.scaled_dot_product_attention(is_causal=True), the one
use of torch.nn.functional in the model, with the same math.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from model.kv_cache import LayerKV
from model.layers import Dropout, Linear
from model.rope import RotaryPositionalEmbedding

ATTENTION_CHOICES = ("naive", "sdpa")


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """exp(x - max) / sum(exp(x - max)) along `dim`; subtracting the max keeps exp finite.

    The max is detached: softmax is shift-invariant, so its gradient through the max is exactly
    zero, so the max is taken of x.detach(): no amax node, nothing saved for it.
    """
    shifted = x - x.detach().amax(dim=dim, keepdim=True)  # sub saves nothing
    e = torch.exp(shifted)  # exp saves its output e
    return e / e.sum(dim=dim, keepdim=True)  # div saves e and the sum (..., 1)


def scaled_dot_product_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor,
                                 mask: torch.Tensor | None = None,
                                 dropout: Callable[[torch.Tensor], torch.Tensor] | None = None
                                 ) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k), masked) V, with `dropout` (if given) applied to the weights.

    Q: (..., Tq, d_k), K: (..., Tk, d_k), V: (..., Tk, d_v), any leading batch dims.
    mask: boolean, broadcastable to (..., Tq, Tk); True means attend (False gets -inf).
    Returns (..., Tq, d_v).
    """
    scale = 1.0 / math.sqrt(Q.shape[-1])
    scores = (Q @ K.transpose(-2, -1)) * scale  # (..., Tq, Tk); matmul saves Q and K
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))  # saves the bool mask
    probs = softmax(scores, dim=-1)  # (..., Tq, Tk)
    if dropout is not None:  # then the dropped weights, not probs, are the matmul's saved operand
        probs = dropout(probs)  # saves its bool keep mask (..., Tq, Tk)
    # saves probs and V; a batched matmul folds the leading dims, which copies a non-contiguous
    # V (the head-split view of v_proj's output) into a contiguous (prod(...), Tk, d_v) tensor.
    return probs @ V  # (..., Tq, d_v)


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) boolean lower-triangular mask, True on and below the diagonal (built per call)."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention with optional RoPE on Q and K, and grouped-query attention.

    q_proj, output_proj: Linear(d_model, d_model); k_proj, v_proj: Linear(d_model, h_kv * d_k),
    d_k = d_model / num_heads, h_kv = num_kv_heads (default num_heads). Head i uses rows
    i*d_k .. (i+1)*d_k - 1 of a projection weight (contiguous blocks); query head i reads key/value
    head i // (h / h_kv) (each key/value head serves h / h_kv consecutive query heads).
    `qkv_bias` / `output_bias` add biases to q, k, v / output_proj; `dropout` (p) drops attention
    weights in training (the naive path through model.layers.Dropout, sdpa inside torch's kernel).
    `forward(x, token_positions=None, kv_cache=None)`: x (..., T, d_model); positions default
    to arange(T). With `kv_cache` (one block's model.kv_cache.LayerKV; x (B, T, d)) the new K, V
    go into the cache and the queries attend over everything cached (incremental decoding).
    """

    def __init__(self, d_model: int, num_heads: int, rope: RotaryPositionalEmbedding | None = None,
                 attention: str = "naive", device=None, dtype=None, num_kv_heads: int | None = None,
                 qkv_bias: bool = False, output_bias: bool = False, dropout: float = 0.0):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide d_model ({d_model}) and be a "
                             f"multiple of num_kv_heads ({num_kv_heads})")
        if attention not in ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}; got {attention!r}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.d_k = d_model // num_heads
        self.attention = attention
        self.rope = rope
        kv_width = num_kv_heads * self.d_k
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype, bias=qkv_bias)
        self.k_proj = Linear(d_model, kv_width, device=device, dtype=dtype, bias=qkv_bias)
        self.v_proj = Linear(d_model, kv_width, device=device, dtype=dtype, bias=qkv_bias)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype, bias=output_bias)
        self.attn_dropout = Dropout(dropout)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # (..., T, heads*d_k) -> (..., T, heads, d_k) -> (..., heads, T, d_k); views, no copy.
        # The head count is read from the projection's width, not from num_heads: under tensor
        # parallelism (model/parallelize.py) a projection holds only its rank's heads.
        return t.unflatten(-1, (-1, self.d_k)).transpose(-3, -2)

    def _share_kv(self, t: torch.Tensor) -> torch.Tensor:
        """(..., h_kv, T, d_k) -> (..., h, T, d_k): each key/value head repeated for its group of
        h / h_kv query heads (a copy; none for multi-head attention)."""
        groups = self.num_heads // self.num_kv_heads
        return t if groups == 1 else t.repeat_interleave(groups, dim=-3)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None,
                kv_cache: LayerKV | None = None) -> torch.Tensor:
        if kv_cache is not None:
            return self._cached(x, token_positions, kv_cache)
        T = x.shape[-2]
        q = self._split_heads(self.q_proj(x))  # (..., h, T, d_k)
        k = self._split_heads(self.k_proj(x))  # (..., h_kv, T, d_k)
        v = self._split_heads(self.v_proj(x))  # (..., h_kv, T, d_k)
        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(T, device=x.device)  # (T,)
            elif token_positions.dim() >= 2:
                token_positions = token_positions.unsqueeze(-2)  # (..., 1, T): broadcast over heads
            q = self.rope(q, token_positions)  # (..., h, T, d_k)
            k = self.rope(k, token_positions)  # (..., h, T, d_k)
        p = self.attn_dropout.p if self.training else 0.0
        if self.attention == "sdpa":  # torch's kernels share the key/value heads themselves
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p,
                                                 enable_gqa=self.num_kv_heads != self.num_heads)
        else:
            out = scaled_dot_product_attention(q, self._share_kv(k), self._share_kv(v),
                                               causal_mask(T, x.device),
                                               self.attn_dropout if p else None)  # (..., h, T, d_k)
        # (..., h, T, d_k) -> (..., T, h, d_k) -> (..., T, h*d_k): flatten copies (non-contiguous);
        # output_proj saves that copy. (h*d_k = d_model, or this rank's share of it under TP.)
        out = out.transpose(-3, -2).flatten(-2)
        return self.output_proj(out)  # (..., T, d)

    def _cached(self, x: torch.Tensor, token_positions: torch.Tensor | None, kv_cache: LayerKV
                ) -> torch.Tensor:
        """Incremental decoding: x (B, T, d) are the T tokens after the `kv_cache.length` cached
        ones (positions default to start .. start + T - 1). Their K, V are written to the cache
        first; the queries then attend over all start + T cached positions (a token attends to
        itself and everything before it)."""
        T, start = x.shape[-2], kv_cache.length
        q = self._split_heads(self.q_proj(x))  # (B, h, T, d_k)
        k = self._split_heads(self.k_proj(x))  # (B, h_kv, T, d_k)
        v = self._split_heads(self.v_proj(x))  # (B, h_kv, T, d_k)
        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(start, start + T, device=x.device)  # (T,)
            elif token_positions.dim() >= 2:
                token_positions = token_positions.unsqueeze(-2)  # (B, 1, T): broadcast over heads
            q = self.rope(q, token_positions)  # (B, h, T, d_k)
            k = self.rope(k, token_positions)  # (B, h_kv, T, d_k)
        k, v = kv_cache.append(k, v)  # (B, h_kv, S, d_k) views of the cache, S = start + T
        S = start + T
        # One new token attends to every cached position: no mask. A block of T > 1 tokens needs
        # the causal mask, aligned to the end (query i sits at position start + i).
        if T == 1:
            mask = None
        elif start == 0:  # a prefill: the plain causal mask (sdpa: is_causal, its fast kernel)
            mask = causal_mask(T, x.device)  # (T, T)
        else:
            mask = torch.arange(S, device=x.device) <= torch.arange(start, S, device=x.device)[:, None]
        if self.attention == "sdpa":
            causal = T > 1 and start == 0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if causal else mask,
                                                 is_causal=causal,
                                                 enable_gqa=self.num_kv_heads != self.num_heads)
        else:
            out = scaled_dot_product_attention(q, self._share_kv(k), self._share_kv(v), mask)
        out = out.transpose(-3, -2).flatten(-2)  # (B, T, d)
        return self.output_proj(out)  # (B, T, d)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, num_heads={self.num_heads}, "
                f"num_kv_heads={self.num_kv_heads}, attention={self.attention!r}")
