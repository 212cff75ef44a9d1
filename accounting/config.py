"""The one model configuration shared by `accounting`, `model`, `validation` and the app.

`ModelConfig` holds the shape of a CS336-style Transformer LM and its variant switches. It imports
no torch, so the symbolic accounting can use it without paying for torch; `model.TransformerLM`
is built from it (`TransformerLM.from_config(cfg)`).

Presets live in one registry: `get_preset(name)` / `list_presets()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Norm = Literal["rmsnorm", "none"]
NormPosition = Literal["pre", "post"]
Positions = Literal["rope", "none"]
FFN = Literal["swiglu", "silu"]
Attention = Literal["naive", "sdpa"]

VARIANT_CHOICES: dict[str, tuple[str, ...]] = {
    "norm": ("rmsnorm", "none"),
    "norm_position": ("pre", "post"),
    "positions": ("rope", "none"),
    "ffn": ("swiglu", "silu"),
    "attention": ("naive", "sdpa"),
}
"""Allowed values of each string-valued variant switch."""

_POSITIVE_INT_FIELDS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and variants of a decoder-only Transformer LM (CS336 assignment 1 conventions).

    Sizes are counts (tokens, features, layers, heads). Variant switches:
      - norm:          "rmsnorm" (RMSNorm, eps `norm_eps`) or "none" (identity)
      - norm_position: "pre"  (z = x + attn(norm(x)))  or "post" (z = norm(x + attn(x)))
      - positions:     "rope" (rotary on Q and K, base `rope_theta`) or "none"
      - ffn:           "swiglu" (W2 (SiLU(W1 x) * W3 x)) or "silu" (W2 SiLU(W1 x))
      - tie_embeddings: the LM head reuses the token-embedding matrix
      - attention:     "naive" (the reference, materializes the (T, T) scores) or
                       "sdpa" (torch's fused scaled_dot_product_attention)
    """

    vocab_size: int = 50_257
    context_length: int = 1_024
    d_model: int = 768
    num_layers: int = 12
    num_heads: int = 12
    d_ff: int = 3_072
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    norm: Norm = "rmsnorm"
    norm_position: NormPosition = "pre"
    positions: Positions = "rope"
    ffn: FFN = "swiglu"
    tie_embeddings: bool = False
    attention: Attention = "naive"

    def __post_init__(self) -> None:
        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name, choices in VARIANT_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(
                f"d_model / num_heads = {self.head_dim} must be even for RoPE (positions='rope')"
            )

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / num_heads."""
        return self.d_model // self.num_heads

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again). Unknown fields raise ValueError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict (e.g. a checkpoint or JSON report); unknown keys raise ValueError."""
        return cls().replace(**data) if data else cls()


def _gpt2(num_layers: int, d_model: int, num_heads: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=50_257, context_length=1_024, d_model=d_model, num_layers=num_layers,
        num_heads=num_heads, d_ff=4 * d_model,
    )


_TINYSTORIES = ModelConfig(
    vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16,
    d_ff=1_344, rope_theta=10_000.0,
)

_PRESETS: dict[str, ModelConfig] = {
    "gpt2-small": _gpt2(12, 768, 12),
    "gpt2-medium": _gpt2(24, 1_024, 16),
    "gpt2-large": _gpt2(36, 1_280, 20),
    "gpt2-xl": _gpt2(48, 1_600, 25),
    "tinystories": _TINYSTORIES,
    "owt": _TINYSTORIES.replace(vocab_size=32_000),
}

GPT2_PRESETS: tuple[str, ...] = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")


def list_presets() -> list[str]:
    """Names of the registered presets, in a stable order (GPT-2 sizes first)."""
    return list(_PRESETS)


def get_preset(name: str) -> ModelConfig:
    """The preset called `name`; an unknown name raises ValueError listing the valid ones."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}") from None
