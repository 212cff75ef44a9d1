"""Validation: the real model, optimizer and tokenizer run with instruments, every measured number
beside the accounting's symbolic one.

`import validation` imports no torch; measuring does (loaded on first use, PEP 562).

Public API:
  validation.core.measure(cfg, *, device="meta", batch_size=1, context_length=None,
          dtype="float32", steps=1, optimizer="reference", checkpointing=False, timeline=True,
          progress=None) -> Measurement
          (dtype: "float32" | "bfloat16" (the trainer's autocast) | "bfloat16-pure";
           progress(phase_name, fraction_done))
  Measurement (.rows, .hardware, .config, .settings, .notes, .row(q, c), .to_dict(), .from_dict(d))
  ComparisonRow (quantity, component, unit, symbolic, measured, convention, reason; .rel_diff)
  measure_tokenizer(text=None, tokenizer=None, *, vocab_size=4096) -> TokenizerMeasurement (.rows)
  load_results(directory=None) -> list[Measurement]   (validation/results/*.json)
  validation.distributed.measure(cfg, *, layout, batch_size=None, context_length=None,
          device="cpu") -> Measurement   (spawns layout.world_size ranks; per-rank bytes and
          every collective beside accounting.parallel / accounting.communication);
  validation.distributed.measure_layouts(cfg, layouts, *, batch_size) -> {layout: [RankResult]}
  render(measurement, fmt="table"|"markdown"|"json") -> str
  hf_parameters / hf_training_step / hf_kv_cache(hf_config, ...): ground truth from Hugging Face
          transformers on the meta device (validation.hf_reference; needs the `dev` extra)
  validation.inference.measure_inference(cfg, *, device="meta", batch_size=1, prompt_tokens=16,
          new_tokens=16, dtype="float32", peak_flops_per_s=None, hbm_bytes_per_s=None) -> Measurement
          (the KV cache, prefill and decode step beside accounting.inference; CLI:
          python -m validation.measure_inference)
CLI: python -m validation.measure --help (the module `validation.measure` is that CLI; the function
is `validation.core.measure`, so no module name shadows an API name)
"""

from __future__ import annotations

from accounting.lazy import lazy_exports
# render is bound eagerly: the function shares its name with its submodule, and a lazy export would
# be shadowed by the submodule whenever something imports `validation.render` first (the campaign does)
from validation.render import render
from validation.rows import SCHEMA_VERSION, ComparisonRow, Measurement

_LAZY = {
    "measure_tokenizer": "tokenizer_check", "TokenizerMeasurement": "tokenizer_check",
    "load_results": "results", "RESULTS_DIR": "results",
    "hf_parameters": "hf_reference", "hf_training_step": "hf_reference", "hf_kv_cache": "hf_reference",
}

__all__ = ["SCHEMA_VERSION", "ComparisonRow", "Measurement", "render", *_LAZY]


__getattr__, __dir__ = lazy_exports("validation", _LAZY, globals(), __all__)
