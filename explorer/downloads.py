"""Downloads: the report as JSON, CSV and Markdown; the last trained checkpoint and tokenizer."""

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
    c[2].download_button("Report (Markdown)", acc.render(report, "markdown"), f"{stem}.md", "text/markdown")
    st.subheader("Trained in the Train view")
    artifacts = runs.latest_artifacts(st.session_state.get("train_job"))
    trained = st.session_state.get("train_tokenizer")
    if artifacts is None and trained is None:
        st.info("Nothing trained in this session yet: train a tokenizer and a model in the Train view.")
        return
    c = st.columns(2)
    if artifacts is not None and artifacts.checkpoint is not None:
        c[0].download_button(f"Checkpoint ({artifacts.label}, ckpt.pt)", artifacts.checkpoint.read_bytes(),
                             "ckpt.pt", "application/octet-stream")
    archive = artifacts.tokenizer_zip if artifacts is not None else None
    if archive is None and trained is not None:
        archive = runs.tokenizer_zip(trained.tokenizer)
    if archive is not None:
        c[1].download_button("Tokenizer (vocab.json, merges.txt, special tokens; zip)", archive,
                             "tokenizer.zip", "application/zip")
