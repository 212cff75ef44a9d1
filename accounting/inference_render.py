"""An InferenceReport as tables (text, Markdown, LaTeX) or JSON (`python -m accounting inference`).

JSON (schema_version 1), a top-level object:
  "config":   every ModelConfig field
  "request":  batch_size (B), prompt_tokens (P), new_tokens (G), sequence_tokens (S = P + G - 1),
              decode_position (t of the last decode step, S - 1), dtype, weight_bits,
              compute_dtype (= the KV cache's), what_if (int8 / int4)
  "gpu":      name, peak_flops_per_s (dense, compute dtype), hbm_bytes_per_s, memory_budget_bytes,
              ridge_point (FLOPs per byte: peak / bandwidth), source, bandwidth_source
  "conventions": accounting.inference.InferenceConventions
and one entry per quantity, each {"value", "unit", "formula" (LaTeX), "note"}; the step quantities
also carry "components" [{"name", "value", "formula", "note"}]:
  weight_bytes, kv_cache_bytes, kv_cache_bytes_per_token, serving_memory_bytes,
  prefill_flops, prefill_bytes, prefill_arithmetic_intensity,
  decode_flops, decode_bytes_per_token, decode_arithmetic_intensity (one decode step at t = S - 1,
  the whole batch),
  time_to_first_token_s, time_per_output_token_s (null when G = 1), tokens_per_s, request_seconds
  (each time also has "bound": "compute" | "memory", "compute_s", "memory_s" where one step),
  largest_batch, largest_context_tokens, kv_token_capacity (null when the weights alone exceed the
  budget).
Integer counts are exact JSON integers; times, rates and intensities are floats.
"""

from __future__ import annotations

import json
from typing import Any

import sympy as sp

import accounting
from accounting.format import (
    fmt_bytes, fmt_bytes_per_s, fmt_flops, fmt_flops_per_s, fmt_int, fmt_seconds, fmt_share,
)
from accounting.inference_report import InferenceReport, PhaseBound
from accounting.render_json import latex
from accounting.rows import Row
from accounting.tables import Table

# Importing the submodule accounting.render binds the package attribute `accounting.render` to the
# module, shadowing the lazily exported function of that name: resolve the export first.
accounting.render  # noqa: B018
from accounting.render import render_as  # noqa: E402

SCHEMA_VERSION = 1

_F = {
    "serving_memory_bytes": r"W + \mathrm{KV}(S)",
    "prefill_arithmetic_intensity": r"F_{\mathrm{prefill}} / Y_{\mathrm{prefill}}",
    "decode_arithmetic_intensity": r"F_{\mathrm{decode}}(t) / Y_{\mathrm{decode}}(t)",
    "time_to_first_token_s": r"\max\left(F_{\mathrm{prefill}} / \mathrm{peak},\ "
                             r"Y_{\mathrm{prefill}} / \mathrm{BW}\right)",
    "time_per_output_token_s": r"\frac{1}{G-1} \sum_{t=P}^{P+G-2} \max\left(F_{\mathrm{decode}}(t) / "
                               r"\mathrm{peak},\ Y_{\mathrm{decode}}(t) / \mathrm{BW}\right)",
    "tokens_per_s": r"B / \mathrm{TPOT}",
    "request_seconds": r"\mathrm{TTFT} + (G - 1)\,\mathrm{TPOT}",
    "largest_batch": r"\left\lfloor \frac{M - W}{S \cdot \mathrm{KV}_{\mathrm{token}}} \right\rfloor",
    "largest_context_tokens": r"\left\lfloor \frac{M - W}{B \cdot \mathrm{KV}_{\mathrm{token}}} \right\rfloor",
    "kv_token_capacity": r"\left\lfloor \frac{M - W}{\mathrm{KV}_{\mathrm{token}}} \right\rfloor",
}
"""LaTeX of the derived quantities (F: FLOPs, Y: bytes moved, W: weight bytes, M: the budget)."""


def _q(value: Any, unit: str, formula: str, note: str = "", **extra: Any) -> dict[str, Any]:
    return {"value": value, "unit": unit, "formula": formula, "note": note, **extra}


def _row(r: Row) -> dict[str, Any]:
    return _q(r.value, r.unit, latex(r.formula), r.note)


def _step(rows: list[Row], unit: str, note: str) -> dict[str, Any]:
    whole = sp.Add(*(r.formula for r in rows))
    return _q(sum(r.value for r in rows), unit, latex(sp.expand(whole)), note,
              components=[{"name": r.name, "value": r.value, "formula": latex(r.formula), "note": r.note}
                          for r in rows])


def _time(key: str, seconds: float | None, phase: PhaseBound | None, note: str) -> dict[str, Any]:
    extra = {} if phase is None else {"bound": phase.bound, "compute_s": phase.compute_seconds,
                                      "memory_s": phase.memory_seconds}
    return _q(seconds, "seconds", _F[key], note, **extra)


def inference_to_dict(r: InferenceReport) -> dict[str, Any]:
    """The JSON-ready dict of the schema above."""
    req, dt, cap = r.request, r.dtype, r.capacity
    at = f"one decode step at t = {r.decode_position:,} (the cache full), all B sequences"
    return {
        "schema_version": SCHEMA_VERSION,
        "config": r.config.to_dict(),
        "request": {"batch_size": req.batch_size, "prompt_tokens": req.prompt_tokens,
                    "new_tokens": req.new_tokens, "sequence_tokens": req.sequence_tokens,
                    "decode_position": r.decode_position, "dtype": dt.name,
                    "weight_bits": dt.weight_bits, "compute_dtype": dt.compute, "what_if": dt.what_if},
        "gpu": {"name": r.gpu, "peak_flops_per_s": r.peak_flops_per_s, "hbm_bytes_per_s": r.hbm_bytes_per_s,
                "memory_budget_bytes": cap.budget_bytes, "ridge_point": r.ridge_point,
                "source": r.gpu_source, "bandwidth_source": r.bandwidth_source},
        "conventions": r.conventions.as_dict(),
        "weight_bytes": _row(r.weight_bytes),
        "kv_cache_bytes": _row(r.kv_cache_bytes),
        "kv_cache_bytes_per_token": _row(r.kv_bytes_per_token),
        "serving_memory_bytes": _q(cap.memory_bytes, "bytes", _F["serving_memory_bytes"]),
        "prefill_flops": _step(r.prefill.flops, "flops", "the forward over P tokens, LM head on the last"),
        "prefill_bytes": _step(r.prefill.bytes, "bytes", "weights, embedding rows, KV read and written"),
        "prefill_arithmetic_intensity": _q(r.prefill.arithmetic_intensity, "flops/byte",
                                           _F["prefill_arithmetic_intensity"]),
        "decode_flops": _step(r.decode.flops, "flops", at),
        "decode_bytes_per_token": _step(r.decode.bytes, "bytes", at),
        "decode_arithmetic_intensity": _q(r.decode.arithmetic_intensity, "flops/byte",
                                          _F["decode_arithmetic_intensity"], at),
        "time_to_first_token_s": _time("time_to_first_token_s", r.time_to_first_token_s, r.prefill,
                                       "roofline bound of the prefill"),
        "time_per_output_token_s": _time("time_per_output_token_s", r.time_per_output_token_s, None,
                                         "mean roofline bound of the G - 1 decode steps"),
        "tokens_per_s": _q(r.tokens_per_s, "tokens/s", _F["tokens_per_s"], "decode, the whole batch"),
        "request_seconds": _q(r.request_seconds, "seconds", _F["request_seconds"]),
        "largest_batch": _q(r.largest_batch, "sequences", _F["largest_batch"],
                            f"sequences of S = {req.sequence_tokens:,} tokens beside the weights"),
        "largest_context_tokens": _q(r.largest_context, "tokens", _F["largest_context_tokens"],
                                     f"memory bound at B = {req.batch_size:,}; the model's "
                                     f"context_length is {r.config.context_length:,}"),
        "kv_token_capacity": _q(cap.kv_token_capacity, "tokens", _F["kv_token_capacity"],
                                "B * S summed over the batch"),
    }


def render_inference_json(r: InferenceReport) -> str:
    return json.dumps(inference_to_dict(r), indent=2) + "\n"


# ---- tables -----------------------------------------------------------------------------------
def _both(n: int) -> str:
    return f"{fmt_int(n)} bytes ({fmt_bytes(n)})"


def _optional(value, fmt) -> str:
    return "none (the weights alone exceed the budget)" if value is None else fmt(value)


def _request_table(r: InferenceReport) -> Table:
    cfg, req, dt = r.config, r.request, r.dtype
    what_if = ", weight-only what-if" if dt.what_if else ""
    weights = f"{dt.name} ({dt.weight_bits} bits per parameter{what_if})"
    return Table("Request", ("quantity", "value"), [
        ("model", f"V={cfg.vocab_size:,} L={cfg.num_layers} d={cfg.d_model} h={cfg.num_heads} "
                  f"h_kv={cfg.kv_heads} d_ff={cfg.d_ff} context_length={cfg.context_length:,} "
                  f"attention={cfg.attention}"),
        ("request", f"B={req.batch_size:,} sequences x (P={req.prompt_tokens:,} prompt + G={req.new_tokens:,} "
                    f"new tokens); S = P + G - 1 = {req.sequence_tokens:,} fed"),
        ("weights", weights),
        ("matmuls, activations, KV cache", dt.compute),
        ("GPU", f"{r.gpu}: peak {fmt_flops_per_s(r.peak_flops_per_s)} ({dt.compute}, dense), HBM "
                f"{fmt_bytes_per_s(r.hbm_bytes_per_s)}, budget {fmt_bytes(r.capacity.budget_bytes)}"),
        ("ridge point", f"{r.ridge_point:,.1f} FLOPs/byte (peak / bandwidth)"),
        ("sources", f"{r.gpu_source}; {r.bandwidth_source}"),
    ])


def _memory_table(r: InferenceReport) -> Table:
    cap, req = r.capacity, r.request
    fits = cap.memory_bytes <= cap.budget_bytes
    return Table("Serving memory (weights + KV cache)", ("quantity", "value", "formula"), [
        ("weights", _both(r.weight_bytes.value), r.weight_bytes.formula),
        ("KV cache", _both(r.kv_cache_bytes.value), r.kv_cache_bytes.formula),
        ("KV cache per token (one sequence)", _both(r.kv_bytes_per_token.value), r.kv_bytes_per_token.formula),
        ("serving memory", f"{_both(cap.memory_bytes)}{'' if fits else ' - exceeds the budget'}", "W + KV"),
        ("largest batch",
         _optional(r.largest_batch, lambda b: f"{b:,} sequences of {req.sequence_tokens:,} tokens"),
         "floor((M - W) / (S KV_token))"),
        ("largest context", _optional(r.largest_context, lambda s: f"{s:,} tokens at B = {req.batch_size:,} "
                                      f"(memory only; context_length {r.config.context_length:,})"),
         "floor((M - W) / (B KV_token))"),
        ("KV token capacity", _optional(cap.kv_token_capacity, lambda n: f"{n:,} tokens (B x S)"),
         "floor((M - W) / KV_token)"),
    ])


def _roofline_table(r: InferenceReport) -> Table:
    p, d = r.prefill, r.decode
    rows: list[tuple[object, ...]] = [("matmul FLOPs", fmt_flops(p.flops_total), fmt_flops(d.flops_total),
                                       sp.expand(sp.Add(*(x.formula for x in d.flops))))]
    rows += [(f"bytes: {a.name}", fmt_bytes(a.value), fmt_bytes(b.value), b.formula)
             for a, b in zip(p.bytes, d.bytes)]
    rows += [
        ("bytes moved", fmt_bytes(p.bytes_total), fmt_bytes(d.bytes_total),
         sp.expand(sp.Add(*(x.formula for x in d.bytes)))),
        ("arithmetic intensity", f"{p.arithmetic_intensity:,.1f} FLOPs/byte",
         f"{d.arithmetic_intensity:,.2f} FLOPs/byte", "F / Y"),
        ("compute time (F / peak)", fmt_seconds(p.compute_seconds), fmt_seconds(d.compute_seconds), ""),
        ("memory time (Y / BW)", fmt_seconds(p.memory_seconds), fmt_seconds(d.memory_seconds), ""),
        ("bound", f"{p.bound} ({fmt_seconds(p.seconds)})", f"{d.bound} ({fmt_seconds(d.seconds)})", "max"),
    ]
    return Table(f"Roofline: prefill and the last decode step (t = {r.decode_position:,})",
                 ("quantity", "prefill", "decode step", "decode formula"), rows)


def _time_table(r: InferenceReport) -> Table:
    tpot, rate = r.time_per_output_token_s, r.tokens_per_s
    return Table("Time bounds (lower bounds: datasheet peak and bandwidth)", ("quantity", "value"), [
        ("time to first token", f"{fmt_seconds(r.time_to_first_token_s)} ({r.prefill.bound}-bound)"),
        ("time per output token", "- (G = 1: no decode step)" if tpot is None else
         f"{fmt_seconds(tpot)} (mean of {r.request.new_tokens - 1:,} decode steps)"),
        ("tokens/s (decode, whole batch)", "-" if rate is None else f"{rate:,.0f}"),
        ("tokens/s per sequence", "-" if tpot is None else f"{1 / tpot:,.1f}"),
        ("whole request", fmt_seconds(r.request_seconds)),
        ("decode step: share of bytes that is KV cache",
         fmt_share(sum(x.value for x in r.decode.bytes if x.name.startswith("KV")) / r.decode.bytes_total)),
    ])


def _components(title: str, rows: list[Row]) -> Table:
    whole = sum(x.value for x in rows)
    body = [(x.name, fmt_int(x.value), fmt_flops(x.value), fmt_share(x.value / whole), x.formula) for x in rows]
    whole_formula = sp.expand(sp.Add(*(x.formula for x in rows)))
    body.append(("total", fmt_int(whole), fmt_flops(whole), "100.0%", whole_formula))
    return Table(title, ("component", "exact", "readable", "share", "formula"), body)


def inference_tables(r: InferenceReport) -> list[Table]:
    """All tables of an inference report, in print order."""
    conv = Table("Conventions", ("quantity", "value"), list(r.conventions.as_dict().items()))
    return [_request_table(r), _memory_table(r), _roofline_table(r), _time_table(r),
            _components("Prefill FLOPs by component", r.prefill.flops),
            _components(f"Decode step FLOPs by component (t = {r.decode_position:,})", r.decode.flops), conv]


def render_inference(r: InferenceReport, fmt: str = "table") -> str:
    """The report as "table" | "markdown" | "json" | "latex"."""
    return render_as(fmt, lambda: inference_tables(r), lambda: render_inference_json(r))
