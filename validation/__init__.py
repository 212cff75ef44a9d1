"""Validation: the real model, optimizer and tokenizer run with instruments, every measured number
beside the accounting's symbolic one.

`import validation` imports no torch; measuring does (loaded on first use, PEP 562).

Public API:
  validation.core.measure(cfg, *, device="meta", batch_size=1, context_length=None,
          dtype="float32", steps=1, progress=None) -> Measurement   (progress(phase, fraction_done))
  Measurement (.rows, .hardware, .config, .settings, .notes, .row(q, c), .to_dict(), .from_dict(d))
  ComparisonRow (quantity, component, unit, symbolic, measured, convention, reason; .rel_diff)
  measure_tokenizer(text=None, tokenizer=None, *, vocab_size=4096) -> TokenizerMeasurement (.rows)
  load_results(directory=None) -> list[Measurement]   (validation/results/*.json)
  validation.distributed.measure(cfg, *, layout, batch_size=None, context_length=None,
          device="cpu") -> Measurement   (spawns layout.world_size ranks; per-rank bytes and
          every collective beside accounting.parallel / accounting.communication);
  validation.distributed.measure_layouts(cfg, layouts, *, batch_size) -> {layout: [RankResult]}
  render(measurement, fmt="table"|"markdown"|"json") -> str
CLI: python -m validation.measure --help (the module `validation.measure` is that CLI; the function
is `validation.core.measure`, so no module name shadows an API name)
"""

from __future__ import annotations

from accounting.lazy import lazy_exports
from validation.rows import SCHEMA_VERSION, ComparisonRow, Measurement

_LAZY = {
    "measure_tokenizer": "tokenizer_check", "TokenizerMeasurement": "tokenizer_check",
    "load_results": "results", "RESULTS_DIR": "results", "render": "render",
}

__all__ = ["SCHEMA_VERSION", "ComparisonRow", "Measurement", *_LAZY]


__getattr__, __dir__ = lazy_exports("validation", _LAZY, globals(), __all__)
