"""The Streamlit explorer behind `streamlit run app.py` (one module per view).

Public API: `main()` draws the page (sidebar + the chosen view). Everything shown is computed by
`accounting`, `model`, `tokenizer` and `validation`; this package only lays it out. State lives in
the URL query parameters (explorer.state documents them), so every view is a shareable link.
Modules: state (settings <-> URL, no Streamlit), sidebar, compute (cached accounting), charts
(plotly), runs (background training worker, no Streamlit), and the views: overview, params_flops,
memory, formulas, measured, train, tokenizer_view, downloads.
"""

from explorer.page import main

__all__ = ["main"]
