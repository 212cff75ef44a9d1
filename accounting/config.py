"""The one model configuration shared by `accounting`, `model`, `validation` and the app.

`ModelConfig` holds the shape of a CS336-style Transformer LM and its variant switches. It imports
no torch, so the symbolic accounting can use it without paying for torch; `model.TransformerLM`
is built from it (`TransformerLM(cfg)`).

Presets live in one registry: `get_preset(name)` / `list_presets()`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from accounting.errors import UserError

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


def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field whose metadata says what it means (`help`) and, for a variant switch, its
    `choices`. Every CLI flag (accounting.flags) and every explorer widget is generated from it."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


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
      - num_kv_heads:  grouped-query attention: h_kv key/value heads, each shared by h / h_kv
                       query heads (None: h_kv = h)
    Each field's metadata["help"] is its one-line meaning (flags and widgets show it).
    """

    vocab_size: int = config_field(50_257, "V: vocabulary size (tokens)")
    context_length: int = config_field(
        1_024, "T: tokens per sequence (the model's maximum; the step's T in reports and measurements)")
    d_model: int = config_field(768, "d: residual stream width (features)")
    num_layers: int = config_field(12, "L: number of Transformer blocks")
    num_heads: int = config_field(12, "h: attention heads; must divide d_model (d_k = d / h)")
    num_kv_heads: int | None = config_field(
        None, "h_kv: key/value heads (grouped-query attention; must divide num_heads; 1 = "
        "multi-query; unset = num_heads, multi-head)", type=int)
    d_ff: int = config_field(3_072, "d_ff: FFN inner width (features)")
    rope_theta: float = config_field(10_000.0, "RoPE base theta (no effect on the counts)")
    norm_eps: float = config_field(1e-5, "RMSNorm epsilon (no effect on the counts)")
    norm: Norm = config_field("rmsnorm", "rmsnorm, or none (identity: the 'no norm' ablation)",
                              choices=VARIANT_CHOICES["norm"])
    norm_position: NormPosition = config_field("pre", "pre: x + f(norm(x)); post: norm(x + f(x))",
                                               choices=VARIANT_CHOICES["norm_position"])
    positions: Positions = config_field("rope", "rope (rotary on Q, K) or none (the 'no RoPE' ablation)",
                                        choices=VARIANT_CHOICES["positions"])
    ffn: FFN = config_field("swiglu", "swiglu: W2(SiLU(W1 x) * W3 x); silu: W2 SiLU(W1 x)",
                            choices=VARIANT_CHOICES["ffn"])
    tie_embeddings: bool = config_field(
        False, "the LM head reuses the token-embedding matrix (counted once)")
    attention: Attention = config_field(
        "naive", "naive: materializes the (T, T) scores; sdpa: torch's fused kernel",
        choices=VARIANT_CHOICES["attention"])

    def __post_init__(self) -> None:
        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{name} must be an integer, got {value!r}")
            if value <= 0:
                raise UserError(f"{name} must be positive, got {value}")
        for name, choices in VARIANT_CHOICES.items():
            if getattr(self, name) not in choices:
                raise UserError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise UserError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise UserError(f"{name} must be a positive finite number, got {value!r}")
        if self.num_kv_heads is not None:
            if isinstance(self.num_kv_heads, bool) or not isinstance(self.num_kv_heads, int) \
                    or self.num_kv_heads <= 0:
                raise UserError(f"num_kv_heads must be a positive integer, got {self.num_kv_heads!r}")
            if self.num_heads % self.num_kv_heads:
                raise UserError(f"num_kv_heads ({self.num_kv_heads}) must divide num_heads "
                                f"({self.num_heads})")
        if self.d_model % self.num_heads:
            raise UserError(
                f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise UserError(
                f"d_model / num_heads = {self.head_dim} must be even for RoPE (positions='rope')"
            )

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / num_heads."""
        return self.d_model // self.num_heads

    @property
    def kv_heads(self) -> int:
        """h_kv, the key/value heads: num_kv_heads, or num_heads when unset (multi-head)."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again). Unknown fields raise ValueError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UserError(f"unknown config field(s): {', '.join(sorted(unknown))}")
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
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}") from None
