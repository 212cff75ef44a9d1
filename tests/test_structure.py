"""The tree's contracts: one declaration of the model reaches every CLI and the explorer, the
packages import only downward, and the CLIs tell user errors from bugs."""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import pytest

from accounting.cli_support import run_cli
from accounting.config import ModelConfig
from accounting.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]


def _options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Option strings of `parser`, and of each of its subcommands (by name)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {parser.prog: set(parser._option_string_actions)}
    return {name: set(sub._option_string_actions) for name, sub in subs[0].choices.items()}


def _model_clis() -> dict[str, set[str]]:
    """Every CLI (and subcommand) that builds a model, with its option strings."""
    import accounting.cli
    import model.experiments.cli
    import model.train
    import validation.measure
    import validation.measure_inference

    found = {**_options(accounting.cli.build_parser()), **_options(validation.measure.build_parser()),
             **_options(model.train.build_parser()),
             **_options(validation.measure_inference.build_parser())}
    found.update({f"experiments {k}": v for k, v in _options(model.experiments.cli.build_parser()).items()
                  if k != "sgd-toy"})  # the SGD toy has no language model
    return found


def test_every_config_field_is_a_flag_of_every_model_cli():
    clis = _model_clis()
    assert set(clis) >= {"report", "compare", "inference", "python -m validation.measure",
                         "python -m validation.measure_inference", "python -m model.train",
                         "experiments lr-sweep", "experiments batch-size", "experiments ablations"}
    for name, options in clis.items():
        missing = [f for f in CONFIG_FIELDS if "--" + f.replace("_", "-") not in options]
        assert not missing, f"{name} lacks flags for {missing}"
        assert "--debug" in options


# --- layering ------------------------------------------------------------------------------------
LAYERS = {
    "accounting": {"torch", "model", "validation", "explorer", "tokenizer", "streamlit", "plotly"},
    "tokenizer": {"torch", "model", "validation", "explorer", "streamlit"},
    "model": {"validation", "explorer", "streamlit"},
    "validation": {"explorer", "streamlit", "plotly", "benchmarks"},
}
"""Package -> top-level modules it must never import (at module level or inside a function)."""


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_packages_import_only_downward(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_roots(path) & LAYERS[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, offenders


def test_the_layer_check_sees_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import torch.nn\n    from model.trainer import train\n")
    assert _imported_roots(probe) == {"torch", "model"}


# --- user errors and bugs ------------------------------------------------------------------------
def _raising(exc: BaseException):
    def main(argv):
        raise exc
    return main


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(capsys):
    assert run_cli(_raising(UserError("d_model must be positive\nsecond line")), [], prog="p") == 2
    assert capsys.readouterr().err == "p: error: d_model must be positive\n"
    assert run_cli(_raising(FileNotFoundError(2, "No such file or directory", "x.npy")), [], "p") == 2
    assert capsys.readouterr().err == "p: error: No such file or directory: x.npy\n"
    with pytest.raises(ValueError, match="internal"):  # a plain ValueError is a bug, not bad input
        run_cli(_raising(ValueError("internal")), [], prog="p")
    with pytest.raises(KeyError):
        run_cli(_raising(KeyError("k")), [], prog="p")
    with pytest.raises(UserError):  # --debug shows the traceback of a user error too
        run_cli(_raising(UserError("bad")), ["--debug"], prog="p")


def test_cli_flag_errors_exit_2_and_debug_is_accepted(capsys):
    from accounting.cli import main

    assert run_cli(main, ["report", "--d-model", "x"], prog="python -m accounting") == 2
    assert "--d-model" in capsys.readouterr().err
    with pytest.raises(UserError, match="num_heads"):
        run_cli(main, ["report", "--num-heads", "7", "--debug"], prog="python -m accounting")
