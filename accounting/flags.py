"""Command-line flags generated from the config dataclasses: one builder for every CLI.

`add_dataclass_flags(parser, cls)` adds `--field-name` for each field of `cls` (ModelConfig,
TrainConfig, ...), typed and documented from the field itself: `metadata["help"]`, a variant's
`metadata["choices"]`, a bool as `--x / --no-x`, a tuple as that many numbers (its default's
length or `metadata["nargs"]`), an Optional field's type from `metadata["type"]`. Every flag
defaults to None ("not given"), so a CLI layers preset < config file < flags with
`given(args, cls)`. Adding a config field therefore adds its flag
to every CLI that builds a model; nothing here names a field.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from accounting.config import DEFAULT_PRESET, ModelConfig, get_preset, list_presets
from accounting.errors import UserError

_Adder = argparse.ArgumentParser | argparse._ArgumentGroup


def flag_name(field: str) -> str:
    """`--d-model` for the field `d_model`."""
    return "--" + field.replace("_", "-")


def _value_type(f: dataclasses.Field) -> type:
    if "type" in f.metadata:
        return f.metadata["type"]
    default = f.default
    if isinstance(default, tuple):
        return type(default[0])
    return type(default)


def _nargs(f: dataclasses.Field) -> int | None:
    """How many values a tuple field takes (metadata["nargs"] or its default's length)."""
    if "nargs" in f.metadata:
        return f.metadata["nargs"]
    return len(f.default) if isinstance(f.default, tuple) else None


def add_dataclass_flags(parser: _Adder, cls: type, *, include: Iterable[str] | None = None,
                        skip: Iterable[str] = (), helps: Mapping[str, str] | None = None) -> None:
    """One flag per field of dataclass `cls` (only `include` if given, never `skip`); `helps`
    overrides a field's help text for this CLI."""
    wanted = None if include is None else set(include)
    for f in dataclasses.fields(cls):
        if f.name in skip or (wanted is not None and f.name not in wanted):
            continue
        help_text = (helps or {}).get(f.name, f.metadata.get("help"))
        kind = _value_type(f)
        if kind is bool:
            parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        elif "choices" in f.metadata:
            parser.add_argument(flag_name(f.name), choices=f.metadata["choices"], default=None,
                                help=help_text)
        else:
            nargs = _nargs(f)
            metavar = f.name.upper() if nargs is None else tuple(
                f"{f.name.upper()}{i + 1}" for i in range(nargs))
            parser.add_argument(flag_name(f.name), type=kind, nargs=nargs, default=None,
                                metavar=metavar, help=help_text)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` the command line set (flags left at None are not given)."""
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if _nargs(f) else value
    return out


def add_model_flags(parser: _Adder, *, helps: Mapping[str, str] | None = None) -> None:
    """`--preset NAME` or `--hf-config FILE` (the starting config; default: ModelConfig(), which is
    the preset DEFAULT_PRESET), plus one override flag per ModelConfig field."""
    parser.add_argument("--preset", default=None,
                        help=f"starting config (default {DEFAULT_PRESET}): {', '.join(list_presets())}")
    parser.add_argument("--hf-config", default=None, metavar="CONFIG_JSON",
                        help="starting config from a Hugging Face config.json (gpt2, llama, mistral, "
                             "qwen2) instead of --preset")
    add_dataclass_flags(parser, ModelConfig, helps=helps)


def base_config(args: argparse.Namespace) -> ModelConfig:
    """The starting config the command line names: --hf-config, else --preset, else ModelConfig()."""
    hf_config, preset = getattr(args, "hf_config", None), getattr(args, "preset", None)
    if hf_config and preset:
        raise UserError("give --preset or --hf-config, not both")
    if hf_config:
        return ModelConfig.from_hf_config(hf_config)
    return get_preset(preset) if preset else ModelConfig()


def model_config_from_args(args: argparse.Namespace, preset: str | None = None,
                           base: ModelConfig | None = None) -> ModelConfig:
    """`base` (else the preset `preset`, else the command line's base_config) with every given
    override applied; validated by ModelConfig (a UserError names a bad field)."""
    if base is None:
        base = get_preset(preset) if preset else base_config(args)
    overrides = given(args, ModelConfig)
    return base.replace(**overrides) if overrides else base


def flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` as an argparse `type=`: its UserError message becomes argparse's one-line error
    (argparse would otherwise print a generic "invalid <name> value")."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert
