"""An inference Measurement (validation.inference) as a plain-text table, Markdown or JSON.
Imports no torch; number formatting from validation.render (and accounting.format)."""

from __future__ import annotations

import json

from validation.render import fmt_rel_diff, fmt_value
from validation.rows import ComparisonRow, Measurement

FORMATS = ("table", "markdown", "json")
_HEADERS = ("quantity", "component", "symbolic", "measured", "rel. diff", "reason")


def _cells(row: ComparisonRow) -> list[str]:
    return [row.quantity, row.component, fmt_value(row.symbolic, row.unit), fmt_value(row.measured, row.unit),
            fmt_rel_diff(row), row.reason]


def _header(m: Measurement) -> list[str]:
    s, hw, c = m.settings, m.hardware, m.config
    load = hw.get("load_average_1min")
    return [
        f"Inference validation: {c.get('num_layers')} layers, d_model {c.get('d_model')}, heads "
        f"{c.get('num_heads')} (key/value heads {c.get('num_kv_heads') or c.get('num_heads')}), "
        f"attention {c.get('attention')}, context_length {c.get('context_length')}",
        f"B={s.get('batch_size')} x (P={s.get('prompt_tokens')} prompt + G={s.get('new_tokens')} new tokens), "
        f"S={s.get('sequence_tokens')}, decode step measured at t={s.get('decode_position')}, "
        f"dtype={s.get('dtype')} on {s.get('device')} ({hw.get('name')}; torch {hw.get('torch')}, "
        f"load {load if load is None else f'{load:.2f}'})",
        "symbolic = accounting.inference, measured = the model with its KV cache: FlopCounterMode, "
        "dispatch-level byte counts, the cache's tensors; times: a roofline bound beside a measurement",
    ]


def to_table(m: Measurement) -> str:
    cells = [list(_HEADERS)] + [_cells(r) for r in m.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADERS) - 1)]
    lines = _header(m) + [""]
    for i, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    lines += [f"note: {n}" for n in m.notes]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_markdown(m: Measurement) -> str:
    lines = [f"_{h}_  " for h in _header(m)] + ["", "| " + " | ".join(_HEADERS) + " |",
                                                   "|" + "---|" * len(_HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in m.rows]
    lines += [""] + [f"- note: {n}" for n in m.notes]
    return "\n".join(lines) + "\n"


def render_inference_measurement(m: Measurement, fmt: str = "table") -> str:
    """"table" (plain text), "markdown" or "json" (Measurement.to_dict)."""
    if fmt == "json":
        return json.dumps(m.to_dict(), indent=2) + "\n"
    renderers = {"table": to_table, "markdown": to_markdown}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return renderers[fmt](m)
