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


def test_a_pasted_config_json_becomes_the_model_and_lives_in_the_url(ui):
    import json

    import accounting as acc
    from accounting.hf_config import hf_config_path

    at = ui.open()
    at.text_area(key="w_hf_config_text").input(hf_config_path("llama-3-8b").read_text()).run()
    at.button(key="w_hf_config_go").click().run()
    ui.clean(at)
    assert at.session_state["w_preset"] == "custom"
    assert ui.metrics(at)["Parameters"] == "8,030,261,248"  # Meta's published count
    assert at.query_params["num_kv_heads"] in ("8", ["8"])
    reopened = ui.open(**{k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()})
    assert ui.metrics(reopened)["Parameters"] == "8,030,261,248"
    assert any("grouped-query" in c.value for c in reopened.caption)
    bad = json.loads(hf_config_path("llama-3-8b").read_text()) | {"num_local_experts": 8}
    at.text_area(key="w_hf_config_text").input(json.dumps(bad)).run()
    at.button(key="w_hf_config_go").click().run()
    assert any("num_local_experts" in e.value for e in at.error)
    assert ui.metrics(at)["Parameters"] == "8,030,261,248"  # the last good model stays
    assert acc.get_preset("llama-3-8b").kv_heads == 8
