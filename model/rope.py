"""Rotary positional embedding (RoPE, Su et al. 2021), CS336 convention.

Adjacent pairs (x[..., 2j], x[..., 2j+1]) at position i are rotated by the angle
i * theta^(-2j / d_k), j = 0 .. d_k/2 - 1. cos and sin are precomputed for positions
0 .. max_seq_len-1 in float32 as non-persistent buffers: not parameters, not in the state dict.

llama3 scaling (`scaling` = (factor, low_freq_factor, high_freq_factor, original_max_positions),
as Llama 3.1 / 3.2 publish it): a frequency f whose wavelength 2 pi / f is longer than
original / low_freq_factor is divided by `factor`; one shorter than original / high_freq_factor
is kept; in between, f is blended: (1 - s) f / factor + s f with
s = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RotaryPositionalEmbedding(nn.Module):
    """RoPE over the last dim (d_k, even) of x; `forward(x, token_positions)`.

    x: (..., T, d_k); token_positions: int tensor broadcastable to (..., T), values < max_seq_len.
    Returns a tensor of x's shape and dtype.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None,
                 scaling: tuple[float, float, float, int] | None = None):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even d_k, got {d_k}")
        self.theta = theta
        self.d_k = d_k
        self.max_seq_len = max_seq_len
        self.scaling = scaling
        pair = torch.arange(0, d_k, 2, device=device, dtype=torch.float32)  # (d_k/2,) = 2j
        inv_freq = theta ** (-pair / d_k)  # (d_k/2,)
        if scaling is not None:
            inv_freq = llama3_frequencies(inv_freq, *scaling)
        positions = torch.arange(max_seq_len, device=device, dtype=torch.float32)  # (L,)
        angles = torch.outer(positions, inv_freq)  # (L, d_k/2)
        self.register_buffer("cos", torch.cos(angles), persistent=False)
        self.register_buffer("sin", torch.sin(angles), persistent=False)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor) -> torch.Tensor:
        # Index, then cast to x's dtype: creates (..., T, d_k/2) cos and sin (saved by the muls).
        cos = self.cos[token_positions].to(x.dtype)  # (..., T, d_k/2)
        sin = self.sin[token_positions].to(x.dtype)  # (..., T, d_k/2)
        x_even = x[..., 0::2]  # (..., T, d_k/2), a view of x
        x_odd = x[..., 1::2]  # (..., T, d_k/2), a view of x
        # cos/sin need no grad, so each product saves only cos or sin, never x.
        out_even = x_even * cos - x_odd * sin  # (..., T, d_k/2)
        out_odd = x_even * sin + x_odd * cos  # (..., T, d_k/2)
        return torch.stack((out_even, out_odd), dim=-1).flatten(-2)  # (..., T, d_k) interleaved

    def extra_repr(self) -> str:
        return f"theta={self.theta}, d_k={self.d_k}, max_seq_len={self.max_seq_len}, scaling={self.scaling}"


def llama3_frequencies(inv_freq: torch.Tensor, factor: float, low_freq_factor: float,
                       high_freq_factor: float, original: int) -> torch.Tensor:
    """The rotation frequencies (d_k/2,) after llama3 scaling (see the module docstring)."""
    wavelength = 2 * math.pi / inv_freq  # (d_k/2,)
    s = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - s) * inv_freq / factor + s * inv_freq
    long_waves = wavelength > original / low_freq_factor
    short_waves = wavelength < original / high_freq_factor
    return torch.where(long_waves, inv_freq / factor, torch.where(short_waves, inv_freq, blended))
