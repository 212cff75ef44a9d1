"""Overview: the headline numbers of the current config, each a metric with its convention."""

from __future__ import annotations

import streamlit as st

from accounting import Report, fmt_bytes, fmt_count, fmt_flops, fmt_int, fmt_seconds
from explorer import compute
from explorer.memory import convention_text
from explorer.state import Settings

CONVENTIONS = (
    "**Conventions.** FLOPs: 2·m·n·p per matmul, causal attention counted dense, backward = 2× "
    "forward, non-matmul work not counted. Memory: the peak and the largest batch under the sidebar's "
    "memory accounting: {memory} Training time = steps × step FLOPs / (MFU × dense peak FLOP/s)."
)


INTRO = ("Pick a model, a context length T and a batch size B in the sidebar: every number below is "
         "the exact count for one training step of B sequences of T tokens. Hover a **?** for how it "
         "is counted; the other views show the breakdowns, the formulas and the measurements.")


def _fit_text(report: Report) -> tuple[str, str]:
    fit = report.memory.largest_batch
    if fit is None:
        return "none", "the step's batch-independent memory alone exceeds the usable memory"
    where = f" (binding: {fit.phase}, {fit.event})" if fit.phase else f" ({fit.event})" if fit.event else ""
    return fmt_int(fit.batch_size), (
        f"solved {fmt_bytes(fit.fixed_bytes)} + {fmt_bytes(fit.bytes_per_sequence)} × B ≤ "
        f"{fmt_bytes(fit.budget_bytes)} ⇒ B ≤ {fit.exact_solution:.3f}{where}")


def _captions(columns, texts) -> None:
    for column, text in zip(columns, texts):
        column.caption(text)


def render(report: Report, settings: Settings) -> None:
    """Headline metrics of `report` (the settings say under which memory accounting)."""
    p, f, m, t = report.parameters, report.flops, report.memory, report.training
    cfg = report.config
    heads = f"{cfg.num_heads} heads" + (f" ({cfg.kv_heads} key/value)" if cfg.kv_heads != cfg.num_heads
                                         else "")
    st.subheader(f"{cfg.num_layers} layers · d_model {cfg.d_model:,} · {heads} · "
                 f"vocab {cfg.vocab_size:,} — step of B={report.batch_size:,} × T={report.context_length:,} "
                 f"tokens, {report.dtype}")
    st.caption(f"Architecture: {cfg.family}.")
    st.markdown(INTRO)
    tokens = report.batch_size * report.context_length
    c = st.columns(4)
    c[0].metric("Parameters", fmt_int(p.total), help="Trainable parameters, tied matrices once; RoPE "
                f"buffers are not parameters. Non-embedding (Kaplan): {fmt_int(p.non_embedding)}.")
    c[1].metric("Memory to load the weights", fmt_bytes(p.bytes_by_dtype["float32"]),
                help=f"float32, 4 bytes per parameter = {fmt_int(p.bytes_by_dtype['float32'])} bytes; "
                     f"bfloat16: {fmt_bytes(p.bytes_by_dtype['bfloat16'])}.")
    c[2].metric("Forward FLOPs per step", fmt_flops(f.forward_total),
                help=f"Matmul FLOPs (2mnp) of one forward over {fmt_int(tokens)} tokens: "
                     f"{fmt_int(f.forward_total)}.")
    c[3].metric("Training-step FLOPs", fmt_flops(f.train_step),
                help=f"Forward + backward (2× forward) matmul FLOPs: {fmt_int(f.train_step)}; "
                     f"{fmt_flops(f.train_step / tokens)} per token. AdamW step not included.")
    _captions(c, ("all weights, tied matrices once", "float32, 4 bytes per parameter",
                  f"matmuls (2mnp) over B·T = {fmt_int(tokens)} tokens", "forward + backward (2× forward)"))
    c = st.columns(4)
    fits = m.peak_bytes <= m.budget_bytes
    budget = compute.budget(settings)
    peak = m.timeline.peak
    where = (f"at {peak.phase}, {peak.name}" if settings.activations == "implementation"
             else "all components at once")
    c[0].metric("Peak training memory", fmt_bytes(m.peak_bytes),
                delta=None if fits else "exceeds the GPU", delta_color="inverse",
                help=f"{fmt_int(m.peak_bytes)} bytes, {where}. " + convention_text(report, settings))
    batch, how = _fit_text(report)
    usable = (f"{fmt_bytes(m.budget_bytes)} usable = {fmt_bytes(budget.gpu_bytes)} − overhead "
              f"{fmt_bytes(budget.overhead.total_bytes)} ({budget.overhead.source})")
    c[1].metric("Largest batch in the GPU", batch, help=f"{how}; {usable}.")
    c[2].metric("Training time", fmt_seconds(t.seconds),
                help=f"{fmt_int(t.steps)} steps × {fmt_flops(f.train_step)} / ({t.mfu:.0%} × "
                     f"{fmt_flops(t.peak_flops_per_s)}/s on {t.gpu}, {report.dtype} peak).")
    c[3].metric("Tokens trained", fmt_count(t.tokens),
                help=f"steps × B × T = {fmt_int(t.tokens)}; Chinchilla-optimal (20 per parameter): "
                     f"{fmt_count(t.chinchilla_tokens)}.")
    ckpt = ", checkpointed" if settings.checkpointing else ""
    _captions(c, (f"{settings.activations} convention, {report.dtype}{ckpt}",
                  f"in {fmt_bytes(m.budget_bytes)} usable of {t.gpu}", f"{fmt_int(t.steps)} steps at {t.mfu:.0%} MFU",
                  "steps × B × T"))
    if not fits:
        st.error(f"A batch of {report.batch_size:,} does not fit: it needs {fmt_bytes(m.peak_bytes)} but "
                 f"{t.gpu} leaves {fmt_bytes(m.budget_bytes)} usable. Largest batch that fits: {batch} ({how}).")
    st.info(CONVENTIONS.format(memory=convention_text(report, settings)))
