"""The report as JSON: a stable, documented schema (version 2).

Version 2 (the memory timeline) keeps every key of version 1 and adds the "timeline" section;
what changed in meaning: memory.peak is the timeline's maximum (not the sum of every component),
memory.components is the peak event's composition (buffers and transients are new rows;
weights_bf16_copy counts only the matmul weights autocast casts), memory.largest_batch gains
"event" and "phase" (the binding event), and dtype "bfloat16" means autocast mixed precision.

Top-level object:
  "schema_version": 2
  "config":      every ModelConfig field, plus "batch_size", "context_length" (the step's T) and
                 "dtype" ("float32" | "bfloat16")
  "conventions": the counting rules (accounting.conventions.Conventions.as_dict(), incl. the
                 per-op "elementwise_flops" table)
  "parameters":  {"components": [component], "total", "non_embedding" (without token_embeddings,
                  lm_head kept), "non_embedding_without_head", "matmul" (every weight that multiplies
                  activations, the LM head even when tied), "bytes": {"float32", "bfloat16"}}
  "flops":       {"forward": {"components": [component], "total"},
                  "backward": {"components": [component], "total"},
                  "train_step" (forward + backward), "per_token" (float),
                  "nonmatmul_forward": {"components": [component], "total"},
                  "attention_recompute" (sdpa only, else 0),
                  "estimates": [{"name", "value", "formula", "ratio_to_exact", "n_meaning"}]}
  "memory":      {"components": [component] (the peak event's composition: weights, [buffers],
                  [weights_bf16_copy], gradients, optimizer_state, activations (the batch
                  included), transients), "peak",
                  "activations": {"implementation": {"components", "total"},
                                  "textbook": {"components", "total"},
                                  "checkpointed", "checkpoint_recompute_flops"},
                  "budget", "largest_batch": {"batch_size", "exact_solution", "fixed_bytes",
                                              "bytes_per_sequence", "inequality", "event",
                                              "phase"} or null when the GPU cannot hold the
                                              step's batch-independent memory}
  "timeline":    {"optimizer", "checkpointing", "categories": [name], "phases": [name],
                  "events": [{"index", "name", "phase", "boundary", "bytes": {category: int},
                              "total"}] (accounting.timeline: every allocating call of one
                  steady-state step, in order),
                  "peak": {"index", "name", "phase", "total"},
                  "phase_peaks": [{"phase", "index", "name", "total"}]}
  "optimizer":   {"name": "AdamW", "state_bytes", "flops_per_element", "step_flops",
                  "ops": [{"op", "aten", "flops_per_element"}]}
  "training":    {"gpu", "peak_flops_per_s", "mfu", "steps", "tokens", "seconds", "tokens_per_s",
                  "chinchilla_tokens" (20 per parameter)}
A component is {"name", "value", "formula" (LaTeX), "share" (of its list's total, float),
"unit", "note"}. Integer counts (params, FLOPs, bytes, tokens) are exact JSON integers; shares,
ratios, seconds and rates are floats.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import sympy as sp

from accounting.conventions import elementwise_cost
from accounting.report import Report
from accounting.rows import Row
from accounting.timeline import CATEGORIES, PHASES, Timeline

SCHEMA_VERSION = 2


@lru_cache(maxsize=4096)
def latex(expr: sp.Expr) -> str:
    """LaTeX of a formula (cached: sympy printing is the slow part of a report)."""
    return sp.latex(expr)


def _components(rows: list[Row]) -> dict[str, Any]:
    whole = sum(r.value for r in rows)
    return {
        "components": [
            {"name": r.name, "value": r.value, "formula": latex(r.formula),
             "share": r.value / whole if whole else 0.0, "unit": r.unit, "note": r.note}
            for r in rows
        ],
        "total": whole,
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON-ready dict of the schema above."""
    p, f, m, o, t = report.parameters, report.flops, report.memory, report.optimizer, report.training
    fit = m.largest_batch
    return {
        "schema_version": SCHEMA_VERSION,
        "config": {**report.config.to_dict(), "batch_size": report.batch_size,
                   "context_length": report.context_length, "dtype": report.dtype},
        "conventions": report.conventions.as_dict(),
        "parameters": {**_components(p.rows), "non_embedding": p.non_embedding,
                       "non_embedding_without_head": p.non_embedding_without_head, "matmul": p.matmul,
                       "bytes": dict(p.bytes_by_dtype)},
        "flops": {
            "forward": _components(f.forward), "backward": _components(f.backward),
            "train_step": f.train_step,
            "per_token": f.train_step / (report.batch_size * report.context_length),
            "nonmatmul_forward": _components(f.nonmatmul_forward),
            "attention_recompute": f.attention_recompute,
            "estimates": [{"name": e.name, "value": e.value, "formula": latex(e.formula),
                           "ratio_to_exact": e.ratio, "n_meaning": e.n_meaning} for e in f.estimates],
        },
        "memory": {
            **_components(m.rows), "peak": m.peak_bytes,
            "activations": {**{c: _components(rows) for c, rows in m.activations.items()},
                            "checkpointed": m.checkpointed_bytes,
                            "checkpoint_recompute_flops": m.checkpoint_recompute_flops},
            "budget": m.budget_bytes,
            "largest_batch": None if fit is None else {
                "batch_size": fit.batch_size, "exact_solution": fit.exact_solution,
                "fixed_bytes": fit.fixed_bytes, "bytes_per_sequence": fit.bytes_per_sequence,
                "inequality": fit.inequality, "event": fit.event, "phase": fit.phase},
        },
        "timeline": timeline_to_dict(m.timeline),
        "optimizer": {"name": "AdamW", "state_bytes": o.state_bytes,
                      "flops_per_element": o.flops_per_element, "step_flops": o.step_flops,
                      "ops": [{"op": src, "aten": op, "flops_per_element": elementwise_cost(op, alpha=a)}
                              for src, op, a in o.ops]},
        "training": {"gpu": t.gpu, "peak_flops_per_s": t.peak_flops_per_s, "mfu": t.mfu,
                     "steps": t.steps, "tokens": t.tokens, "seconds": t.seconds,
                     "tokens_per_s": t.tokens_per_s, "chinchilla_tokens": t.chinchilla_tokens},
    }


def timeline_to_dict(tl: Timeline) -> dict[str, Any]:
    """The "timeline" section (see the schema above)."""
    def brief(e) -> dict[str, Any]:
        return {"index": e.index, "name": e.name, "phase": e.phase, "total": e.total}

    return {
        "optimizer": tl.optimizer, "checkpointing": tl.checkpointing,
        "categories": list(CATEGORIES), "phases": list(PHASES),
        "events": [{"index": e.index, "name": e.name, "phase": e.phase, "boundary": e.boundary,
                    "bytes": dict(e.bytes), "total": e.total} for e in tl.events],
        "peak": brief(tl.peak),
        "phase_peaks": [{"phase": p, **brief(tl.phase_peak(p))} for p in PHASES[1:]],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"
