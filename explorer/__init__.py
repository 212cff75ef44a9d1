"""The Streamlit explorer behind `streamlit run app.py` (one module per view).

Public API: `main()` draws the page (sidebar + the chosen view). Everything shown is computed by
`accounting`, `model`, `tokenizer` and `validation`; this package only lays it out. State lives in
the URL query parameters (explorer.state documents them), so every view is a shareable link.
Modules: state (settings <-> URL), compute (the one report of the settings, cached), overhead (the
memory margin the step cannot use), charts (plotly), runs (background training jobs, capped and
queued), rates (a run's throughput over time), datadir (which server files the Train view may
read) -- these import neither Streamlit nor torch -- then sidebar (scoped per view), page and the
views: overview, params_flops, memory, inference, formulas, measured, train (+ corpus,
experiments_view), tokenizer_view, downloads. `main` is loaded on first use (PEP 562), so
`import explorer.state` does not pay for Streamlit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from explorer.page import main

        return main
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
