"""The one model configuration shared by `accounting`, `model`, `validation` and the app.

`ModelConfig` holds the shape of a decoder-only Transformer LM and its variant switches: the CS336
block (pre-norm RMSNorm, SwiGLU, RoPE, untied head), the original GPT-2 block (LayerNorm with bias,
GELU MLP, learned positions, biases, tied head, dropout) and the Llama family (RMSNorm, SwiGLU,
RoPE with its theta and llama3 scaling, grouped-query attention, tied or untied). It imports no
torch, so the symbolic accounting can use it without paying for torch; `model.TransformerLM(cfg)`
is built from it. Hugging Face config.json files become ModelConfigs in accounting.hf_config.

Presets live in one registry: `get_preset(name)` / `list_presets()`: the CS336 shapes (`cs336-*`,
`tinystories`, `owt`) and published models (`gpt2` ... `gpt2-xl` as released, `llama-*`,
`mistral-7b`, `qwen2.5-7b`, read from their config.json, stored as data in accounting/presets/).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from accounting.errors import UserError

Norm = Literal["rmsnorm", "layernorm", "none"]
NormPosition = Literal["pre", "post"]
Positions = Literal["rope", "learned", "none"]
FFN = Literal["swiglu", "silu", "gelu"]
Attention = Literal["naive", "sdpa"]
Bias = Literal["none", "qkv", "attention", "all"]

VARIANT_CHOICES: dict[str, tuple[str, ...]] = {
    "norm": ("rmsnorm", "layernorm", "none"),
    "norm_position": ("pre", "post"),
    "positions": ("rope", "learned", "none"),
    "ffn": ("swiglu", "silu", "gelu"),
    "attention": ("naive", "sdpa"),
    "bias": ("none", "qkv", "attention", "all"),
}
"""Allowed values of each string-valued variant switch."""

_POSITIVE_INT_FIELDS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff")


def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field whose metadata says what it means (`help`) and, for a variant switch, its
    `choices`. Every CLI flag (accounting.flags) and every explorer widget is generated from it."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class ModelConfig:
    """Shape and variants of a decoder-only Transformer LM (defaults: CS336 assignment 1).

    Sizes are counts (tokens, features, layers, heads). Variant switches:
      - norm:          "rmsnorm" (gain only), "layernorm" (gain and bias, GPT-2) or "none"
                       (identity); epsilon `norm_eps`
      - norm_position: "pre"  (z = x + attn(norm(x)))  or "post" (z = norm(x + attn(x)))
      - positions:     "rope" (rotary on Q and K, base `rope_theta`, optional llama3
                       `rope_scaling`), "learned" (an absolute position embedding table of
                       context_length rows added to the token embeddings, GPT-2) or "none"
      - ffn:           "swiglu" (W2 (SiLU(W1 x) * W3 x)), "silu" (W2 SiLU(W1 x)) or "gelu"
                       (W2 GELU(W1 x), GELU's tanh approximation: GPT-2's "gelu_new")
      - bias:          which projections add a bias: "none", "qkv" (q, k, v: Qwen2),
                       "attention" (q, k, v, output: Llama's attention_bias) or "all" (every
                       attention and FFN matrix: GPT-2); never the LM head
      - tie_embeddings: the LM head reuses the token-embedding matrix
      - attention:     "naive" (the reference, materializes the (T, T) scores) or
                       "sdpa" (torch's fused scaled_dot_product_attention)
      - num_kv_heads:  grouped-query attention: h_kv key/value heads, each shared by h / h_kv
                       query heads (None: h_kv = h)
      - dropout:       probability p at GPT-2's three places (the embedding sum, the attention
                       weights, each block's two residual branches), in training mode only
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
    rope_scaling: tuple[float, float, float, int] | None = config_field(
        None, "llama3 RoPE scaling: factor, low_freq_factor, high_freq_factor, "
        "original_max_position_embeddings (no effect on the counts)", type=float, nargs=4)
    norm_eps: float = config_field(1e-5, "norm epsilon (no effect on the counts)")
    norm: Norm = config_field("rmsnorm", "rmsnorm, layernorm (with bias) or none (identity)",
                              choices=VARIANT_CHOICES["norm"])
    norm_position: NormPosition = config_field("pre", "pre: x + f(norm(x)); post: norm(x + f(x))",
                                               choices=VARIANT_CHOICES["norm_position"])
    positions: Positions = config_field(
        "rope", "rope (rotary on Q, K), learned (absolute embedding) or none",
        choices=VARIANT_CHOICES["positions"])
    ffn: FFN = config_field("swiglu", "swiglu: W2(SiLU(W1 x) * W3 x); silu: W2 SiLU(W1 x); "
                            "gelu: W2 GELU(W1 x)", choices=VARIANT_CHOICES["ffn"])
    bias: Bias = config_field("none", "projection biases: none, qkv, attention (q,k,v,o) or all "
                              "(attention and FFN)", choices=VARIANT_CHOICES["bias"])
    tie_embeddings: bool = config_field(
        False, "the LM head reuses the token-embedding matrix (counted once)")
    attention: Attention = config_field(
        "naive", "naive: materializes the (T, T) scores; sdpa: torch's fused kernel",
        choices=VARIANT_CHOICES["attention"])
    dropout: float = config_field(
        0.0, "dropout probability (embedding sum, attention weights, residual branches; training only)")

    def __post_init__(self) -> None:
        if isinstance(self.rope_scaling, list):
            object.__setattr__(self, "rope_scaling", tuple(self.rope_scaling))
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
            if not _positive_finite(getattr(self, name)):
                raise UserError(f"{name} must be a positive finite number, got {getattr(self, name)!r}")
        if not (_is_number(self.dropout) and 0 <= self.dropout < 1):
            raise UserError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        self._check_heads()
        self._check_rope_scaling()

    def _check_heads(self) -> None:
        if self.num_kv_heads is not None:
            if isinstance(self.num_kv_heads, bool) or not isinstance(self.num_kv_heads, int) \
                    or self.num_kv_heads <= 0:
                raise UserError(f"num_kv_heads must be a positive integer, got {self.num_kv_heads!r}")
            if self.num_heads % self.num_kv_heads:
                raise UserError(f"num_kv_heads ({self.num_kv_heads}) must divide num_heads "
                                f"({self.num_heads})")
        if self.d_model % self.num_heads:
            raise UserError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if self.positions == "rope" and self.head_dim % 2:
            raise UserError(
                f"d_model / num_heads = {self.head_dim} must be even for RoPE (positions='rope')")

    def _check_rope_scaling(self) -> None:
        if self.rope_scaling is None:
            return
        if self.positions != "rope":
            raise UserError("rope_scaling needs positions='rope'")
        scaling = self.rope_scaling
        if not (isinstance(scaling, tuple) and len(scaling) == 4 and all(map(_positive_finite, scaling))):
            raise UserError("rope_scaling must be four positive numbers (factor, low_freq_factor, "
                            f"high_freq_factor, original_max_position_embeddings), got {scaling!r}")
        factor, low, high, original = scaling
        if not (factor >= 1 and high > low and float(original).is_integer()):
            raise UserError(f"rope_scaling needs factor >= 1, high_freq_factor > low_freq_factor and an "
                            f"integer original_max_position_embeddings, got {scaling!r}")
        object.__setattr__(self, "rope_scaling", (float(factor), float(low), float(high), int(original)))

    @property
    def head_dim(self) -> int:
        """d_k = d_v = d_model / num_heads."""
        return self.d_model // self.num_heads

    @property
    def kv_heads(self) -> int:
        """h_kv, the key/value heads: num_kv_heads, or num_heads when unset (multi-head)."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def family(self) -> str:
        """The architecture family these switches describe, in words (for titles)."""
        if self.norm == "layernorm" and self.positions == "learned" and self.ffn == "gelu":
            return "original GPT-2 block (LayerNorm, GELU MLP, learned positions)"
        if self.norm == "rmsnorm" and self.ffn == "swiglu" and self.positions == "rope":
            attention = "grouped-query attention" if self.kv_heads != self.num_heads else "multi-head"
            return f"Llama / CS336-style block (RMSNorm, SwiGLU, RoPE, {attention})"
        return (f"custom block ({self.norm}, {self.ffn} FFN, {self.positions} positions, "
                f"{self.norm_position}-norm)")

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again). Unknown fields raise UserError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UserError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.rope_scaling is not None:
            data["rope_scaling"] = list(self.rope_scaling)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict (e.g. a checkpoint or JSON report); unknown keys raise UserError.
        Fields absent from an older dict keep their defaults (which are the old behaviour)."""
        return cls().replace(**data) if data else cls()

    @classmethod
    def from_hf_config(cls, source: Any) -> "ModelConfig":
        """From a Hugging Face config.json (a path or a dict); see accounting.hf_config."""
        from accounting.hf_config import from_hf_config

        return from_hf_config(source)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_finite(value: Any) -> bool:
    return _is_number(value) and 0 < value < math.inf


def _cs336_gpt2(num_layers: int, d_model: int, num_heads: int) -> ModelConfig:
    """CS336's GPT-2 shapes with the CS336 block (SwiGLU at d_ff = 4d, RoPE, untied)."""
    return ModelConfig(
        vocab_size=50_257, context_length=1_024, d_model=d_model, num_layers=num_layers,
        num_heads=num_heads, d_ff=4 * d_model,
    )


_TINYSTORIES = ModelConfig(
    vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16,
    d_ff=1_344, rope_theta=10_000.0,
)

_CS336_PRESETS: dict[str, ModelConfig] = {
    "cs336-gpt2-small": _cs336_gpt2(12, 768, 12),
    "cs336-gpt2-medium": _cs336_gpt2(24, 1_024, 16),
    "cs336-gpt2-large": _cs336_gpt2(36, 1_280, 20),
    "cs336-gpt2-xl": _cs336_gpt2(48, 1_600, 25),
    "tinystories": _TINYSTORIES,
    "owt": _TINYSTORIES.replace(vocab_size=32_000),
}

PUBLISHED_PRESETS: tuple[str, ...] = (
    "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "llama-3.2-1b", "llama-3-8b", "llama-3-70b",
    "mistral-7b", "qwen2.5-7b",
)
"""Published models, each read from its config.json as released (accounting/presets/NAME.json)."""

GPT2_PRESETS: tuple[str, ...] = ("cs336-gpt2-small", "cs336-gpt2-medium", "cs336-gpt2-large",
                                 "cs336-gpt2-xl")
"""CS336's four GPT-2 shapes (the assignment's accounting questions use them)."""

DEFAULT_PRESET = "cs336-gpt2-small"
"""The preset the CLIs and the explorer start from (= ModelConfig())."""


def list_presets() -> list[str]:
    """Names of the registered presets, in a stable order (CS336 shapes, then published models)."""
    return [*_CS336_PRESETS, *PUBLISHED_PRESETS]


@cache
def get_preset(name: str) -> ModelConfig:
    """The preset called `name`; an unknown name raises UserError listing the valid ones."""
    if name in _CS336_PRESETS:
        return _CS336_PRESETS[name]
    if name in PUBLISHED_PRESETS:
        from accounting.hf_config import published_config

        return published_config(name)
    raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
