"""The page: sidebar, URL warnings, then the chosen view; config errors shown inline."""

from __future__ import annotations

import importlib

import streamlit as st

from explorer import compute, sidebar
from explorer.state import VIEWS

_OTHER_VIEWS = {"measured": "measured", "train": "train", "tokenizer": "tokenizer_view",
                "inference": "inference"}
"""Views that need no training report (view id -> module; inference computes its own); every other
view is a module of the same name that draws a report: render(report, settings)."""


def warnings_text(warnings: list[str]) -> str:
    """The link's problems as one message: a list when there are several."""
    if len(warnings) == 1:
        return warnings[0]
    return (f"{len(warnings)} values of this link could not be used:\n\n"
            + "\n".join(f"- {w}" for w in warnings))


def main() -> None:
    """Draw the whole page for this run."""
    warnings = sidebar.load_from_url()
    settings = sidebar.render_sidebar()
    sidebar.sync_url(settings)
    st.title(f"lm-accounting · {VIEWS[settings.view]}")
    if warnings:
        st.warning(warnings_text(warnings))
    if settings.view in _OTHER_VIEWS:
        importlib.import_module(f"explorer.{_OTHER_VIEWS[settings.view]}").render(settings)
        return
    try:
        report = compute.report(settings)
    except ValueError as exc:
        st.error(f"This configuration cannot be accounted: {exc}. Change it in the sidebar.")
        return
    view = importlib.import_module(f"explorer.{settings.view}")
    view.render(report, settings)
