"""A Measurement as a plain-text table, Markdown or JSON (all number formatting lives here and in
accounting.format). Imports no torch."""

from __future__ import annotations

import json
from collections.abc import Callable

from accounting.format import fmt_bytes, fmt_count, fmt_flops, fmt_flops_per_s, fmt_int
from validation.rows import ComparisonRow, Measurement

FORMATS = ("table", "markdown", "json")
_HEADERS = ("quantity", "component", "symbolic", "measured", "rel. diff", "reason")


def fmt_value(value, unit: str) -> str:
    """A value in its unit: exact integers with separators plus a short form, seconds, ratios."""
    if value is None:
        return "-"
    if unit in ("params", "flops", "bytes") and isinstance(value, int):
        short = {"params": fmt_count, "flops": fmt_flops, "bytes": fmt_bytes}[unit](value)
        return f"{fmt_int(value)} ({short})"
    if unit == "flop/s":
        return fmt_flops_per_s(value)
    if unit == "ratio":
        return f"{100 * value:.2f}%"
    if unit == "seconds":
        return f"{value:.4g} s"
    if unit == "bytes/s":
        return fmt_bytes(value, binary=False) + "/s"
    if isinstance(value, int):
        return f"{fmt_int(value)} {unit}"
    return f"{value:,.0f} {unit}" if abs(value) >= 1000 else f"{value:.4g} {unit}"


def fmt_rel_diff(row: ComparisonRow) -> str:
    diff = row.rel_diff
    if diff is None:
        return "-"
    return "equal" if row.equal else f"{100 * diff:+.3f}%"


def _cells(row: ComparisonRow) -> list[str]:
    return [row.quantity, row.component, fmt_value(row.symbolic, row.unit),
            fmt_value(row.measured, row.unit), fmt_rel_diff(row), row.reason]


def _header(m: Measurement) -> list[str]:
    s, hw, c = m.settings, m.hardware, m.config
    return [
        f"Validation: {c.get('num_layers')} layers, d_model {c.get('d_model')}, "
        f"attention {c.get('attention')}, ffn {c.get('ffn')}, "
        f"norm {c.get('norm')} ({c.get('norm_position')}), "
        f"positions {c.get('positions')}, tied {c.get('tie_embeddings')}",
        f"B={s.get('batch_size')} T={s.get('context_length')} dtype={s.get('dtype')} steps={s.get('steps')} "
        f"on {s.get('device')} ({hw.get('name')}; torch {hw.get('torch')}, CUDA {hw.get('cuda')}, "
        f"python {hw.get('python')}, load {_fmt_load(hw.get('load_average_1min'))})",
        "FLOPs: 2*m*n*p per matmul; bytes: saved-for-backward tensors deduplicated by storage, "
        "no parameters; symbolic = accounting, measured = instruments",
    ] + ([f"layout: {s['layout']}, {s.get('per_rank_batch')} sequence(s) per data-parallel rank, "
          f"{s.get('backend')}; step {s.get('measured_step')} of {s.get('steps')} measured"]
         if s.get("layout") else [])


def to_table(m: Measurement, header: Callable[[Measurement], list[str]] | None = None) -> str:
    """Plain text: the header lines (`header`, default the training step's), then aligned rows."""
    cells = [list(_HEADERS)] + [_cells(r) for r in m.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADERS) - 1)]
    lines = (header or _header)(m) + [""]
    for i, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    lines += [f"note: {n}" for n in m.notes]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_markdown(m: Measurement, header: Callable[[Measurement], list[str]] | None = None) -> str:
    lines = [f"_{h}_  " for h in (header or _header)(m)] + [
        "", "| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in m.rows]
    lines += [""] + [f"- note: {n}" for n in m.notes]
    return "\n".join(lines) + "\n"


def render(measurement: Measurement, fmt: str = "table",
           header: Callable[[Measurement], list[str]] | None = None) -> str:
    """The measurement as "table" (plain text), "markdown" or "json" (Measurement.to_dict);
    `header` gives the text formats' header lines (default: the training step's)."""
    if fmt == "json":
        return json.dumps(measurement.to_dict(), indent=2) + "\n"
    if fmt == "table":
        return to_table(measurement, header)
    if fmt == "markdown":
        return to_markdown(measurement, header)
    raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def _fmt_load(load: object) -> str:
    """The 1-minute load average to two decimals (None when it was not recorded)."""
    return f"{load:.2f}" if isinstance(load, (int, float)) else str(load)
