"""Component tables as st.dataframe: every row visible, shares as bars, exact values localized."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer.compute import table_height


def component_table(frame: pd.DataFrame) -> None:
    """A table from explorer.compute.rows_frame (component, exact, readable, share, formula, note);
    the note column only when some row has a note."""
    if not frame["note"].astype(bool).any():
        frame = frame.drop(columns="note")
    st.dataframe(frame, hide_index=True, width="stretch", height=table_height(len(frame)), column_config={
        "component": st.column_config.TextColumn("component", width="medium"),
        "exact": (st.column_config.NumberColumn("exact", format="localized") if frame["exact"].dtype.kind in "iuf"
                  else st.column_config.TextColumn("exact")),
        "readable": st.column_config.TextColumn("readable", width="small"),
        "share": st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1,
                                                 width="small"),
        "formula": st.column_config.TextColumn("formula", help="summed over the L blocks", width="medium"),
    })
