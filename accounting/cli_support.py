"""Command-line plumbing shared by every CLI of the project.

Bad input gets one line on stderr (`prog: error: message`) and exit code 2, never a traceback:
raise `accounting.errors.UserError` (argparse's own errors go the same way). An OSError about a
path (a missing input file, a read-only output folder) is the user's environment, reported the
same way. Any other exception is a bug and keeps its traceback. `--debug` anywhere on the command
line re-raises user errors too, with their traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from accounting.errors import UserError

DEBUG_FLAG = "--debug"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage block) and exits 2; an empty value
    ('') is refused for every argument (no flag means "the default" by an empty string); every
    parser accepts `--debug` (tracebacks for user errors too)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of any error")

    def _get_values(self, action, arg_strings):
        if "" in arg_strings and action.nargs not in (argparse.PARSER, argparse.REMAINDER):
            self.error(f"argument {'/'.join(action.option_strings) or action.metavar or action.dest}: "
                       "empty value")
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _path_error(exc: OSError) -> str:
    """One line for an OSError about a path: "<reason>: <path>"."""
    reason = exc.strerror or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename is not None else reason


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            prog: str = "") -> int:
    """Run `main(argv)` and return its exit code: a UserError (or an OSError naming a path) becomes
    one line and 2, argparse's own exit its code, Ctrl-C 130; anything else propagates with its
    traceback."""
    debug = DEBUG_FLAG in (sys.argv[1:] if argv is None else argv)
    head = f"{prog}: " if prog else ""
    try:
        return int(main(argv) or 0)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, its line already printed)
        return exc.code if isinstance(exc.code, int) else 1
    except UserError as exc:
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"{head}error: {message}\n")
        return 2
    except OSError as exc:
        if debug or exc.filename is None:
            raise
        sys.stderr.write(f"{head}error: {_path_error(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{head}interrupted\n")
        return 130


def emit(text: str, out: str | None) -> None:
    """A CLI's result: written atomically to `out` (accounting.atomic), else to stdout."""
    if out:
        from accounting.atomic import atomic_write_text

        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)
