"""The sidebar: every setting as a widget, seeded from the URL once per session and written back.

Widget keys are "w_<setting>" and "w_cfg_<config field>". The URL is read on a session's first
run (bad values: a visible warning, then the default); after that the widgets are the source of
truth and every run writes their non-default values back to st.query_params.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from accounting.config import ModelConfig, get_preset
from accounting.conventions import TRAINING_DTYPES
from explorer.state import (
    CUSTOM, DEFAULTS, GPU_NAMES, OVERRIDE_FIELDS, PRESETS, VIEWS, Settings, field_choices, field_help,
    field_kind, field_reader, int_limits, parse_query, to_query, with_overrides,
)

_LOADED = "_explorer_loaded"


def widget_key(name: str) -> str:
    """The session-state key of setting or config field `name`."""
    return f"w_cfg_{name}" if name in OVERRIDE_FIELDS else f"w_{name}"


def _seed(settings: Settings) -> None:
    """Put `settings` into the widgets' session-state keys."""
    ss = st.session_state
    for name in ("view", "preset", "batch_size", "dtype", "gpu", "peak_tflops", "memory_gib", "mfu",
                 "steps"):
        ss[widget_key(name)] = getattr(settings, name)
    ss[widget_key("context_length")] = settings.step_context
    ss["checkpointing"] = settings.checkpointing
    _seed_config(settings.base_config, dict(settings.overrides))


def _widget_value(name: str, value: Any) -> Any:
    """A config value as its widget holds it (an unset optional integer is 0; a tuple of numbers
    is comma-separated text, empty when unset)."""
    kind = field_kind(name)
    if kind == "optional_int":
        return 0 if value is None else value
    if kind == "optional_numbers":
        return "" if value is None else ", ".join(f"{v:g}" for v in value)
    return value


def _seed_config(cfg: ModelConfig, overrides: dict[str, Any]) -> None:
    for name in OVERRIDE_FIELDS:
        st.session_state[widget_key(name)] = _widget_value(name, overrides.get(name, getattr(cfg, name)))


def load_from_url() -> list[str]:
    """On a session's first run: seed the widgets from the URL. Returns the URL's warnings (shown
    on that first run only)."""
    ss = st.session_state
    if ss.get(_LOADED):
        return []
    settings, warnings = parse_query(st.query_params.to_dict())
    _seed(settings)
    if settings.job:
        from explorer import runs

        if runs.get_job(settings.job) is None:
            warnings.append(f"The training run `{settings.job}` of this link is no longer on this server.")
        else:
            ss["train_job"] = settings.job
    ss[_LOADED] = True
    return warnings


def _on_preset_change() -> None:
    """A new preset resets the config fields and the context length to the preset's."""
    name = st.session_state[widget_key("preset")]
    base = ModelConfig() if name == CUSTOM else get_preset(name)
    _seed_config(base, {})
    st.session_state[widget_key("context_length")] = base.context_length


def _ensure(name: str, default: Any) -> str:
    """The widget key of `name`, with a value restored if Streamlit dropped it (widget not drawn)."""
    key = widget_key(name)
    st.session_state.setdefault(key, default)
    return key


def _int_input(label: str, name: str, default: int, help: str | None = None) -> int:
    lo, hi = int_limits(name)
    return int(st.number_input(label, min_value=lo, max_value=hi, step=1, key=_ensure(name, default),
                               help=help))


def _field_widget(name: str, default: Any) -> Any:
    """The widget of config field `name` (kind and help from ModelConfig's field metadata)."""
    kind, help_text = field_kind(name), field_help(name)
    if kind == "int":
        return _int_input(name, name, default, help_text)
    if kind == "optional_int":
        value = int(st.number_input(f"{name} (0 = unset)", min_value=0, max_value=int_limits(name)[1],
                                    step=1, key=_ensure(name, _widget_value(name, default)),
                                    help=help_text))
        return value or None
    key = _ensure(name, _widget_value(name, default))
    if kind == "optional_numbers":
        text = st.text_input(f"{name} (comma-separated, empty = unset)", key=key, help=help_text)
        try:
            return field_reader(name)(text or "0")
        except ValueError as exc:
            st.warning(f"{name} {exc}; unset instead.")
            return None
    if kind == "choice":
        return st.selectbox(name, field_choices(name), key=key, help=help_text)
    if kind == "bool":
        return st.checkbox(name, key=key, help=help_text)
    return float(st.number_input(name, min_value=0.0, format="%g", key=key, help=help_text))


def _config_widgets(base: ModelConfig) -> dict[str, Any]:
    values: dict[str, Any] = {}
    ss = st.session_state
    changed = sum(ss.get(widget_key(n), _widget_value(n, getattr(base, n))) != _widget_value(n, getattr(base, n))
                  for n in OVERRIDE_FIELDS)
    title = "Model shape and variants" + (f" ({changed} changed from the preset)" if changed else "")
    with st.expander(title, expanded=bool(changed)):
        st.caption("Start from the preset; any change here overrides it (and goes into the URL).")
        for name in OVERRIDE_FIELDS:  # one widget per config field, drawn from its declaration
            values[name] = _field_widget(name, getattr(base, name))
    return values


def _gpu_widgets() -> dict[str, Any]:
    out: dict[str, Any] = {"gpu": st.selectbox(
        "GPU", GPU_NAMES, key=_ensure("gpu", DEFAULTS.gpu),
        help="Dense peak FLOP/s and memory from NVIDIA datasheets (accounting.hardware), or custom.")}
    if out["gpu"] == CUSTOM:
        out["peak_tflops"] = float(st.number_input(
            "Peak TFLOP/s (dense, 10¹² FLOP/s)", min_value=0.001, format="%g",
            key=_ensure("peak_tflops", DEFAULTS.peak_tflops)))
        out["memory_gib"] = float(st.number_input(
            "Memory, GiB (2³⁰ bytes)", min_value=0.001, format="%g",
            key=_ensure("memory_gib", DEFAULTS.memory_gib)))
    else:
        ss = st.session_state
        out["peak_tflops"] = ss.get(widget_key("peak_tflops"), DEFAULTS.peak_tflops)
        out["memory_gib"] = ss.get(widget_key("memory_gib"), DEFAULTS.memory_gib)
    return out


_HF_TEXT, _HF_ERROR = "w_hf_config_text", "_hf_config_error"


def _apply_hf_config() -> None:
    """Button callback (runs before the widgets): the pasted config.json becomes preset "custom"
    with every field set, so the URL describes the imported model in full."""
    ss = st.session_state
    ss.pop(_HF_ERROR, None)
    try:
        cfg = ModelConfig.from_hf_config(json.loads(ss.get(_HF_TEXT) or ""))
    except ValueError as exc:  # bad JSON, or a field the project does not model (UserError)
        ss[_HF_ERROR] = str(exc).splitlines()[0]
        return
    ss[widget_key("preset")] = CUSTOM
    _seed_config(cfg, {})
    ss[widget_key("context_length")] = cfg.context_length


def _hf_import() -> None:
    with st.expander("Import a Hugging Face config.json"):
        upload = st.file_uploader("config.json", type=["json"], key="w_hf_config_file",
                                  max_upload_size=1)
        if upload is not None and not st.session_state.get(_HF_TEXT):
            st.session_state[_HF_TEXT] = upload.getvalue().decode("utf-8", errors="replace")
        st.text_area("…or paste it", key=_HF_TEXT, height=120,
                     help="model_type gpt2, llama, mistral or qwen2; a field the project does not "
                          "model (sliding windows, other RoPE scalings, MoE) is refused by name.")
        st.button("Use this config", key="w_hf_config_go", on_click=_apply_hf_config)
        if st.session_state.get(_HF_ERROR):
            st.error(st.session_state[_HF_ERROR])


def render_sidebar() -> Settings:
    """Draw the sidebar and return the settings it holds."""
    with st.sidebar:
        view = st.radio("View", list(VIEWS), format_func=VIEWS.__getitem__,
                        key=_ensure("view", DEFAULTS.view))
        st.divider()
        preset = st.selectbox("Preset", PRESETS, key=_ensure("preset", DEFAULTS.preset),
                              on_change=_on_preset_change,
                              help="CS336's shapes (cs336-*, tinystories, owt: the CS336 block), "
                                   "published models from their config.json (gpt2 … gpt2-xl as "
                                   "released, Llama 3, Mistral, Qwen2.5), or custom.")
        _hf_import()
        base = ModelConfig() if preset == CUSTOM else get_preset(preset)
        context = _int_input("Context length T (tokens)", "context_length", base.context_length,
                             "Tokens per sequence of the step (also the model's context length).")
        batch = _int_input("Batch size B (sequences)", "batch_size", DEFAULTS.batch_size)
        dtype = st.selectbox("dtype", TRAINING_DTYPES, key=_ensure("dtype", DEFAULTS.dtype),
                             help="float32, or bfloat16 mixed precision (float32 master weights, "
                                  "gradients and AdamW state + a bf16 weight copy).")
        config_values = _config_widgets(base)
        st.divider()
        gpu = _gpu_widgets()
        mfu = st.slider("MFU (model FLOPs utilization)", 0.01, 1.0, step=0.01,
                        key=_ensure("mfu", DEFAULTS.mfu),
                        help="Achieved / peak FLOP/s, for the training-time estimate.")
        steps = _int_input("Training steps", "steps", DEFAULTS.steps)
    settings = Settings(view=view, preset=preset, context_length=context, batch_size=batch,
                        dtype=dtype, mfu=float(mfu), steps=steps,
                        checkpointing=bool(st.session_state.get("checkpointing", False)),
                        job=st.session_state.get("train_job") or "", **gpu)
    return with_overrides(settings, config_values)


def sync_url(settings: Settings) -> None:
    """Write the settings' non-default values to the URL (only when they changed)."""
    query = to_query(settings)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
