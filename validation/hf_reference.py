"""Ground truth from Hugging Face `transformers`, independent of this project's model: a published
config.json (model_type gpt2, llama, mistral or qwen2) is built as HF's causal LM on the meta
device (shapes, no memory: Llama-3-70B builds in a second) and measured.

    hf_parameters(hf_config) -> HFParameters
    hf_training_step(hf_config, *, batch_size, seq_len, dtype, attn_implementation, dropout,
                     kernels, backward) -> HFTrainingStep
    hf_kv_cache(hf_config, *, batch_size, prefill_tokens, dtype) -> HFKVCache
    hf_model(hf_config, *, dtype, attn_implementation, dropout, device="meta") -> the model
    our_state_dict(hf_model, cfg) -> the same weights as this project's TransformerLM(cfg) state dict
    hf_pretrained_config(hf_config, *, dropout) -> transformers' config object
    check_hf_config(hf_config) -> None (ValueError naming the first field it cannot represent)

Conventions:
- parameters: elements of the unique parameter tensors (tied embeddings once); buffers excluded.
- FLOPs: torch.utils.flop_counter.FlopCounterMode (2mnp per matmul; GPT-2's Conv1D is addmm,
  its bias add not counted; attention counted dense: eager's QK^T and weights.V are full (T, T)
  bmm's, and torch's sdpa formulas ignore is_causal too; non-matmul work is not counted).
- saved bytes: what autograd saves for backward in the training forward including the loss
  (HF's own ForCausalLMLoss on labels = input_ids, which upcasts the logits to float32), via
  saved_tensors_hooks: each storage once, parameters excluded. dtype "bfloat16" builds the model
  in bf16 (HF's RMSNorm and loss upcast to float32 inside), the project's convention for
  mixed-precision activations.
- kernels: "meta" measures what torch runs on the meta device, whose dropout is CPU's (a mask in
  the input's dtype) and whose sdpa is the math decomposition (saves (B, h, T, T)); "cuda"
  emulates CUDA's dispatch on meta (dropout -> native_dropout, a bool mask; sdpa -> flash or
  memory-efficient attention). See validation._hf_instruments.CudaKernels.
- bytes are bytes; GB = 1e9.
`transformers` is a test/benchmark dependency (the `dev` extra), imported inside the functions.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SUPPORTED_MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2")
DTYPES = ("float32", "bfloat16")
_LEGACY_FIELDS = {"rope_theta", "rope_scaling", "torch_dtype", "transformers_version", "architectures",
                  "_name_or_path"}
"""Fields a config class does not list but HF reads (rope_* become rope_parameters, torch_dtype
becomes dtype) or that only describe the file."""
_REFUSED = {
    "quantization_config": "a meta-device build from the config holds unquantized weights",
    "auto_map": "remote code: the oracle builds only transformers' own classes",
}

Kernels = Literal["meta", "cuda"]


@dataclass(frozen=True)
class HFParameters:
    """Parameter elements of HF's model (unique tensors, tied embeddings once)."""

    model_type: str
    parameters: int
    parameters_by_component: dict[str, int] = field(hash=False)
    tied_embeddings: bool


@dataclass(frozen=True)
class HFTrainingStep:
    """One training forward (+ loss) and, when measured, its backward, on the meta device."""

    model_type: str
    batch_size: int
    seq_len: int
    dtype: str
    attn_implementation: str
    dropout: bool
    kernels: str
    attention_kernels: tuple[str, ...]        # sdpa kernels that ran ("math" on meta unless emulated)
    forward_flops: int                        # FlopCounterMode total of the forward + loss
    forward_flops_by_component: dict[str, int] = field(hash=False)
    backward_flops: int | None = None         # FlopCounterMode total of loss.backward(); None if not run
    saved_bytes: int = 0                      # saved for backward, storages once, parameters excluded
    saved_bytes_by_component: dict[str, int] = field(default_factory=dict, hash=False)
    loss: str = "HF ForCausalLMLoss(labels=input_ids), logits upcast to float32"
    checks_answered: int = 0                  # HF's meta-device data checks answered (see _hf_instruments)


@dataclass(frozen=True)
class HFKVCache:
    """HF's DynamicCache after a no-grad prefill of `prefill_tokens` tokens per row."""

    model_type: str
    batch_size: int
    prefill_tokens: int
    dtype: str
    kv_cache_bytes: int                       # keys + values, all layers, storages once
    layers: int
    key_shape: tuple[int, ...]                # layer 0's keys: (B, num_key_value_heads, N, head_dim)
    value_shape: tuple[int, ...]


def check_hf_config(hf_config: Mapping[str, Any]) -> None:
    """ValueError (one line naming the field) for what this oracle cannot represent faithfully:
    a missing or unsupported model_type, a field HF would silently ignore (unknown to the config
    class: a typo such as num_key_value_head), quantization, remote code, or a GPT-2 n_ctx other
    than n_positions (HF ignores n_ctx)."""
    model_type = hf_config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"model_type: {model_type!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}")
    for name, reason in _REFUSED.items():
        if name in hf_config:
            raise ValueError(f"{name}: not representable ({reason})")
    known = _known_fields(model_type)
    for name in hf_config:
        if name not in known and name not in _LEGACY_FIELDS and not (model_type == "gpt2" and name == "n_ctx"):
            raise ValueError(f"{name}: not a field of transformers' {model_type} config (HF would ignore it)")
    n_positions = hf_config.get("n_positions")
    if model_type == "gpt2" and hf_config.get("n_ctx", n_positions) != n_positions:
        raise ValueError(f"n_ctx: {hf_config['n_ctx']} differs from n_positions (HF ignores n_ctx)")


def _known_fields(model_type: str) -> set[str]:
    from transformers import AutoConfig

    default = AutoConfig.for_model(model_type)
    return set(default.to_dict()) | set(vars(default)) | set(type(default).attribute_map)


def _dropout_fields_zeroed(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every dropout probability (…_pdrop, …dropout) set to 0."""
    return {k: (0.0 if (k.endswith("pdrop") or k.endswith("dropout")) and isinstance(v, float) else v)
            for k, v in hf_config.items()}


def hf_pretrained_config(hf_config: Mapping[str, Any], *, dropout: bool = True):
    """transformers' config object for `hf_config` (checked first; dropout=False zeroes every
    dropout probability). The file's torch_dtype is dropped: the dtype is the caller's choice."""
    from transformers import AutoConfig

    check_hf_config(hf_config)
    # a deep copy: transformers writes into nested dicts (rope_scaling gains rope_theta)
    fields = copy.deepcopy(dict(hf_config if dropout else _dropout_fields_zeroed(hf_config)))
    fields.pop("torch_dtype", None)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def hf_model(hf_config: Mapping[str, Any], *, dtype: str = "float32", attn_implementation: str = "eager",
             dropout: bool = True, device: str = "meta"):
    """HF's causal LM for `hf_config` on `device` (the meta device unless told; "cpu" draws HF's
    own random init), in train mode. dropout=False zeroes every dropout probability in the config
    (the model stays in train mode)."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    config = hf_pretrained_config(hf_config, dropout=dropout)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype),
                                                 attn_implementation=attn_implementation)
    # GPT2LMHeadModel's class name maps to no loss; HF then falls back to ForCausalLMLoss with a
    # warning. Name it, so every model type is measured with the same loss, silently.
    model.loss_type = "ForCausalLM"
    return model.train()


def _interleave_rope_rows(weight, heads: int):
    """Rows of a q/k projection (weight (heads*d_k, in) or bias (heads*d_k,)) from HF's RoPE layout
    (dims j and j + d_k/2 rotate together) to this project's (dims 2j and 2j+1 rotate together)."""
    rows = weight.shape[0]
    d_k = rows // heads
    # (heads, 2 halves, d_k/2, ...) -> (heads, d_k/2, 2 halves, ...): row 2j <- j, 2j+1 <- j + d_k/2
    return weight.reshape(heads, 2, d_k // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def our_state_dict(model, cfg) -> dict[str, Any]:
    """HF `model`'s weights as this project's TransformerLM(cfg) state dict (cfg from
    accounting.hf_config of the same config.json): GPT-2's Conv1D weights are (in, out) and its
    q, k, v one fused c_attn; Llama-family q/k rows are reordered for the RoPE pairing."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out: dict[str, Any] = {}
    if cfg.positions == "learned":  # GPT-2
        d = cfg.d_model
        out["token_embeddings.weight"] = sd["transformer.wte.weight"]
        out["position_embeddings.weight"] = sd["transformer.wpe.weight"]
        for i in range(cfg.num_layers):
            src, dst = f"transformer.h.{i}.", f"layers.{i}."
            qkv_w, qkv_b = sd[src + "attn.c_attn.weight"], sd[src + "attn.c_attn.bias"]
            for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[dst + f"attn.{name}.weight"] = qkv_w[:, j * d:(j + 1) * d].T
                out[dst + f"attn.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
            pairs = {"attn.c_proj": "attn.output_proj", "mlp.c_fc": "ffn.w1", "mlp.c_proj": "ffn.w2"}
            for hf, ours in pairs.items():
                out[dst + ours + ".weight"] = sd[src + hf + ".weight"].T
                out[dst + ours + ".bias"] = sd[src + hf + ".bias"]
            for hf, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
                out[dst + ours + ".weight"] = sd[src + hf + ".weight"]
                out[dst + ours + ".bias"] = sd[src + hf + ".bias"]
        out["ln_final.weight"], out["ln_final.bias"] = sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]
    else:  # llama, mistral, qwen2
        out["token_embeddings.weight"] = sd["model.embed_tokens.weight"]
        heads = {"q_proj": cfg.num_heads, "k_proj": cfg.kv_heads}
        for i in range(cfg.num_layers):
            src, dst = f"model.layers.{i}.", f"layers.{i}."
            for hf, ours in (("self_attn.q_proj", "attn.q_proj"), ("self_attn.k_proj", "attn.k_proj"),
                             ("self_attn.v_proj", "attn.v_proj"), ("self_attn.o_proj", "attn.output_proj"),
                             ("mlp.gate_proj", "ffn.w1"), ("mlp.up_proj", "ffn.w3"),
                             ("mlp.down_proj", "ffn.w2")):
                for part in ("weight", "bias"):
                    if src + hf + "." + part in sd:
                        tensor = sd[src + hf + "." + part]
                        short = hf.rsplit(".", 1)[1]
                        if short in heads:
                            tensor = _interleave_rope_rows(tensor, heads[short])
                        out[dst + ours + "." + part] = tensor
            out[dst + "ln1.weight"] = sd[src + "input_layernorm.weight"]
            out[dst + "ln2.weight"] = sd[src + "post_attention_layernorm.weight"]
        out["ln_final.weight"] = sd["model.norm.weight"]
    # a tied head is the embedding itself (its state-dict entry too)
    out["lm_head.weight"] = out["token_embeddings.weight"] if cfg.tie_embeddings else sd["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


def hf_parameters(hf_config: Mapping[str, Any]) -> HFParameters:
    """Unique parameter elements of HF's build, total and per module (layer indices folded)."""
    from validation._hf_instruments import component_name

    model = hf_model(hf_config)
    by_component: dict[str, int] = {}
    for name, p in model.named_parameters():  # shared (tied) parameters are listed once
        key = component_name(name.rsplit(".", 1)[0])
        by_component[key] = by_component.get(key, 0) + p.numel()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return HFParameters(hf_config["model_type"], sum(by_component.values()), by_component, tied)


def hf_training_step(hf_config: Mapping[str, Any], *, batch_size: int = 1, seq_len: int | None = None,
                     dtype: str = "float32", attn_implementation: str = "eager", dropout: bool = True,
                     kernels: Kernels = "meta", backward: bool = True) -> HFTrainingStep:
    """Forward + HF's loss on (batch_size, seq_len) token ids (seq_len defaults to the config's
    context), then loss.backward() if `backward`, with FlopCounterMode, per-module FLOPs and the
    saved-tensor hooks attached."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from validation._hf_instruments import CudaKernels, FlopsByComponent, ModuleStack, saved_bytes_by_component

    if kernels not in ("meta", "cuda"):
        raise ValueError(f"kernels: {kernels!r} is not 'meta' or 'cuda'")
    model = hf_model(hf_config, dtype=dtype, attn_implementation=attn_implementation, dropout=dropout)
    seq_len = seq_len or model.config.max_position_embeddings  # GPT-2: n_positions (attribute_map)
    ids = torch.zeros(batch_size, seq_len, dtype=torch.long, device="meta")
    stack = ModuleStack(model)
    by_component = FlopsByComponent(stack)
    cuda = CudaKernels()
    counter = FlopCounterMode(display=False)
    with stack.tracking(), counter, by_component, cuda if kernels == "cuda" else contextlib.nullcontext():
        with saved_bytes_by_component(stack, list(model.parameters())) as saved:
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        forward = counter.get_total_flops()
        flops_by_component = dict(by_component.flops)
        if backward:
            loss.backward()
    if sum(flops_by_component.values()) != forward:  # both use torch's registry: must agree
        raise RuntimeError(f"per-module FLOPs {sum(flops_by_component.values())} != FlopCounterMode {forward}")
    kernels_run = tuple(sorted(cuda.kernels)) if kernels == "cuda" else (
        ("math",) if attn_implementation == "sdpa" else ())
    return HFTrainingStep(
        hf_config["model_type"], batch_size, seq_len, dtype, attn_implementation, dropout, kernels,
        kernels_run, int(forward), flops_by_component,
        int(counter.get_total_flops() - forward) if backward else None,
        sum(saved.values()), dict(saved), checks_answered=by_component.checks_answered)


def hf_kv_cache(hf_config: Mapping[str, Any], *, batch_size: int = 1, prefill_tokens: int,
                dtype: str = "bfloat16", attn_implementation: str = "sdpa") -> HFKVCache:
    """Bytes of HF's DynamicCache after running `prefill_tokens` tokens per row (no grad, eval)."""
    import torch

    from validation._hf_instruments import FlopsByComponent, storage_key

    model = hf_model(hf_config, dtype=dtype, attn_implementation=attn_implementation).eval()
    ids = torch.zeros(batch_size, prefill_tokens, dtype=torch.long, device="meta")
    with torch.no_grad(), FlopsByComponent(None):  # answers HF's meta-device checks; FLOPs unused
        out = model(input_ids=ids, use_cache=True)
    # transformers renamed the output field past_key_values -> cache (5.2x); the old name warns
    cache = out.cache if hasattr(type(out), "cache") else out.past_key_values
    layers = cache.layers
    storages = {storage_key(t): t.untyped_storage().nbytes()
                for layer in layers for t in (layer.keys, layer.values)}
    return HFKVCache(hf_config["model_type"], batch_size, prefill_tokens, dtype, sum(storages.values()),
                     len(layers), tuple(layers[0].keys.shape), tuple(layers[0].values.shape))
