"""An inference Measurement (validation.inference) as a plain-text table, Markdown or JSON.
Imports no torch; number formatting from validation.render (and accounting.format)."""

from __future__ import annotations

from validation.render import FORMATS, render
from validation.rows import Measurement

__all__ = ["FORMATS", "render_inference_measurement"]


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


def render_inference_measurement(m: Measurement, fmt: str = "table") -> str:
    """"table" (plain text), "markdown" or "json" (Measurement.to_dict): validation.render's
    layout under the inference header."""
    return render(m, fmt, header=_header)
