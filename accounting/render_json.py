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
  "parallelism" (only when a layout was asked for, e.g. `--gpus 8 --parallel zero3`):
                 {"layout": {"world_size", "strategy", "tensor_parallel", "data_parallel",
                             "global_batch", "per_rank_batch"},
                  "per_rank": {"components": [component] (rank 0's bytes: parameters, gradients,
                               optimizer_state, [weights_bf16_copy], [gathered_parameters,
                               unsharded_gradients], activations), "total" (the peak)},
                  "budget", "largest_per_rank_batch": {"per_rank_batch", "global_batch",
                               "fixed_bytes", "bytes_per_sequence"} or null,
                  "communication": [{"collective" (all_reduce | all_gather | reduce_scatter),
                               "name", "phase", "group" (dp | tp), "ranks", "bytes" (S, per call),
                               "count" (per step), "formula", "traffic_bytes" (sent per rank per
                               call, ring), "seconds" (all calls, on the link)}],
                  "link": {"name", "bytes_per_s", "source"},
                  "time": {"per_gpu_flops", "compute_seconds", "communication_seconds",
                           "step_seconds" (no overlap), "step_seconds_overlapped", "steps",
                           "training_seconds", "training_seconds_overlapped"},
                  "notes": [conventions and assumptions, as text]}
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


def _parallelism(section) -> dict[str, Any]:
    s, lay, fit, link = section, section.layout, section.largest, section.link
    return {
        "layout": {"world_size": lay.world_size, "strategy": lay.strategy,
                   "tensor_parallel": lay.tensor_parallel, "data_parallel": lay.data_parallel,
                   "global_batch": s.per_rank_batch * lay.data_parallel,
                   "per_rank_batch": s.per_rank_batch},
        "per_rank": _components(s.per_rank),
        "budget": s.budget_bytes,
        "largest_per_rank_batch": None if fit is None else {
            "per_rank_batch": fit.per_rank_batch, "global_batch": fit.global_batch,
            "fixed_bytes": fit.fixed_bytes, "bytes_per_sequence": fit.bytes_per_sequence},
        "communication": [
            {"collective": c.collective, "name": c.name, "phase": c.phase, "group": c.group,
             "ranks": c.ranks, "bytes": c.bytes, "count": c.count, "formula": latex(c.formula),
             "traffic_bytes": c.traffic_bytes, "seconds": c.seconds(link)}
            for c in s.communication],
        "link": {"name": link.name, "bytes_per_s": link.bytes_per_s, "source": link.source},
        "time": {"per_gpu_flops": s.per_gpu_flops, "compute_seconds": s.time.compute,
                 "communication_seconds": s.time.communication,
                 "step_seconds": s.time.no_overlap, "step_seconds_overlapped": s.time.overlapped,
                 "steps": s.steps, "training_seconds": s.training_seconds,
                 "training_seconds_overlapped": s.training_seconds_overlapped},
        "notes": list(s.notes),
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON-ready dict of the schema above."""
    out = _report_dict(report)
    if report.parallelism is not None:
        out["parallelism"] = _parallelism(report.parallelism)
    return out


def _report_dict(report: Report) -> dict[str, Any]:
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
