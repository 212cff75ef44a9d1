"""The explorer's settings and their URL form (no Streamlit here: pure functions, tested alone).

Every setting lives in the URL query parameters, so a view is a shareable link. Only values that
differ from the defaults are written (a clean URL). Parameters:
  view            one of VIEWS (default "overview")
  preset          one of accounting.list_presets() or "custom" (default "cs336-gpt2-small")
  context_length  T of the step, tokens (default: the preset's context length)
  batch_size      B, sequences per step (default 8)
  dtype           one of accounting.conventions.TRAINING_DTYPES (see accounting.memory)
  gpu             a name in accounting.GPUS or "custom" (default "H100-SXM")
  peak_tflops     custom GPU dense peak, TFLOP/s (10^12 FLOP/s); memory_gib: its memory, GiB (2^30 B)
  mfu             model FLOPs utilization in (0, 1]; steps: optimizer steps for the training time
  checkpointing   "1" = per-block activation checkpointing of the training step (every view)
  activations     the activation convention of the peak and the largest batch: "implementation"
                  (the memory timeline's maximum, default) or "textbook" (CS336's static sum)
  overhead_gib    memory the step cannot use, GiB (CUDA context, cuBLAS workspace, allocator
                  fragmentation); unset = the default of explorer.overhead (measured values from
                  committed CUDA results, else 0)
  prompt_tokens, new_tokens   the Inference view's request P and G (unset: G = min(256, T/4),
                  P = T - G + 1); serving_dtype: one of accounting.SERVING_DTYPES (default
                  bfloat16); hbm_tbps: a custom GPU's HBM bandwidth, TB/s (10^12 B/s)
  gpus, strategy, tensor_parallel, link   the Parallelism view's layout: N GPUs (default 8), one
                  of accounting.layout.STRATEGIES (default zero3), tensor-parallel degree K
                  (default 1; K > N is clamped to N with a warning) and a name in
                  accounting.hardware.LINKS (default DEFAULT_LINK)
  job             id of a training job of the Train view (lives as long as the server process)
  <config field>  any ModelConfig field except context_length overrides the preset
                  (d_model, num_heads, norm, ffn, tie_embeddings, ...)
A value that cannot be read falls back to its default and yields a warning naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from accounting.config import DEFAULT_PRESET, ModelConfig, get_preset, list_presets
from accounting.conventions import TRAINING_DTYPES
from accounting.hardware import DEFAULT_LINK, GPUS, LINKS
from accounting.inference import SERVING_DTYPES
from accounting.layout import STRATEGIES

VIEWS: dict[str, str] = {
    "overview": "Overview",
    "params_flops": "Parameters & FLOPs",
    "memory": "Memory",
    "inference": "Inference",
    "parallelism": "Parallelism",
    "formulas": "Formulas",
    "measured": "Measured vs analytic",
    "train": "Train",
    "tokenizer": "Tokenizer",
    "downloads": "Downloads",
}
"""View id (URL value) -> title."""

CUSTOM = "custom"
ACTIVATION_CONVENTIONS: tuple[str, ...] = ("implementation", "textbook")
PRESETS: tuple[str, ...] = (*list_presets(), CUSTOM)
GPU_NAMES: tuple[str, ...] = (*GPUS, CUSTOM)

INT_LIMITS: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 10_000_000), "d_model": (1, 1_048_576), "num_layers": (1, 10_000),
    "num_heads": (1, 65_536), "d_ff": (1, 16_777_216), "context_length": (1, 16_777_216),
    "batch_size": (1, 10_000_000), "steps": (1, 10**12), "prompt_tokens": (1, 16_777_216),
    "new_tokens": (1, 16_777_216), "gpus": (1, 65_536), "tensor_parallel": (1, 65_536),
}
"""Inclusive (min, max) of the integer settings (the widgets' bounds, and the URL's); any other
integer config field gets DEFAULT_INT_LIMITS."""
DEFAULT_INT_LIMITS = (1, 10**9)


def int_limits(name: str) -> tuple[int, int]:
    """(min, max) of integer setting or config field `name`."""
    return INT_LIMITS.get(name, DEFAULT_INT_LIMITS)

_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig)}
OVERRIDE_FIELDS: tuple[str, ...] = tuple(name for name in _FIELDS if name != "context_length")
"""Config fields the sidebar overrides (context_length is the step's own setting)."""


@dataclass(frozen=True)
class Settings:
    """What the user chose. `overrides` holds config fields that differ from the preset;
    `context_length` None means the preset's; `peak_tflops` (10^12 FLOP/s), `memory_gib`
    (2^30 bytes) and `hbm_tbps` (10^12 B/s) describe a custom GPU; `overhead_gib` None means
    explorer.overhead's default; `prompt_tokens` / `new_tokens` None mean the Inference view's
    defaults for the context length; `gpus` N, `strategy`, `tensor_parallel` K (<= N) and `link`
    are the Parallelism view's layout."""

    view: str = "overview"
    preset: str = DEFAULT_PRESET
    overrides: tuple[tuple[str, Any], ...] = ()
    context_length: int | None = None
    batch_size: int = 8
    dtype: str = "float32"
    gpu: str = "H100-SXM"
    peak_tflops: float = 100.0
    memory_gib: float = 80.0
    mfu: float = 0.5
    steps: int = 10_000
    checkpointing: bool = False
    activations: str = "implementation"
    overhead_gib: float | None = None
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    serving_dtype: str = "bfloat16"
    hbm_tbps: float = 3.35
    gpus: int = 8
    strategy: str = "zero3"
    tensor_parallel: int = 1
    link: str = DEFAULT_LINK
    job: str = ""

    @property
    def base_config(self) -> ModelConfig:
        """The preset's config (the default ModelConfig for "custom")."""
        return ModelConfig() if self.preset == CUSTOM else get_preset(self.preset)

    @property
    def step_context(self) -> int:
        return self.base_config.context_length if self.context_length is None else self.context_length

    def config(self) -> ModelConfig:
        """The model config: preset + overrides at the step's context length (ValueError if invalid)."""
        return self.base_config.replace(**dict(self.overrides), context_length=self.step_context)


DEFAULTS = Settings()


# ---- reading values ----------------------------------------------------------------------------
def _int_in(name: str) -> Callable[[str], int]:
    lo, hi = int_limits(name)

    def read(text: str) -> int:
        try:
            value = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise ValueError(f"must be an integer in [{lo:,}, {hi:,}]")
        return value
    return read


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _finite_float(text: str) -> float:
    """A finite number >= 0 (a config float; ModelConfig checks its own range, e.g. dropout < 1)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def read(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text
    return read


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _mfu(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise ValueError("must be in (0, 1]")
    return value


def _job_id(text: str) -> str:
    if not (len(text) == 12 and all(c in "0123456789abcdef" for c in text)):
        raise ValueError("must be a 12-digit hex job id")
    return text


_READERS: dict[str, Callable[[str], Any]] = {
    "view": _choice(tuple(VIEWS)), "preset": _choice(PRESETS),
    "context_length": _int_in("context_length"), "batch_size": _int_in("batch_size"),
    "dtype": _choice(TRAINING_DTYPES), "gpu": _choice(GPU_NAMES), "peak_tflops": _positive_float,
    "memory_gib": _positive_float, "mfu": _mfu, "steps": _int_in("steps"), "checkpointing": _bool,
    "activations": _choice(ACTIVATION_CONVENTIONS), "overhead_gib": _finite_float,
    "prompt_tokens": _int_in("prompt_tokens"), "new_tokens": _int_in("new_tokens"),
    "serving_dtype": _choice(tuple(SERVING_DTYPES)), "hbm_tbps": _positive_float,
    "gpus": _int_in("gpus"), "strategy": _choice(STRATEGIES), "tensor_parallel": _int_in("tensor_parallel"),
    "link": _choice(tuple(LINKS)), "job": _job_id,
}
_CUSTOM_GPU_FIELDS = ("peak_tflops", "memory_gib", "hbm_tbps")
"""Settings that only mean something for the custom GPU (dropped from the URL otherwise)."""


def field_kind(name: str) -> str:
    """How config field `name` is read and drawn: "choice", "bool", "int", "optional_int" (None
    by default; 0 stands for None in the URL and the widget) or "float" (from its dataclass
    field: metadata["choices"], else the default's type or metadata["type"])."""
    f = _FIELDS[name]
    if "choices" in f.metadata:
        return "choice"
    if f.default is None:
        return "optional_numbers" if "nargs" in f.metadata else "optional_int"
    kind = f.metadata.get("type", type(f.default))
    return {bool: "bool", int: "int", float: "float"}[kind]


def _optional_numbers(name: str) -> Callable[[str], tuple[float, ...] | None]:
    """An optional tuple of numbers as comma-separated text; "0" (or nothing) means unset."""
    count = _FIELDS[name].metadata["nargs"]

    def read(text: str) -> tuple[float, ...] | None:
        parts = [p for p in text.replace(" ", "").split(",") if p]
        if not parts or parts == ["0"]:
            return None
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != count or not all(0 < v < float("inf") for v in values):
            raise ValueError(f"must be {count} positive numbers separated by commas, or 0")
        return values
    return read


def _optional_int_in(name: str) -> Callable[[str], int | None]:
    """An optional integer: 0 means unset (None)."""
    read = _int_in(name)
    return lambda text: None if text.strip() == "0" else read(text)


def field_help(name: str) -> str:
    """The one-line meaning of config field `name` (its ModelConfig metadata["help"])."""
    return _FIELDS[name].metadata.get("help", "")


def field_choices(name: str) -> tuple[str, ...]:
    """The allowed values of a variant switch."""
    return tuple(_FIELDS[name].metadata["choices"])


def field_reader(name: str) -> Callable[[str], Any]:
    """The parser of config field `name` from its URL text."""
    kind = field_kind(name)
    if kind == "choice":
        return _choice(field_choices(name))
    readers = {"int": _int_in, "optional_int": _optional_int_in, "optional_numbers": _optional_numbers}
    return readers[kind](name) if kind in readers else {"bool": _bool, "float": _finite_float}[kind]


def parse_query(params: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """Settings from URL query parameters, and one warning per value that could not be read
    (that value falls back to its default). Unknown parameter names are reported too."""
    values: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    warnings: list[str] = []
    for name, raw in params.items():
        text = str(raw[-1] if isinstance(raw, list) and raw else raw)
        if name in _READERS:
            target, reader = values, _READERS[name]
        elif name in OVERRIDE_FIELDS:
            target, reader = overrides, field_reader(name)
        else:
            warnings.append(f"Ignored unknown URL parameter `{name}`.")
            continue
        try:
            target[name] = reader(text)
        except ValueError as exc:
            warnings.append(f"URL parameter `{name}={text}` {exc}; using the default instead.")
    settings = with_overrides(Settings(**values), overrides)
    if settings.context_length == settings.base_config.context_length:
        settings = dataclasses.replace(settings, context_length=None)
    if settings.gpu != CUSTOM:  # the custom GPU's numbers mean nothing for a named GPU
        settings = dataclasses.replace(settings, **{k: getattr(DEFAULTS, k) for k in _CUSTOM_GPU_FIELDS})
    tp = tensor_parallel_in(settings.gpus, settings.tensor_parallel)
    if tp != settings.tensor_parallel:
        warnings.append(f"URL parameter `tensor_parallel={settings.tensor_parallel}` must be at most "
                        f"gpus ({settings.gpus}); using {tp} instead.")
        settings = dataclasses.replace(settings, tensor_parallel=tp)
    return settings, warnings


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, float):  # short when that reads back exactly (2.0 -> "2")
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return "0" if value is None else str(value)  # an unset optional value


def to_query(settings: Settings) -> dict[str, str]:
    """The URL query parameters of `settings`: only values that differ from the defaults."""
    out: dict[str, str] = {}
    for name in _READERS:
        value = getattr(settings, name)
        if name == "context_length":
            if value is None or value == settings.base_config.context_length:
                continue
        elif value == getattr(DEFAULTS, name):
            continue
        if name in _CUSTOM_GPU_FIELDS and settings.gpu != CUSTOM:
            continue
        out[name] = _text(value)
    for name, value in settings.overrides:
        out[name] = _text(value)
    return out


def request_tokens(context: int, prompt: int | None, new: int | None) -> tuple[int, int]:
    """The Inference view's (P, G) at context length T = `context`: G = `new` or min(256, T/4),
    within [1, T]; P = `prompt` or T - G + 1, within [1, T - G + 1] (P + G - 1 <= T)."""
    g = min(max(1, new or min(256, max(1, context // 4))), context)
    p = min(max(1, prompt or context - g + 1), context - g + 1)
    return p, g


def request_defaults(context: int, prompt: int | None, new: int | None) -> tuple[int | None, int | None]:
    """(P, G) as settings keep them: request_tokens's values, None where that is the default."""
    p, g = request_tokens(context, prompt, new)
    g_out = None if g == request_tokens(context, None, None)[1] else g
    return (None if p == request_tokens(context, None, g_out)[0] else p), g_out


def tensor_parallel_in(gpus: int, tp: int) -> int:
    """The Parallelism view's tensor-parallel degree K on N = `gpus` GPUs: `tp` within [1, N]
    (K must divide N; one that does not is the view's error, not clamped)."""
    return min(max(1, tp), gpus)


def with_overrides(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """`settings` with config field values `values` (those equal to the preset's are dropped)."""
    base = settings.base_config
    kept = tuple((k, values[k]) for k in OVERRIDE_FIELDS if k in values and getattr(base, k) != values[k])
    return dataclasses.replace(settings, overrides=kept)
