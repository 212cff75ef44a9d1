"""Every CLI under bad input: exit 0 or 2, never a traceback, and nothing left behind on a refusal.

A hypothesis fuzz over the flags each CLI's own parser declares: a valid, tiny invocation of every
(sub)command, then one to three mutations (a flag's value replaced by a bad one of its type, a flag
the invocation lacked added with a bad value, a flag or a positional dropped, an unknown flag
added, the output moved onto a read-only folder or through a file). Each invocation runs
in-process through `run_cli` (the CLIs' own wrapper) in a fresh output folder; an exception other
than the CLI's own exit fails the test with the argument vector that raised it. Plus, for every
`--out`, a read-only location (a read-only bind mount when this process may mount one, else a
0555 folder as a non-root user) and a parent that is a file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounting.cli_support import run_cli

TINY = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "24",
        "--vocab-size", "300", "--context-length", "8"]
TEXT = ("Once upon a time there was a tiny model that learned bytes, and it counted every one. "
        "The function returns the number of tokens in the string. ") * 12

# values that are bad for a flag of each kind (some are fine for a few flags: the run is then
# tiny and must exit 0); HUGE only where the value does not set the amount of work
INT_BAD = ["-1", "abc", "1.5", "", "nan", "0x10", "-99999999999999999999"]
HUGE = "99999999999999999999999"
FLOAT_BAD = ["-1", "nan", "inf", "-inf", "1e400", "abc", ""]
CHOICE_BAD = ["bogus", ""]
WORK_FLAGS = {"--steps", "--max-new-tokens", "--new-tokens", "--prompt-tokens", "--token-budget", "--eval-batches", "--trials",
              "--budget-s", "--max-corpus-bytes", "--batch-size", "--generate", "--repeats"}
ENOUGH_DISTINCT = 200


@dataclass(frozen=True)
class Fixtures:
    root: Path
    text: Path
    tok: Path
    ids: Path
    ckpt: Path
    a_file: Path
    read_only: Path


@dataclass(frozen=True)
class Command:
    """A CLI's entry point, its parser (for the flags it declares) and a valid tiny invocation."""

    prog: str
    main: object
    parser: argparse.ArgumentParser
    argv: tuple[str, ...]        # "{OUT}" stands for the per-run output folder


def _entry_points():
    from accounting.cli import build_parser as accounting_parser, main as accounting_main
    from model.experiments.cli import build_parser as experiments_parser, main as experiments_main
    from model.generate import build_parser as generate_parser, main as generate_main
    from model.train import build_parser as train_parser, main as train_main
    from tokenizer.cli import _main as tokenizer_main, _parser as tokenizer_parser
    from validation.measure import build_parser as measure_parser, main as measure_main
    from validation.measure_inference import build_parser as infer_parser, main as infer_main

    return {"accounting": (accounting_main, accounting_parser()),
            "validation.measure": (measure_main, measure_parser()),
            "validation.measure_inference": (infer_main, infer_parser()),
            "tokenizer": (tokenizer_main, tokenizer_parser()),
            "model.train": (train_main, train_parser()),
            "model.generate": (generate_main, generate_parser()),
            "model.experiments": (experiments_main, experiments_parser())}


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    if name is None:
        return parser
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _commands(f: Fixtures) -> list[Command]:
    entry = _entry_points()
    text, tok, ids, ckpt = str(f.text), str(f.tok), str(f.ids), str(f.ckpt)
    table = [
        ("accounting", "report", ["--preset", "tinystories", "--out", "{OUT}/r.json"]),
        ("accounting", "compare", ["--presets", "tinystories", "--context-lengths", "64,128",
                                   "--out", "{OUT}/c.txt"]),
        ("accounting", "conventions", ["--preset", "tinystories", "--out", "{OUT}/c.md"]),
        ("accounting", "inference", ["--preset", "tinystories", "--out", "{OUT}/i.json"]),
        ("validation.measure", None, [*TINY, "--device", "meta", "--out", "{OUT}/m.json"]),
        ("validation.measure_inference", None, [*TINY, "--device", "meta", "--prompt-tokens", "4",
                                                "--new-tokens", "3", "--out", "{OUT}/i.json"]),
        ("tokenizer", "train", [text, "--vocab-size", "270", "--out", "{OUT}/tok"]),
        ("tokenizer", "encode", [text, "--tokenizer", tok, "--out", "{OUT}/ids.npy"]),
        ("model.train", None, ["--train-data", ids, *TINY, "--steps", "2", "--batch-size", "2",
                               "--out", "{OUT}/run", "--no-progress"]),
        ("model.generate", None, ["--checkpoint", ckpt, "--tokenizer", tok, "--prompt", "Once",
                                  "--max-new-tokens", "3"]),
        ("model.experiments", "lr-sweep", ["--tokens", ids, *TINY, "--steps", "2", "--batch-size", "2",
                                           "--eval-batches", "1", "--lrs", "1e-3", "--plotly-js", "cdn",
                                           "--out", "{OUT}/sweep", "--no-progress"]),
    ]
    commands = []
    for prog, sub, argv in table:
        main, parser = entry[prog]
        commands.append(Command(prog, main, _subparser(parser, sub), tuple(([sub] if sub else []) + argv)))
    return commands


def _run(command: Command, argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(command.main, argv, prog=f"python -m {command.prog}")
    return code, err.getvalue()


def _mount_read_only(folder: Path) -> bool:
    """A read-only bind mount of `folder` onto itself (root with CAP_SYS_ADMIN), else False."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    for args in (["mount", "--bind", str(folder), str(folder)],
                 ["mount", "-o", "remount,bind,ro", str(folder)]):
        if subprocess.run(args, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(folder)], capture_output=True)
            return False
    return True


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    from model.train import main as train_main
    from tokenizer.cli import main as tokenizer_main

    root = tmp_path_factory.mktemp("fuzz")
    text = root / "story.txt"
    text.write_text(TEXT)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert tokenizer_main(["train", str(text), "--vocab-size", "300", "--out", str(root / "tok")]) == 0
        assert tokenizer_main(["encode", str(text), "--tokenizer", str(root / "tok"),
                               "--out", str(root / "ids.npy")]) == 0
        assert run_cli(train_main, ["--train-data", str(root / "ids.npy"), *TINY, "--steps", "2",
                                    "--batch-size", "2", "--out", str(root / "run"), "--no-progress"]) == 0
    a_file = root / "a_file"
    a_file.write_text("not a folder\n")
    read_only = root / "read_only"
    read_only.mkdir()
    (read_only / "existing").mkdir()
    mounted = _mount_read_only(read_only)
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("no read-only location: root may not mount here and ignores folder modes")
        read_only.chmod(0o555)
    yield Fixtures(root, text, root / "tok", root / "ids.npy", root / "run" / "ckpt.pt", a_file, read_only)
    if mounted:
        subprocess.run(["umount", str(read_only)], capture_output=True)
    else:
        read_only.chmod(0o755)


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's value-taking options (flags without a value are never bad on their own)."""
    return {a.option_strings[-1]: a for a in parser._actions
            if a.option_strings and a.nargs != 0 and not isinstance(a, argparse._HelpAction)}


def _bad_values(flag: str, action: argparse.Action, f: Fixtures) -> list[str]:
    if action.choices:
        return CHOICE_BAD
    kind = getattr(action.type, "__name__", "") if action.type is not None else "str"
    if action.type is int or "int" in kind:
        return INT_BAD + ([] if flag in WORK_FLAGS else [HUGE])
    if action.type is float or "float" in kind or "rate" in kind:
        return FLOAT_BAD
    return ["", "{OUT}/missing/x", str(f.a_file / "x"), str(f.read_only), "-5", "abc"]


def _mutate(data, command: Command, f: Fixtures, out: Path) -> list[str]:
    argv = [a.replace("{OUT}", str(out)) for a in command.argv]
    flags = _flags(command.parser)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["replace", "add", "drop", "unknown", "out"]), label="kind")
        present = [i for i, a in enumerate(argv[:-1]) if a in flags]
        if kind == "replace" and present:
            i = data.draw(st.sampled_from(present), label="flag")
            value = data.draw(st.sampled_from(_bad_values(argv[i], flags[argv[i]], f)), label="value")
            argv[i + 1] = value.replace("{OUT}", str(out))
        elif kind == "add":
            flag = data.draw(st.sampled_from(sorted(flags)), label="flag")
            value = data.draw(st.sampled_from(_bad_values(flag, flags[flag], f)), label="value")
            argv += [flag, value.replace("{OUT}", str(out))]
        elif kind == "drop" and argv:
            i = data.draw(st.integers(0, len(argv) - 1), label="dropped")
            del argv[i:i + (2 if argv[i] in flags and i + 1 < len(argv) else 1)]
        elif kind == "unknown":
            argv.insert(data.draw(st.integers(0, len(argv)), label="at"), "--no-such-flag")
        elif kind == "out" and "--out" in argv[:-1]:
            i = argv.index("--out")
            name = Path(argv[i + 1]).name
            argv[i + 1] = data.draw(st.sampled_from([
                str(f.read_only / name), str(f.read_only / "deeper" / name),
                str(f.a_file / name), str(f.a_file)]), label="out")
    return argv


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_fuzzed_invocations_exit_0_or_2_cleanly(fixtures):
    commands = _commands(fixtures)
    outs = Path(tempfile.mkdtemp(dir=fixtures.root))
    refused: set[tuple[str, ...]] = set()
    before_ro = _leftovers(fixtures.read_only)

    @settings(max_examples=420, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def invocation(data):
        command = data.draw(st.sampled_from(commands), label="command")
        out = Path(tempfile.mkdtemp(dir=outs))
        argv = _mutate(data, command, fixtures, out)
        here = os.getcwd()
        os.chdir(out)  # relative paths land in the run's folder, where leftovers are looked for
        try:
            code, stderr = _run(command, argv)
        finally:
            os.chdir(here)
        where = f"python -m {command.prog} {' '.join(argv)}"
        assert code in (0, 2), f"{where}: exit {code}\n{stderr}"
        assert "Traceback" not in stderr, f"{where}\n{stderr}"
        assert not list(out.rglob("*.tmp")), f"{where}: temporaries left in {out}"
        if code == 2:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            assert ": error: " in last, f"{where}: exit 2 without its one-line error\n{stderr}"
            assert _leftovers(out) == [], f"{where}: refused but wrote {_leftovers(out)}"
            refused.add((command.prog, *(a.replace(str(out), "{OUT}") for a in argv)))
        shutil.rmtree(out, ignore_errors=True)

    invocation()
    assert _leftovers(fixtures.read_only) == before_ro
    assert len(refused) >= ENOUGH_DISTINCT, f"only {len(refused)} distinct bad inputs were tried"


def _out_commands(f: Fixtures) -> list[Command]:
    commands = _commands(f)
    from validation.campaign.__main__ import build_parser as campaign_parser, main as campaign_main

    commands.append(Command("validation.campaign", campaign_main, campaign_parser(),
                            ("--dry-run", "--out", "{OUT}/campaign")))
    from model.experiments.cli import build_parser as experiments_parser, main as experiments_main

    commands.append(Command("model.experiments", experiments_main,
                            _subparser(experiments_parser(), "sgd-toy"), ("sgd-toy", "--out", "{OUT}/sgd")))
    return [c for c in commands if "--out" in c.argv]


def test_every_out_on_a_read_only_folder_and_through_a_file(fixtures):
    """Each CLI with --out: refused with one line and exit 2 before any work, nothing written."""
    seen = 0
    for command in _out_commands(fixtures):
        i = command.argv.index("--out")
        name = Path(command.argv[i + 1]).name
        for target, needle in ((fixtures.read_only / name, "not writable"),
                               (fixtures.read_only / "new" / name, "not writable"),
                               (fixtures.a_file / name, "is a file"),
                               (fixtures.a_file / "deeper" / name, "is a file")):
            argv = list(command.argv)
            argv[i + 1] = str(target)
            argv = [a.replace("{OUT}", str(fixtures.root)) for a in argv]
            code, stderr = _run(command, argv)
            lines = stderr.strip().splitlines()
            assert code == 2 and len(lines) == 1 and needle in lines[0], (command.prog, argv, stderr)
            if target.parent == fixtures.read_only and os.geteuid() == 0:
                assert "read-only file system" in lines[0], lines[0]
            assert not target.exists()
            seen += 1
    assert seen == 4 * len(_out_commands(fixtures)) >= 4 * 12
    assert not list(fixtures.read_only.rglob("*.tmp"))
