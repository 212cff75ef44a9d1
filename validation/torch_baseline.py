"""The torch-modules baseline: the same Transformer LM built from torch's own modules.

What `benchmarks/bench_training.py` and the GPU campaign (`validation.campaign`, step 5) time our
model against; it lives in `validation` so that nothing here imports `benchmarks`.

nn.Embedding, nn.Linear(bias=False), nn.RMSNorm, F.scaled_dot_product_attention(is_causal=True),
F.silu, F.cross_entropy; RoPE (torch has no module for it) with tensor ops, adjacent pairs as in
model/rope.py. Same shapes and parameter count as `model.TransformerLM` for a pre-norm, RoPE,
SwiGLU, untied ModelConfig; optimizer torch.optim.AdamW (foreach or fused) and gradient clipping
torch.nn.utils.clip_grad_norm_.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from accounting.config import ModelConfig


def _rope_tables(cfg: ModelConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    d_k = cfg.d_model // cfg.num_heads
    inv_freq = cfg.rope_theta ** (-torch.arange(0, d_k, 2, device=device, dtype=torch.float32) / d_k)
    angles = torch.outer(torch.arange(cfg.context_length, device=device, dtype=torch.float32), inv_freq)
    return torch.cos(angles), torch.sin(angles)  # (T_max, d_k/2) each


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x (B, h, T, d_k); cos/sin (T, d_k/2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class TorchBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None):
        super().__init__()
        d, f = cfg.d_model, cfg.d_ff
        self.h = cfg.num_heads
        self.ln1 = nn.RMSNorm(d, eps=cfg.norm_eps, device=device)
        self.ln2 = nn.RMSNorm(d, eps=cfg.norm_eps, device=device)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False, device=device) for _ in range(4))
        self.w1 = nn.Linear(d, f, bias=False, device=device)
        self.w2 = nn.Linear(f, d, bias=False, device=device)
        self.w3 = nn.Linear(d, f, bias=False, device=device)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        a = self.ln1(x)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, self.h, d // self.h).transpose(1, 2)  # (B, h, T, d_k)

        q, k = _rope(heads(self.q(a)), cos[:T], sin[:T]), _rope(heads(self.k(a)), cos[:T], sin[:T])
        att = F.scaled_dot_product_attention(q, k, heads(self.v(a)), is_causal=True)  # (B, h, T, d_k)
        x = x + self.o(att.transpose(1, 2).reshape(B, T, d))
        b = self.ln2(x)
        return x + self.w2(F.silu(self.w1(b)) * self.w3(b))


class TorchLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, V), from torch modules."""

    def __init__(self, cfg: ModelConfig, device=None):
        super().__init__()
        if (cfg.norm, cfg.norm_position, cfg.positions, cfg.ffn, cfg.tie_embeddings) != (
                "rmsnorm", "pre", "rope", "swiglu", False):
            raise ValueError("the torch baseline covers pre-norm RMSNorm, RoPE, SwiGLU, untied only")
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, device=device)
        self.blocks = nn.ModuleList(TorchBlock(cfg, device) for _ in range(cfg.num_layers))
        self.ln_f = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps, device=device)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False, device=device)
        cos, sin = _rope_tables(cfg, device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.ln_f(x))


def torch_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().flatten(0, -2), targets.flatten())
