"""The lm-accounting explorer: `streamlit run app.py`.

Thin on purpose: page config, then the explorer package draws the sidebar and the chosen view.
All state lives in the URL query parameters (see explorer.state), so a view is a shareable link.
"""

import streamlit as st

st.set_page_config(page_title="lm-accounting explorer", page_icon="🧮", layout="wide")

from explorer import main  # noqa: E402  (set_page_config must come first)

main()
