"""Every ModelConfig field is an override in the explorer: a URL value and a sidebar widget."""

from __future__ import annotations

import dataclasses

from accounting.config import ModelConfig

CONFIG_FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]


def test_every_config_field_is_an_explorer_override(ui):
    from explorer.sidebar import widget_key
    from explorer.state import OVERRIDE_FIELDS, field_reader

    # context_length is the step's own sidebar setting; every other field overrides the preset
    assert set(OVERRIDE_FIELDS) == set(CONFIG_FIELDS) - {"context_length"}
    for name in OVERRIDE_FIELDS:  # each reads its URL value back to the preset's own value
        value = getattr(ModelConfig(), name)
        # the URL convention: booleans 1/0, an unset optional integer 0
        text = ("1" if value else "0") if isinstance(value, bool) else "0" if value is None else str(value)
        assert field_reader(name)(text) == value
    at = ui.open()
    ui.clean(at)
    for name in [*OVERRIDE_FIELDS, "context_length"]:
        assert widget_key(name) in at.session_state, f"no sidebar widget for {name}"
