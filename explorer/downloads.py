"""Downloads: the report of the current settings as JSON, CSV and Markdown (the report every view
shows: explorer.compute.report); every trained variant's checkpoint and the tokenizer."""

from __future__ import annotations

import csv
import io

import streamlit as st

import accounting as acc
from explorer import runs
from explorer.state import Settings


def report_csv(report: acc.Report) -> str:
    """Every component row of the report: section, component, value (exact), unit, share, formula."""
    data = acc.report_to_dict(report)
    sections = [("parameters", data["parameters"]), ("flops.forward", data["flops"]["forward"]),
                ("flops.backward", data["flops"]["backward"]),
                ("flops.nonmatmul_forward", data["flops"]["nonmatmul_forward"]),
                ("memory", data["memory"])]
    sections += [(f"memory.activations.{c}", data["memory"]["activations"][c])
                 for c in ("implementation", "textbook")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "component", "value", "unit", "share", "formula_latex", "note"])
    for name, section in sections:
        for c in section["components"]:
            writer.writerow([name, c["name"], c["value"], c["unit"], f"{c['share']:.6f}", c["formula"], c["note"]])
    return out.getvalue()


def report_markdown(report: acc.Report, settings: Settings) -> str:
    """The Markdown report with a title and the settings it was computed under."""
    from explorer import compute
    from explorer.memory import convention_text

    budget = compute.budget(settings)
    title = (f"# lm-accounting report: {settings.preset}, B = {report.batch_size:,}, "
             f"T = {report.context_length:,}, {report.dtype}")
    lines = [title, "",
             f"- model: {settings.preset}" + (f" with {', '.join(f'{k}={v}' for k, v in settings.overrides)}"
                                                if settings.overrides else ""),
             f"- memory accounting: {convention_text(report, settings)}",
             f"- GPU: {budget.gpu}, {acc.fmt_bytes(budget.gpu_bytes)}; overhead margin "
             f"{acc.fmt_bytes(budget.overhead.total_bytes)} ({budget.overhead.source}); usable "
             f"{acc.fmt_bytes(report.memory.budget_bytes)}",
             f"- training time at MFU {report.training.mfu:g} for {report.training.steps:,} steps", "",
             acc.render(report, "markdown")]
    return "\n".join(lines)


def _stem(report: acc.Report, settings: Settings) -> str:
    return f"lm-accounting_{settings.preset}_B{report.batch_size}_T{report.context_length}_{report.dtype}"


def render(report: acc.Report, settings: Settings) -> None:
    stem = _stem(report, settings)
    st.subheader("The report of the current settings")
    st.caption("Exact integers (params, FLOPs, bytes) with their formulas and the conventions they were "
               "counted under (JSON schema: accounting.render_json).")
    c = st.columns(3)
    c[0].download_button("Report (JSON)", acc.render(report, "json"), f"{stem}.json", "application/json")
    c[1].download_button("Components (CSV)", report_csv(report), f"{stem}.csv", "text/csv")
    c[2].download_button("Report (Markdown)", report_markdown(report, settings), f"{stem}.md", "text/markdown")
    st.subheader("Trained in the Train view")
    artifacts = runs.artifacts(st.session_state.get("train_job"))
    trained = st.session_state.get("train_tokenizer")
    if artifacts is None and trained is None:
        st.info("Nothing trained in this session yet: train a tokenizer and a model in the Train view.")
        return
    checkpoints = artifacts.checkpoints if artifacts is not None else ()
    c = st.columns(max(len(checkpoints), 1) + 1)
    for col, (label, path) in zip(c, checkpoints):
        name = f"ckpt_{label.lower().replace(' ', '-')}.pt"
        col.download_button(f"Checkpoint: {label} ({name})", path.read_bytes(), name, "application/octet-stream",
                            key=f"w_download_ckpt_{label}")
    archive = artifacts.tokenizer_zip if artifacts is not None else None
    if archive is None and trained is not None:
        archive = runs.tokenizer_zip(trained.tokenizer)
    if archive is not None:
        c[-1].download_button("Tokenizer (vocab.json, merges.txt, special tokens; zip)", archive,
                              "tokenizer.zip", "application/zip")
