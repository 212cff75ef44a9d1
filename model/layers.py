"""Basic layers of the from-scratch Transformer LM (CS336 assignment 1 conventions).

Only `nn.Module`, `nn.Parameter`, `torch.nn.init` and tensor ops: no `torch.nn` layers and no
`torch.nn.functional`. Every layer takes `device` and `dtype` for its parameters, and builds on
`device="meta"` without allocating (init ops are no-ops there).

Initialisation (CS336):
  - Linear:    W ~ N(0, sigma^2), sigma^2 = 2 / (in + out), truncated at +-3 sigma; bias b = 0
  - Embedding: E ~ N(0, 1) truncated at +-3 (learned positions too)
  - RMSNorm:   gain g = 1;  LayerNorm: gain g = 1, bias b = 0
Random draws (the initial weights, dropout masks) come from torch's default generator unless a
torch.Generator is given: `init_generator(g)` for the layers built inside it, `Dropout.generator`
for the masks (TransformerLM(cfg, generator=g) sets both), so runs in concurrent threads do not
share one random stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

_INIT_GENERATOR: ContextVar[torch.Generator | None] = ContextVar("init_generator", default=None)


@contextmanager
def init_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Layers built inside draw their initial weights from `generator` (None: torch's default
    generator). A context variable: per thread, so concurrent builds do not interleave draws."""
    token = _INIT_GENERATOR.set(generator)
    try:
        yield
    finally:
        _INIT_GENERATOR.reset(token)


def _trunc_normal(shape: tuple[int, ...], std: float, device, dtype) -> nn.Parameter:
    weight = torch.empty(shape, device=device, dtype=dtype)
    if not weight.is_meta:  # on meta there are no values to draw; skipping keeps gpt2-xl builds fast
        nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3.0 * std, b=3.0 * std,
                              generator=_INIT_GENERATOR.get())
    return nn.Parameter(weight)


class Linear(nn.Module):
    """y = x W^T (+ b when `bias`). `weight` has shape (out_features, in_features), `bias`
    (out_features,) or None. The bias is its own add after the matmul: a non-matmul op (1 FLOP per
    output element) that saves nothing for backward. Under autocast the bias is cast to the
    matmul's dtype first (as nn.Linear's kernel does), so y stays bf16: a float32 bias would
    promote the sum, and everything downstream, to float32."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None,
                 bias: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        std = math.sqrt(2.0 / (in_features + out_features))
        self.weight = _trunc_normal((out_features, in_features), std, device, dtype)
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight  # (out, in)
        device = x.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            # Cast W itself, as autocast would, but before transposing: left to autocast, the cast
            # is of the view W.T, and torch.compile's CPU backward then writes each weight's
            # gradient through a transposed copy (tinystories, bf16 + compile: 0.18 -> 0.16 s per
            # step; benchmarks/bench_linear.py times and profiles both). Same values, same bytes.
            weight = weight.to(torch.get_autocast_dtype(device))
        # (..., in) @ (in, out) -> (..., out); autograd saves x (for dW) and W (for dx).
        y = x @ weight.T
        # the add saves nothing; .to is a no-op outside autocast (same dtype)
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(nn.Module):
    """Lookup table: forward(token_ids) = weight[token_ids]. `weight` has shape (V, d)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = _trunc_normal((num_embeddings, embedding_dim), 1.0, device, dtype)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        # (...) int64 -> (..., d); autograd saves the int64 token ids (the indices).
        return self.weight[token_ids]

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"


class LearnedPositions(nn.Module):
    """Absolute position embeddings (GPT-2): forward(x, positions) = x + weight[positions].
    `weight` (max_positions, d) starts as Embedding's N(0, 1) truncated at +-3. The lookup saves
    the int64 positions; the add saves nothing."""

    def __init__(self, max_positions: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.max_positions = max_positions
        self.weight = _trunc_normal((max_positions, embedding_dim), 1.0, device, dtype)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.weight[positions]  # (..., T, d)

    def extra_repr(self) -> str:
        return f"max_positions={self.max_positions}, embedding_dim={self.weight.shape[1]}"


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g over the last dim.

    Computed in float32 whatever the input dtype (bf16 squares lose too much), then cast back to
    the input dtype. `weight` (the gain g, shape (d_model,)) starts at 1.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d_model = d_model
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dtype = x.dtype
        x32 = x.float()  # (..., d) float32; no copy when x is already float32
        # pow saves x32; mean saves nothing; rsqrt saves its output rms (..., 1)
        rms = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)  # (..., 1)
        # x32 * rms saves x32 and rms; (.) * weight saves the product (..., d) float32 and weight
        out = (x32 * rms) * self.weight  # (..., d) float32
        return out.to(in_dtype)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, eps={self.eps}"


class LayerNorm(nn.Module):
    """LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b over the last dim (biased
    variance), computed in float32 whatever the input dtype, then cast back (as RMSNorm).
    `weight` (g) starts at 1, `bias` (b) at 0, shape (d_model,) each."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d_model = d_model
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(d_model, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dtype = x.dtype
        x32 = x.float()  # (..., d) float32; mean and sub save nothing
        centered = x32 - x32.mean(-1, keepdim=True)  # (..., d)
        # centered * centered saves centered; rsqrt saves its output rstd (..., 1)
        rstd = torch.rsqrt((centered * centered).mean(-1, keepdim=True) + self.eps)  # (..., 1)
        # centered * rstd saves both; (.) * weight saves the product (..., d) float32
        out = (centered * rstd) * self.weight + self.bias  # (..., d) float32
        return out.to(in_dtype)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, eps={self.eps}"


class Dropout(nn.Module):
    """Inverted dropout: in training, each element is zeroed with probability `p` and the rest
    scaled by 1 / (1 - p); the identity in eval mode or at p = 0. The keep mask is drawn with
    torch.rand from `generator` (a plain attribute; None: torch's default generator) and kept as a
    bool tensor: the product x * mask saves only the mask, 1 byte per element (the scaling by a
    Python float saves nothing)."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, device=x.device, generator=self.generator) >= self.p  # (...) bool
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(nn.Module):
    """No-op stand-in for a norm (norm="none", or ln_final where there is none); no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU(x) = x * sigmoid(x). Autograd saves x and sigmoid(x)."""
    return x * torch.sigmoid(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation (GPT-2's "gelu_new"):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Autograd saves x (for x^3), the tanh
    output t, and the two factors of the last product, 0.5 x and 1 + t."""
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
    return 0.5 * x * (1.0 + torch.tanh(inner))


class SwiGLU(nn.Module):
    """SwiGLU FFN: W2 (SiLU(W1 x) * W3 x); w1, w3: (d_ff, d_model), w2: (d_model, d_ff)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None, bias: bool = False):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype, bias=bias)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype, bias=bias)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.w1(x)  # (..., d_ff)
        gate = silu(a)  # (..., d_ff)
        b = self.w3(x)  # (..., d_ff)
        return self.w2(gate * b)  # (..., d_model)


class MLP(nn.Module):
    """Two-matrix FFN: W2 act(W1 x) with act SiLU (default) or GELU's tanh form (GPT-2's MLP,
    `activation=gelu_tanh`); w1: (d_ff, d_model), w2: (d_model, d_ff)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None, bias: bool = False,
                 activation=silu):
        super().__init__()
        self.activation = activation
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype, bias=bias)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.activation(self.w1(x)))  # (..., d_ff) -> (..., d_model)
