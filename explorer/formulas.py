"""Formulas: every accounting expression rendered with st.latex from the sympy objects, the
symbols' meanings, and each formula's LaTeX source in a copyable code block.

Long sums are typeset over several lines (`display_latex`); the copyable source is sympy's one-line
LaTeX. The peak-memory formula is the report's: the sidebar's activation convention and
checkpointing, at its batch size (the peak is a maximum over the step's events, so which event's
formula it is depends on the sizes)."""

from __future__ import annotations

from functools import lru_cache

import sympy as sp
import streamlit as st

import accounting as acc
from accounting.activations import activation_bytes_formula, checkpointed_activation_bytes_formula
from accounting.compare import attention_crossover_formula
from accounting.flops import forward_flops_formula, kaplan_6nd_formula, palm_formula, train_step_flops_formula
from accounting.memory import peak_memory_formula
from accounting.parameters import non_embedding_parameters_formula, total_parameters_formula
from accounting.render_json import latex
from accounting.symbols import MEANINGS, SIZE_SYMBOLS, values
from explorer.state import Settings

STEPS, MFU, PEAK = sp.symbols("S MFU P", positive=True)
_SCROLL = "<style>.katex-display { overflow-x: auto; overflow-y: hidden; padding-bottom: 4px; }</style>"
"""A display formula wider than the page scrolls instead of being cut off."""


LINE_CHARS = 110
"""Display lines of a long sum hold about this many LaTeX characters."""


def display_latex(expr: sp.Expr) -> str:
    """LaTeX for display: sympy's, with a long sum broken over aligned lines (KaTeX does not wrap
    display math); the training time as S·F / (MFU·P), MFU upright."""
    if MFU in expr.free_symbols:  # S * F / (MFU * P): sympy would print the denominator "MFU P"
        flops = sp.fraction(expr)[0] / STEPS
        return rf"\frac{{S \cdot \left({latex(flops)}\right)}}{{\mathrm{{MFU}} \cdot P}}"
    source = latex(expr)
    if len(source) <= LINE_CHARS or not isinstance(expr, sp.Add):
        return source
    lines, line = [], ""
    for term in sp.Add.make_args(expr):
        text = latex(term)
        piece = text if not line or text.startswith("-") else f"+ {text}"
        if line and len(line) + len(piece) > LINE_CHARS:
            lines.append(line)
            line = text if text.startswith("-") else f"+ {text}"
        else:
            line = f"{line} {piece}".strip()
    lines.append(line)
    return r"\begin{aligned}" + r" \\ ".join(f"&{x}" for x in lines) + r"\end{aligned}"


def _peak_unit(convention: str, checkpointing: bool, event: str) -> str:
    if convention == "textbook":
        return "bytes; textbook: weights + gradients + AdamW m, v + the textbook activations, all at once"
    return (f"bytes; the step's memory timeline at its peak ({event}){', checkpointed' if checkpointing else ''}; "
            "this event's formula, valid while it stays the peak")


@lru_cache(maxsize=64)
def formulas(cfg: acc.ModelConfig, dtype: str, batch_size: int = 1, context_length: int | None = None,
             convention: str = "implementation",
             checkpointing: bool = False) -> list[tuple[str, str, sp.Expr, str]]:
    """(section, name, formula, unit/convention) for `cfg`'s variant switches (sizes stay symbols);
    the peak's at `batch_size` x `context_length` under `convention` and `checkpointing`."""
    step = train_step_flops_formula(cfg)
    peak_event = acc.memory_timeline(cfg, batch_size, context_length, dtype, checkpointing=checkpointing).peak
    out = [
        ("Parameters", "total parameters N", total_parameters_formula(cfg), "params; tied matrix once"),
        ("Parameters", "non-embedding (Kaplan)", non_embedding_parameters_formula(cfg),
         "params; without token_embeddings, LM head kept"),
        ("FLOPs", "forward", forward_flops_formula(cfg.ffn), "FLOPs; 2mnp per matmul, attention dense"),
        ("FLOPs", "training step (forward + backward)", step, "FLOPs; backward = 2× forward"),
        ("FLOPs", "6ND (Kaplan)", kaplan_6nd_formula(cfg), "FLOPs; N non-embedding, D = B·T"),
        ("FLOPs", "PaLM (6N + 12LdT)·BT", palm_formula(cfg), "FLOPs; N = matmul weights"),
        ("FLOPs", "attention core = FFN at T", attention_crossover_formula(cfg.ffn), "tokens"),
        ("Memory", "activations (implementation)", activation_bytes_formula(cfg, "implementation", dtype),
         f"bytes; what this model saves for backward, run in {dtype}"),
        ("Memory", "activations (textbook)", activation_bytes_formula(cfg, "textbook", dtype),
         f"bytes; CS336 list × {acc.DTYPE_BYTES[dtype]} bytes"),
        ("Memory", "activations, per-block checkpointing", checkpointed_activation_bytes_formula(cfg, dtype=dtype),
         "bytes"),
        ("Memory", "peak training memory",
         peak_memory_formula(cfg, dtype, convention, batch_size, context_length, checkpointing=checkpointing),
         _peak_unit(convention, checkpointing, f"{peak_event.phase}, {peak_event.name}")),
        ("Time", "training time", STEPS * step / (MFU * PEAK), "seconds; S steps, P dense peak FLOP/s, "
         "MFU model FLOPs utilization"),
    ]
    for row in acc.parameter_rows(cfg):
        out.append(("Parameters by component", row.name, row.formula, "params"))
    for row in acc.forward_flops_rows(cfg, 1):
        out.append(("Forward FLOPs by component", row.name, row.formula, "FLOPs"))
    return out


def value_now(expr: sp.Expr, report: acc.Report, unit: str) -> str:
    """The formula evaluated at the current settings, formatted for its unit."""
    subs = {k: sp.Integer(v) for k, v in values(report.config, report.batch_size, report.context_length).items()}
    t = report.training
    subs.update({STEPS: t.steps, MFU: t.mfu, PEAK: t.peak_flops_per_s})
    value = float(expr.xreplace(subs))
    kind = unit.split(";")[0]
    formats = {"params": lambda v: f"{int(v):,} params", "FLOPs": acc.fmt_flops, "bytes": acc.fmt_bytes,
               "tokens": lambda v: f"{v:,.0f} tokens", "seconds": acc.fmt_seconds}
    return formats[kind](value)


def render(report: acc.Report, settings: Settings) -> None:
    cfg = report.config
    st.markdown(f"Formulas for the variants of the current config (norm={cfg.norm} ({cfg.norm_position}), "
                f"positions={cfg.positions}, ffn={cfg.ffn}, tie_embeddings={cfg.tie_embeddings}, "
                f"attention={cfg.attention}), in {report.dtype}. Sizes are symbols; component rows are "
                "summed over the L blocks.")
    with st.expander("Symbols", expanded=True):
        now = values(cfg, report.batch_size, report.context_length)
        st.dataframe([{"symbol": str(s), "meaning": MEANINGS[s], "value now": now[s]} for s in SIZE_SYMBOLS],
                      hide_index=True, width="stretch")
        st.caption("S: training steps, MFU: model FLOPs utilization, P: dense peak FLOP/s of the GPU.")
    st.markdown(_SCROLL, unsafe_allow_html=True)
    section = None
    for sec, name, expr, unit in formulas(cfg, report.dtype, report.batch_size, report.context_length,
                                          settings.activations, settings.checkpointing):
        if sec != section:
            st.subheader(sec)
            section = sec
        source = latex(expr)
        st.markdown(f"**{name}** — {unit} · now **{value_now(expr, report, unit)}**")
        st.latex(display_latex(expr))
        with st.expander("LaTeX source (copy)"):
            st.code(source, language="latex")
    _published_answers(settings)


def _published_answers(settings: Settings) -> None:
    """CS336's published answers, each from the convention that yields it, beside ours and the
    real model's (the committed meta measurement), for the sidebar's config."""
    from accounting.published import SEEDS_PRESET, measured_answers, published_answers

    st.subheader("Why published answers differ (CS336 adamwAccounting)")
    try:
        cfg = settings.config()
    except ValueError:
        return
    seeds = settings.preset == SEEDS_PRESET and not settings.overrides
    answers = published_answers(cfg, settings.step_context, published=seeds)
    measured = measured_answers(_committed_measurement(settings.preset) if seeds else {})
    st.caption(("The published values are for CS336's GPT-2 XL; " if seeds else
                f"The published values are for {SEEDS_PRESET} (pick it to compare); ")
               + "each convention below is computed for this config.")
    st.dataframe([{
        "question": a.question, "convention": a.convention, "answer": a.answer, "exact": a.value,
        "published": a.published, "reproduced": a.reproduces,
        "the real model": measured.get(a.question, "") if a.ours else ""} for a in answers],
        hide_index=True, width="stretch")


@st.cache_data(show_spinner=False)
def _committed_measurement(preset: str) -> dict:
    import validation

    wanted = acc.get_preset(preset)
    for m in validation.load_results():
        s = m.settings or {}
        if (s.get("device") == "meta" and s.get("batch_size") == 1 and s.get("dtype") == "float32"
                and acc.ModelConfig.from_dict(m.config or {}) == wanted):
            return m.to_dict()
    return {}
