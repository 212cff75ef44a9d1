"""Command-line plumbing shared by every CLI of the project.

Bad input gets one line on stderr (`prog: error: message`) and exit code 2, never a traceback.
Raise `UsageError` (or ValueError / FileNotFoundError from the library) and let `run_cli` report it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn


class UsageError(Exception):
    """A user mistake (bad flag value, missing file): reported in one line, exit code 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            prog: str = "") -> int:
    """Run `main(argv)`; user errors become a one-line message and exit code 2 (Ctrl-C: 130)."""
    try:
        return int(main(argv) or 0)
    except (UsageError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError,
            UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"{prog + ': ' if prog else ''}error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog + ': ' if prog else ''}interrupted\n")
        return 130
