"""Every view renders for every preset without an exception (AppTest, one session per view)."""

from __future__ import annotations

import pytest

from explorer.sidebar import SECTIONS
from explorer.state import PRESETS, VIEWS


@pytest.mark.parametrize("view", list(VIEWS))
def test_every_view_renders_for_every_preset(ui, view):
    at = ui.open(view=view)
    ui.clean(at)
    assert at.title[0].value.endswith(VIEWS[view])
    if "model" not in SECTIONS.get(view, {"model"}):  # the view has its own settings: no preset to pick
        assert not [w for w in at.selectbox if w.key == "w_preset"]
        return
    for preset in PRESETS:
        at.selectbox(key="w_preset").set_value(preset).run()
        ui.clean(at)
        assert at.query_params.get("view", "overview") == view
