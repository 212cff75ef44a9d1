"""Hugging Face config.json -> ModelConfig, for model_type gpt2, llama, mistral and qwen2.

Every key of a config.json is either mapped to a ModelConfig field, checked to hold a value the
project models (Llama's hidden_act must be "silu", GPT-2's attention must be scaled by 1/sqrt(d_k),
...), or known to describe no part of the architecture (token ids, dtype, library versions, ...).
Any other key, and a mapped key with a value the project does not model (sliding-window attention
in use, a RoPE scaling other than llama3, mixture-of-experts fields, ...), is refused with one
UserError naming it: nothing is silently ignored.

Choices made for every import (stated here because config.json does not say them):
  - attention = "sdpa": Hugging Face runs torch's fused attention by default;
  - context_length = n_positions (GPT-2) or max_position_embeddings (the others);
  - GPT-2: LayerNorm pre-norm with a final LayerNorm, learned positions, biases on every attention
    and MLP matrix (Conv1D), GELU's tanh form ("gelu_new"), one dropout p for its three places;
  - Llama / Mistral: RMSNorm, SwiGLU (hidden_act "silu"), RoPE; Qwen2: the same with biases on
    q, k and v (its attention hard-codes them);
  - RoPE pairs: Hugging Face rotates halves (dims j and j + d_k/2), this project adjacent pairs:
    the same function after a fixed permutation of q_proj / k_proj rows (no count changes);
    validation.hf_reference maps weights across.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.json_io import read_json_file

MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2")

NO_ARCHITECTURE = frozenset({
    "architectures", "model_type", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
    "dtype", "transformers_version", "_name_or_path", "use_cache", "initializer_range",
    "tokenizer_class", "output_attentions", "output_hidden_states", "return_dict",
    "task_specific_params", "summary_type", "summary_use_proj", "summary_activation",
    "summary_proj_to_labels", "summary_first_dropout",
})
"""Keys that describe no part of the architecture (ids, dtype of the stored weights, metadata)."""


def _require(data: Mapping[str, Any], key: str, wanted: Any, default: Any, why: str) -> None:
    value = data.get(key, default)
    if value != wanted:
        raise UserError(f"config.json: {key}={value!r} is not modelled ({why})")


def _gpt2(data: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    act = data.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise UserError(f"config.json: activation_function={act!r} is not modelled (only GELU's tanh "
                        "form, gelu_new)")
    positions = data.get("n_positions", 1024)
    if data.get("n_ctx", positions) != positions:
        raise UserError(f"config.json: n_ctx={data['n_ctx']!r} differs from n_positions={positions!r}")
    pdrop = {k: data.get(k, 0.1) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(pdrop.values())) != 1:
        raise UserError(f"config.json: dropout rates {pdrop} differ (one dropout p is modelled)")
    _require(data, "scale_attn_weights", True, True, "attention is scaled by 1/sqrt(d_k)")
    _require(data, "scale_attn_by_inverse_layer_idx", False, False, "no per-layer scaling")
    _require(data, "reorder_and_upcast_attn", False, False, "no reordered/upcast attention")
    _require(data, "add_cross_attention", False, False, "decoder-only, no cross-attention")
    d = data["n_embd"]
    fields = dict(
        vocab_size=data["vocab_size"], context_length=positions, d_model=d,
        num_layers=data["n_layer"], num_heads=data["n_head"], d_ff=data.get("n_inner") or 4 * d,
        norm_eps=data.get("layer_norm_epsilon", 1e-5), norm="layernorm", positions="learned",
        ffn="gelu", bias="all", tie_embeddings=data.get("tie_word_embeddings", True),
        dropout=float(pdrop["resid_pdrop"]),
    )
    used = {"vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner",
            "activation_function", "layer_norm_epsilon", "tie_word_embeddings", *pdrop,
            "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
            "add_cross_attention"}
    return fields, used


def _rope_scaling(data: Mapping[str, Any]) -> tuple[float, float, float, int] | None:
    scaling = data.get("rope_scaling")
    if scaling is None:
        return None
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise UserError(f"config.json: rope_scaling of type {kind!r} is not modelled (only llama3)")
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    extra = set(scaling) - {*keys, "rope_type", "type"}
    if extra:
        raise UserError(f"config.json: rope_scaling.{sorted(extra)[0]} is not modelled")
    return tuple(scaling[k] for k in keys)  # type: ignore[return-value]


def _llama_like(data: Mapping[str, Any], model_type: str) -> tuple[dict[str, Any], set[str]]:
    _require(data, "hidden_act", "silu", "silu", "the MLP is SwiGLU")
    d, heads = data["hidden_size"], data["num_attention_heads"]
    if data.get("head_dim") not in (None, d // heads) or d % heads:
        raise UserError(f"config.json: head_dim={data.get('head_dim')!r} is not hidden_size / "
                        f"num_attention_heads = {d / heads:g} (not modelled)")
    if data.get("pretraining_tp", 1) != 1:
        raise UserError(f"config.json: pretraining_tp={data['pretraining_tp']!r} is not modelled")
    used = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rope_theta",
            "rms_norm_eps", "hidden_act", "tie_word_embeddings", "rope_scaling", "attention_dropout",
            "pretraining_tp"}
    if model_type == "qwen2":
        bias = "qkv"  # Qwen2's attention adds biases to q, k and v, never to o
        if data.get("use_sliding_window", False):
            raise UserError("config.json: use_sliding_window=true (sliding-window attention) is not "
                            "modelled")
        used |= {"use_sliding_window", "sliding_window", "max_window_layers"}  # inactive when off
    else:
        attention_bias, mlp_bias = data.get("attention_bias", False), data.get("mlp_bias", False)
        if mlp_bias and not attention_bias:
            raise UserError("config.json: mlp_bias=true without attention_bias is not modelled")
        bias = "all" if mlp_bias else "attention" if attention_bias else "none"
        used |= {"attention_bias", "mlp_bias"}
        if model_type == "mistral":
            if data.get("sliding_window") is not None:
                raise UserError(f"config.json: sliding_window={data['sliding_window']!r} "
                                "(sliding-window attention) is not modelled")
            used.add("sliding_window")
    kv = data.get("num_key_value_heads")
    fields = dict(
        vocab_size=data["vocab_size"], context_length=data["max_position_embeddings"], d_model=d,
        num_layers=data["num_hidden_layers"], num_heads=heads,
        num_kv_heads=None if kv in (None, heads) else kv, d_ff=data["intermediate_size"],
        rope_theta=float(data.get("rope_theta", 10_000.0)), rope_scaling=_rope_scaling(data),
        norm_eps=data.get("rms_norm_eps", 1e-6), norm="rmsnorm", positions="rope", ffn="swiglu",
        bias=bias, tie_embeddings=data.get("tie_word_embeddings", False),
        dropout=float(data.get("attention_dropout", 0.0)),
    )
    return fields, used


_READERS: dict[str, Callable[[Mapping[str, Any]], tuple[dict[str, Any], set[str]]]] = {
    "gpt2": _gpt2,
    "llama": lambda data: _llama_like(data, "llama"),
    "mistral": lambda data: _llama_like(data, "mistral"),
    "qwen2": lambda data: _llama_like(data, "qwen2"),
}


def _load(source: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    data = read_json_file(source, "config.json")
    if not isinstance(data, dict):
        raise UserError(f"{source}: a config.json must hold a JSON object, got {type(data).__name__}")
    return data


def from_hf_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> ModelConfig:
    """The ModelConfig of a Hugging Face config.json (a path, or its dict). UserError for a
    model_type other than gpt2/llama/mistral/qwen2, a missing size, or any key the project does
    not model (named in the message)."""
    data = _load(source)
    model_type = data.get("model_type")
    if model_type not in _READERS:
        raise UserError(f"config.json: model_type {model_type!r} is not supported; choose one of: "
                        f"{', '.join(MODEL_TYPES)}")
    try:
        fields, used = _READERS[model_type](data)
    except KeyError as exc:
        raise UserError(f"config.json ({model_type}) lacks {exc.args[0]!r}") from None
    unknown = sorted(set(data) - used - NO_ARCHITECTURE)
    if unknown:
        raise UserError(f"config.json: {unknown[0]} is not modelled by this project "
                        f"(model_type {model_type}); remove it only if it does not change the model")
    for name in ("dropout", "norm_eps", "rope_theta"):
        if isinstance(fields.get(name), float) and not math.isfinite(fields[name]):
            raise UserError(f"config.json: {name} is not finite")
    return ModelConfig(**fields, attention="sdpa")


@cache
def published_config(name: str) -> ModelConfig:
    """The preset `name`, read from the config.json its publisher released (accounting/presets)."""
    text = resources.files("accounting").joinpath("presets", f"{name}.json").read_text(encoding="utf-8")
    return from_hf_config(json.loads(text))


def hf_config_path(name: str) -> Path:
    """Where the config.json of published preset `name` is stored (for the oracle tests)."""
    return Path(str(resources.files("accounting").joinpath("presets", f"{name}.json")))
