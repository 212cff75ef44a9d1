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
from explorer.overhead import default_overhead
from explorer.state import (
    ACTIVATION_CONVENTIONS, CUSTOM, DEFAULTS, GPU_NAMES, OVERRIDE_FIELDS, PRESETS, VIEWS, Settings,
    field_choices, field_help, field_kind, field_reader, int_limits, parse_query, request_defaults,
    tensor_parallel_in, to_query, with_overrides,
)

_LOADED = "_explorer_loaded"
_SETTINGS = ("view", "preset", "context_length", "batch_size", "dtype", "gpu", "peak_tflops", "memory_gib",
             "mfu", "steps", "checkpointing", "activations", "overhead_gib", "prompt_tokens", "new_tokens",
             "serving_dtype", "hbm_tbps", "gpus", "strategy", "tensor_parallel", "link")
"""Settings held by widgets (the sidebar's, the Inference view's request and the Parallelism
view's layout)."""
_VIEW_KEYS = {"prompt_tokens": "w_inf_prompt_tokens", "new_tokens": "w_inf_new_tokens",
              "serving_dtype": "w_inf_dtype", "hbm_tbps": "w_inf_hbm_tbps", "gpus": "w_par_gpus",
              "strategy": "w_par_strategy", "tensor_parallel": "w_par_tp", "link": "w_par_link"}


def widget_key(name: str) -> str:
    """The session-state key of setting or config field `name`."""
    return f"w_cfg_{name}" if name in OVERRIDE_FIELDS else _VIEW_KEYS.get(name, f"w_{name}")


def _seed(settings: Settings) -> None:
    """Put `settings` into the widgets' session-state keys."""
    ss = st.session_state
    for name in _SETTINGS:
        ss[widget_key(name)] = getattr(settings, name)
    ss[widget_key("context_length")] = settings.step_context
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


def _config_widgets(base: ModelConfig) -> None:
    ss = st.session_state
    changed = sum(ss.get(widget_key(n), _widget_value(n, getattr(base, n))) != _widget_value(n, getattr(base, n))
                  for n in OVERRIDE_FIELDS)
    title = "Model shape and variants" + (f" ({changed} changed from the preset)" if changed else "")
    with st.expander(title, expanded=bool(changed)):
        st.caption("Start from the preset; any change here overrides it (and goes into the URL).")
        for name in OVERRIDE_FIELDS:  # one widget per config field, drawn from its declaration
            _field_widget(name, getattr(base, name))


def _gpu_widgets() -> None:
    gpu = st.selectbox("GPU", GPU_NAMES, key=_ensure("gpu", DEFAULTS.gpu),
                       help="Dense peak FLOP/s and memory from NVIDIA datasheets (accounting.hardware), or custom.")
    if gpu == CUSTOM:
        st.number_input("Peak TFLOP/s (dense, 10¹² FLOP/s)", min_value=0.001, format="%g",
                        key=_ensure("peak_tflops", DEFAULTS.peak_tflops))
        st.number_input("Memory, GiB (2³⁰ bytes)", min_value=0.001, format="%g",
                        key=_ensure("memory_gib", DEFAULTS.memory_gib))


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


SECTIONS: dict[str, frozenset[str]] = {
    "overview": frozenset({"model", "batch", "dtype", "checkpointing", "convention", "overhead", "gpu", "time"}),
    "params_flops": frozenset({"model", "batch"}),
    "memory": frozenset({"model", "batch", "dtype", "checkpointing", "convention", "overhead", "gpu"}),
    "inference": frozenset({"model", "batch", "gpu"}),
    "formulas": frozenset({"model", "batch", "dtype", "checkpointing", "convention", "gpu", "time"}),
    "measured": frozenset({"model", "batch", "dtype", "checkpointing"}),
    "train": frozenset(), "tokenizer": frozenset(),
    "downloads": frozenset({"model", "batch", "dtype", "checkpointing", "convention", "overhead", "gpu", "time"}),
}
"""The sidebar sections each view uses; the others are not drawn there (their values are kept,
and stay in the URL, for the views that use them). A view missing here gets every section."""
_ALL = frozenset().union(*SECTIONS.values())
_HIDDEN_TEXT = {"model": "model", "batch": "batch size", "dtype": "dtype", "checkpointing": "checkpointing",
                "convention": "activation convention", "overhead": "overhead margin", "gpu": "GPU",
                "time": "MFU and steps"}


def _keep_values() -> None:
    """Keep every setting's widget value across runs in which its widget is not drawn (Streamlit
    drops the state of widgets a run does not draw; re-assigning a key keeps it)."""
    ss = st.session_state
    for key in _setting_keys():
        if key in ss:
            ss[key] = ss[key]


def _setting_keys() -> list[str]:
    return [widget_key(n) for n in (*_SETTINGS, *OVERRIDE_FIELDS)]


def _model_widgets() -> None:
    preset = st.selectbox("Preset", PRESETS, key=_ensure("preset", DEFAULTS.preset), on_change=_on_preset_change,
                          help="CS336's shapes (cs336-*, tinystories, owt: the CS336 block), published "
                               "models from their config.json (gpt2 … gpt2-xl as released, Llama 3, "
                               "Mistral, Qwen2.5), or custom.")
    _hf_import()
    base = ModelConfig() if preset == CUSTOM else get_preset(preset)
    _int_input("Context length T (tokens)", "context_length", base.context_length,
               "Tokens per sequence of the step (also the model's context length).")


def _memory_widgets(shown: frozenset[str], gpu: str) -> None:
    if shown & {"checkpointing", "convention", "overhead"}:
        st.caption("**Memory accounting** (the training step's peak and largest batch, in every view)")
    if "checkpointing" in shown:
        st.checkbox("Activation checkpointing (per block)", key=_ensure("checkpointing", DEFAULTS.checkpointing),
                    help="Keep only each block's input; recompute the block in backward (one extra forward).")
    if "convention" in shown:
        st.radio("Peak memory counted as", ACTIVATION_CONVENTIONS, horizontal=True,
                 key=_ensure("activations", DEFAULTS.activations),
                 help="implementation: the maximum of the step's memory timeline (what this model's "
                      "trainer allocates, event by event); textbook: CS336's static sum of weights, "
                      "gradients, AdamW state and the textbook activation list (no checkpointing).")
    if "overhead" in shown:
        default = default_overhead(gpu)
        st.number_input("Overhead margin, GiB (empty = default)", min_value=0.0, value=None, format="%g",
                        key=_ensure("overhead_gib", None),
                        placeholder=f"default {default.total_bytes / 2**30:.3g} GiB",
                        help="Memory the step cannot use: CUDA context, cuBLAS workspace, allocator "
                             f"fragmentation. Default: {default.source}.")


def render_sidebar() -> Settings:
    """Draw the sidebar (the sections the chosen view uses) and return the settings it holds."""
    _keep_values()
    with st.sidebar:
        view = st.radio("View", list(VIEWS), format_func=VIEWS.__getitem__, key=_ensure("view", DEFAULTS.view))
        shown = SECTIONS.get(view, _ALL)
        st.divider()
        if "model" in shown:
            _model_widgets()
        if "batch" in shown:
            _int_input("Batch size B (sequences)", "batch_size", DEFAULTS.batch_size)
        if "dtype" in shown:
            st.selectbox("dtype", TRAINING_DTYPES, key=_ensure("dtype", DEFAULTS.dtype),
                         help="float32, or bfloat16 mixed precision (autocast over float32 master weights, "
                              "gradients and AdamW state).")
        if "model" in shown:
            _config_widgets(_base())
        _memory_widgets(shown, st.session_state.get(widget_key("gpu"), DEFAULTS.gpu))
        if "gpu" in shown:
            st.divider()
            _gpu_widgets()
        if "time" in shown:
            st.slider("MFU (model FLOPs utilization)", 0.01, 1.0, step=0.01, key=_ensure("mfu", DEFAULTS.mfu),
                      help="Achieved / peak FLOP/s, for the training-time estimate.")
            _int_input("Training steps", "steps", DEFAULTS.steps)
        hidden = [_HIDDEN_TEXT[k] for k in _HIDDEN_TEXT if k not in shown]
        if hidden:
            st.caption(f"Not used by this view, kept for the others: {', '.join(hidden)}."
                       if shown else "This view has its own settings on the page; the model settings "
                                     "of the other views are kept (and stay in the URL).")
    return settings_from_state()


def _base() -> ModelConfig:
    name = st.session_state.get(widget_key("preset"), DEFAULTS.preset)
    return ModelConfig() if name == CUSTOM else get_preset(name)


def _config_value(name: str, value: Any) -> Any:
    """A config field's value from its widget's (inverse of _widget_value)."""
    kind = field_kind(name)
    if kind == "optional_int":
        return int(value) or None
    if kind == "optional_numbers":
        try:
            return field_reader(name)(value or "0")
        except ValueError:
            return None
    return value


def settings_from_state() -> Settings:
    """The settings the widgets' session state holds (drawn this run or kept from earlier runs)."""
    ss, base = st.session_state, _base()
    get = lambda name: ss.get(widget_key(name), getattr(DEFAULTS, name))  # noqa: E731
    context = int(ss.get(widget_key("context_length"), base.context_length))
    prompt, new = request_defaults(context, get("prompt_tokens"), get("new_tokens"))
    overhead = ss.get(widget_key("overhead_gib"))
    gpus = int(get("gpus"))
    settings = Settings(
        view=get("view"), preset=get("preset"), context_length=context, batch_size=int(get("batch_size")),
        dtype=get("dtype"), gpu=get("gpu"), peak_tflops=float(get("peak_tflops")),
        memory_gib=float(get("memory_gib")), mfu=float(get("mfu")), steps=int(get("steps")),
        checkpointing=bool(get("checkpointing")), activations=get("activations"),
        overhead_gib=None if overhead is None else float(overhead), prompt_tokens=prompt, new_tokens=new,
        serving_dtype=get("serving_dtype"), hbm_tbps=float(get("hbm_tbps")), gpus=gpus,
        strategy=get("strategy"), tensor_parallel=tensor_parallel_in(gpus, int(get("tensor_parallel"))),
        link=get("link"), job=ss.get("train_job") or "")
    values = {n: _config_value(n, ss.get(widget_key(n), _widget_value(n, getattr(base, n)))) for n in OVERRIDE_FIELDS}
    return with_overrides(settings, values)


def sync_url(settings: Settings) -> None:
    """Write the settings' non-default values to the URL (only when they changed)."""
    query = to_query(settings)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def config_or_error(settings: Settings) -> ModelConfig | None:
    """The sidebar's model config, or None after one error box saying it is not valid (for the
    views that build their own report from it)."""
    try:
        return settings.config()
    except ValueError as exc:
        st.error(f"This configuration is not valid: {exc}. Change it in the sidebar.")
        return None
