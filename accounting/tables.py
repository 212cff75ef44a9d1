"""The report as titled tables of display strings (shared by the table/markdown/LaTeX renderers).

Each cell is (text, formula): `formula` is a sympy expression when the cell shows one (renderers
print it as text or LaTeX), else None.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from accounting.format import (
    fmt_bytes, fmt_count, fmt_flops, fmt_flops_per_s, fmt_int, fmt_seconds, fmt_share,
)
from accounting.report import Report
from accounting.rows import Row


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[object, ...]]  # str cells, or sympy expressions for formula cells


def _component_table(title: str, rows: list[Row], fmt, total_label: str = "total") -> Table:
    whole = sum(r.value for r in rows)
    body = [(r.name, fmt_int(r.value), fmt(r.value), fmt_share(r.value / whole if whole else 0.0),
             r.formula) for r in rows]
    whole_formula = sp.expand(sp.Add(*(r.formula for r in rows)))
    body.append((total_label, fmt_int(whole), fmt(whole), "100.0%", whole_formula))
    return Table(title, ("component", "exact", "readable", "share", "formula"), body)


def _kv(title: str, items: list[tuple[str, str]]) -> Table:
    return Table(title, ("quantity", "value"), [tuple(i) for i in items])


def _both_units(n: int) -> str:
    return f"{fmt_bytes(n, binary=False)} ({fmt_bytes(n)})"


def _config_table(r: Report) -> Table:
    cfg = r.config
    return _kv("Configuration", [
        ("architecture", cfg.family),
        ("model", f"V={cfg.vocab_size:,} L={cfg.num_layers} d={cfg.d_model} h={cfg.num_heads} "
                  f"h_kv={cfg.kv_heads} d_ff={cfg.d_ff}"),
        ("variants", f"norm={cfg.norm} ({cfg.norm_position}) positions={cfg.positions} ffn={cfg.ffn} "
                     f"bias={cfg.bias} tie_embeddings={cfg.tie_embeddings} attention={cfg.attention} "
                     f"dropout={cfg.dropout:g}"),
        ("step", f"B={r.batch_size} x T={r.context_length} tokens, dtype {r.dtype}"),
    ])


def _parameter_tables(r: Report) -> list[Table]:
    p = r.parameters
    return [_component_table("Parameters by component", p.rows, fmt_count), _kv("Parameter totals", [
        ("total", fmt_int(p.total)),
        ("non-embedding (w/o token and position embeddings)", fmt_int(p.non_embedding)),
        ("non-embedding w/o lm_head", fmt_int(p.non_embedding_without_head)),
        ("matmul weights (incl. LM head)", fmt_int(p.matmul)),
        ("memory to load, float32", _both_units(p.bytes_by_dtype["float32"])),
        ("memory to load, bfloat16", _both_units(p.bytes_by_dtype["bfloat16"])),
    ])]


def _flop_tables(r: Report) -> list[Table]:
    f = r.flops
    step = [("forward", fmt_flops(f.forward_total)),
            ("backward (2x forward)", fmt_flops(f.backward_total)),
            ("training step (fwd + bwd)", f"{fmt_flops(f.train_step)} = {fmt_int(f.train_step)}"),
            ("per token", fmt_flops(f.train_step / (r.batch_size * r.context_length)))]
    step += [(f"{e.name} [{e.n_meaning}]", f"{fmt_flops(e.value)} (ratio {e.ratio:.4f})")
             for e in f.estimates]
    nonmatmul = sum(x.value for x in f.nonmatmul_forward)
    step.append(("non-matmul forward (optional term)", fmt_flops(nonmatmul)))
    if f.attention_recompute:
        step.append(("sdpa backward score recompute (not in step)", fmt_flops(f.attention_recompute)))
    return [_component_table("Forward FLOPs by component (matmuls)", f.forward, fmt_flops),
            _kv("Training step FLOPs", step),
            _component_table("Non-matmul forward FLOPs (optional term)", f.nonmatmul_forward, fmt_flops)]


def _memory_tables(r: Report) -> list[Table]:
    m, fit = r.memory, r.memory.largest_batch
    solved = ("weights + gradients + AdamW state alone exceed the budget" if fit is None
              else f"{fit.inequality}  =>  B <= {fit.exact_solution:.4f}")
    tl = m.timeline
    phases = [(f"{p} (max)", f"{fmt_bytes(e.total)} at {e.name}") for p in ("forward", "loss", "backward", "clip",
                                                                           "optimizer")
              for e in [tl.phase_peak(p)]]
    return [
        _component_table(f"Peak training memory ({r.dtype}; at {tl.peak.phase}: {tl.peak.name})",
                         m.rows, fmt_bytes),
        _kv(f"Memory timeline of one step ({tl.optimizer} AdamW"
            f"{', checkpointing' if tl.checkpointing else ''}; {len(tl.events)} events)", phases),
        *(_component_table(f"Activations, {c} convention", rows, fmt_bytes)
          for c, rows in m.activations.items()),
        _kv("Largest batch in the memory budget", [
            ("budget", f"{fmt_int(m.budget_bytes)} bytes ({fmt_bytes(m.budget_bytes)})"),
            ("solved", solved), ("largest batch", "none" if fit is None else str(fit.batch_size)),
            ("binding event", "-" if fit is None else f"{fit.phase}: {fit.event}"),
            ("activations with per-block checkpointing", fmt_bytes(m.checkpointed_bytes)),
            ("checkpointing recompute (extra forward)", fmt_flops(m.checkpoint_recompute_flops)),
        ]),
    ]


def _optimizer_training_tables(r: Report) -> list[Table]:
    o, t = r.optimizer, r.training
    return [_kv("AdamW", [
        ("state (exp_avg + exp_avg_sq, float32)",
         f"{fmt_int(o.state_bytes)} bytes ({fmt_bytes(o.state_bytes)})"),
        ("FLOPs per parameter element", str(o.flops_per_element)),
        ("step FLOPs", f"{fmt_flops(o.step_flops)} = {fmt_int(o.step_flops)}"),
    ]), _kv("Training time", [
        ("device", f"{t.gpu}, peak {fmt_flops_per_s(t.peak_flops_per_s)} ({r.dtype})"),
        ("MFU", fmt_share(t.mfu)), ("steps", fmt_int(t.steps)), ("tokens", fmt_count(t.tokens)),
        ("throughput", f"{t.tokens_per_s:,.0f} tokens/s"), ("time", fmt_seconds(t.seconds)),
        ("Chinchilla-optimal tokens (20 per parameter)", fmt_count(t.chinchilla_tokens)),
    ])]


def _conventions_table(r: Report) -> Table:
    conv = _kv("Conventions", [(k, str(v)) for k, v in r.conventions.as_dict().items()
                               if k != "elementwise_flops"])
    costs = ", ".join(f"{k.removeprefix('aten.')}={v}" for k, v in r.conventions.elementwise_flops.items())
    conv.rows.append(("elementwise FLOPs per element", costs))
    return conv


def _parallel_tables(r: Report) -> list[Table]:
    p = r.parallelism
    if p is None:
        return []
    lay, fit, link = p.layout, p.largest, p.link
    memory = _component_table(f"Per-GPU memory, {lay.describe()}: rank 0 at b = {p.per_rank_batch} "
                              f"sequences per data-parallel rank", p.per_rank, fmt_bytes, "peak")
    calls = Table(f"Communication per step ({link.name}, {fmt_bytes(link.bytes_per_s, binary=False)}/s "
                  f"per direction; no overlap assumed)",
                  ("collective", "what", "phase", "ranks", "bytes per call", "calls", "seconds",
                   "formula"),
                  [(c.collective, c.name, c.phase, f"{c.ranks} ({c.group})", fmt_int(c.bytes),
                    str(c.count), fmt_seconds(c.seconds(link)), c.formula) for c in p.communication])
    fits = ("not even one sequence per GPU fits" if fit is None else
            f"b = {fit.per_rank_batch:,} per GPU (global {fit.global_batch:,}): {fit.fixed_bytes:,} + "
            f"{fit.bytes_per_sequence:,}*b <= {fit.budget_bytes:,}")
    time = _kv(f"Time on {lay.world_size} GPUs", [
        ("largest per-GPU batch in the budget", fits),
        ("matmul FLOPs per GPU per step", fmt_flops(p.per_gpu_flops)),
        ("compute per step", fmt_seconds(p.time.compute)),
        ("communication per step", f"{fmt_seconds(p.time.communication)} "
                                   f"({fmt_bytes(p.communication_bytes)} sent per GPU)"),
        ("step, no overlap (assumed)", fmt_seconds(p.time.no_overlap)),
        ("step, full overlap (bound)", fmt_seconds(p.time.overlapped)),
        (f"{fmt_int(p.steps)} steps", f"{fmt_seconds(p.training_seconds)} (overlapped: "
                                      f"{fmt_seconds(p.training_seconds_overlapped)})"),
    ])
    notes = _kv("Parallelism conventions", [(str(i + 1), n) for i, n in enumerate(p.notes)])
    return [memory, calls, time, notes]


def report_tables(r: Report) -> list[Table]:
    """All tables of a report, in print order."""
    return [_config_table(r), *_parameter_tables(r), *_flop_tables(r), *_memory_tables(r),
            *_optimizer_training_tables(r), *_parallel_tables(r), _conventions_table(r)]
