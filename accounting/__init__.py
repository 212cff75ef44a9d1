"""Symbolic (sympy) accounting of parameters, FLOPs, memory and time for a Transformer LM.

Imports no torch. The model configuration and presets shared by the whole project live here
(`ModelConfig`, `get_preset`, `list_presets`). Everything else is loaded lazily on first use
(PEP 562), so `import accounting.config` (as the model does) does not pay for sympy.

Public API (all counts are exact ints; names of components follow the model's module paths,
aggregated over layers, e.g. "layers.attn.q_proj"):
  build_report(cfg, *, batch_size, context_length=None, dtype="float32", gpu=None, mfu=0.5,
               steps=10_000, memory_budget_bytes=None, peak_flops_per_s=None) -> Report
  render(report, fmt="table"|"markdown"|"json"|"latex") -> str;  report_to_dict(report) -> dict
  parameter_rows(cfg) -> list[Row];  total_parameters(cfg), non_embedding_parameters(cfg) -> int
  forward_flops_rows / backward_flops_rows(cfg, batch_size, context_length=None) -> list[Row]
  forward_flops / train_step_flops(cfg, batch_size, context_length=None) -> int
  nonmatmul_forward_rows(cfg, batch_size, context_length=None) -> list[Row]
  activation_rows / activation_bytes(cfg, batch_size, context_length=None,
                                     convention="implementation"|"textbook", dtype="float32")
  checkpointed_activation_bytes(...), checkpoint_recompute_flops(cfg, batch_size, context_length)
  adamw_state_bytes(cfg, dtype="float32"), adamw_step_flops(cfg), adamw_flops_per_element()
  memory_timeline(cfg, batch_size, context_length=None, dtype="float32", optimizer="reference",
                  checkpointing=False, sdpa_backend="fused"|"math", gradient_buckets=False)
                  -> Timeline (.events: TimelineEvent, .peak, .phase_peak(p))
  memory_rows / peak_memory_bytes(cfg, batch_size, context_length=None, dtype="float32",
                                  optimizer="reference", checkpointing=False)   (the timeline's peak;
                                  peak_memory_bytes also takes sdpa_backend)
  largest_batch_size(cfg, memory_budget_bytes, context_length=None, dtype="float32", ...) -> BatchFit
  check_fits(cfg, batch_size, free_bytes, ...) -> FitCheck;  InsufficientMemory (a ValueError)
  GPUS, get_gpu(name) -> GPU, custom_gpu(peak_flops_per_s, memory_bytes)
  training_seconds(cfg, *, batch_size, context_length, steps, peak_flops_per_s, mfu)
  mfu_from_tokens_per_s(cfg, tokens_per_s, *, peak_flops_per_s, context_length=None)
  dataset_estimate(text_bytes, bytes_per_token, vocab_size, tokenizer_bytes_per_s=None),
  chinchilla_tokens(parameters), token_dtype(vocab_size)
  flop_shares(cfg, context_length=None), attention_crossover(cfg)
  build_inference_report(cfg, *, batch_size, prompt_tokens, new_tokens, dtype="bfloat16", gpu=None,
                         peak_flops_per_s=None, hbm_bytes_per_s=None, memory_budget_bytes=None)
      -> InferenceReport;  render_inference(report, fmt);  inference_to_dict(report)
  kv_cache_bytes(cfg, batch_size, sequence_tokens, dtype), weight_bytes(cfg, dtype),
  prefill_flops_rows / decode_flops_rows / prefill_byte_rows / decode_byte_rows, SERVING_DTYPES,
  INFERENCE_CONVENTIONS
  Layout(world_size, strategy="ddp"|"zero1"|"zero2"|"zero3", tensor_parallel=1): a parallel layout;
  per_rank_memory_rows(cfg, layout, batch_size, context_length=None, dtype="float32") -> list[Row],
  largest_per_rank_batch(cfg, layout, budget_bytes) -> PerRankBatchFit | None,
  collectives(cfg, layout, batch_size, context_length=None, dtype="float32") -> list[Collective],
  parallel_section(cfg, layout, ...) -> ParallelSection (build_report(..., layout=, link=) adds it),
  LINKS, get_link(name) -> Link
  Conventions, DEFAULT_CONVENTIONS, ELEMENTWISE_FLOPS, elementwise_cost(op, alpha=1), DTYPE_BYTES
  fmt_int, fmt_count, fmt_flops, fmt_flops_per_s, fmt_bytes, fmt_bytes_per_s, fmt_seconds, fmt_share,
  parse_bytes
"""

from __future__ import annotations

from accounting.config import GPT2_PRESETS, ModelConfig, get_preset, list_presets
from accounting.lazy import lazy_exports

_LAZY: dict[str, str] = {
    "build_report": "report", "Report": "report",
    "render": "render", "report_to_dict": "render_json", "SCHEMA_VERSION": "render_json",
    "Row": "rows",
    "parameter_rows": "parameters", "total_parameters": "parameters",
    "non_embedding_parameters": "parameters",
    "forward_flops_rows": "flops", "backward_flops_rows": "flops", "forward_flops": "flops",
    "train_step_flops": "flops", "attention_recompute_flops": "flops",
    "nonmatmul_forward_rows": "nonmatmul", "nonmatmul_forward_flops": "nonmatmul",
    "activation_rows": "activations", "activation_bytes": "activations",
    "checkpointed_activation_bytes": "activations", "checkpoint_recompute_flops": "activations",
    "adamw_state_bytes": "optimizer", "adamw_step_flops": "optimizer",
    "adamw_flops_per_element": "optimizer", "ADAMW_OPS": "optimizer",
    "memory_rows": "memory", "peak_memory_bytes": "memory", "largest_batch_size": "memory",
    "BatchFit": "memory",
    "memory_timeline": "timeline", "Timeline": "timeline", "TimelineEvent": "timeline",
    "check_fits": "guard", "FitCheck": "guard", "InsufficientMemory": "guard",
    "GPUS": "hardware", "GPU": "hardware", "get_gpu": "hardware", "custom_gpu": "hardware",
    "training_seconds": "training_time", "mfu_from_tokens_per_s": "training_time",
    "tokens_per_s_at_mfu": "training_time",
    "dataset_estimate": "dataset", "DatasetEstimate": "dataset", "chinchilla_tokens": "dataset",
    "token_dtype": "dataset",
    "flop_shares": "compare", "attention_crossover": "compare",
    "build_inference_report": "inference_report", "InferenceReport": "inference_report",
    "render_inference": "inference_render", "inference_to_dict": "inference_render",
    **{name: "inference" for name in ("kv_cache_bytes", "weight_bytes", "prefill_flops_rows",
                                      "decode_flops_rows", "prefill_byte_rows", "decode_byte_rows",
                                      "SERVING_DTYPES", "INFERENCE_CONVENTIONS")},
    "Layout": "layout", "STRATEGIES": "layout",
    "per_rank_memory_rows": "parallel", "largest_per_rank_batch": "parallel",
    "PerRankBatchFit": "parallel", "collectives": "communication", "Collective": "communication",
    "parallel_section": "parallel_report", "ParallelSection": "parallel_report",
    "LINKS": "hardware", "Link": "hardware", "get_link": "hardware",
    "Conventions": "conventions", "DEFAULT_CONVENTIONS": "conventions",
    "ELEMENTWISE_FLOPS": "conventions", "elementwise_cost": "conventions", "DTYPE_BYTES": "conventions",
    **{name: "format" for name in ("fmt_int", "fmt_count", "fmt_flops", "fmt_flops_per_s", "fmt_bytes",
                                   "fmt_bytes_per_s", "fmt_seconds", "fmt_share", "parse_bytes")},
}

__all__ = ["GPT2_PRESETS", "ModelConfig", "get_preset", "list_presets", *_LAZY]


__getattr__, __dir__ = lazy_exports("accounting", _LAZY, globals(), __all__)
