"""The one exception type for bad input: a flag, a file, a config value the user gave.

`UserError` is a ValueError (library callers may catch either). The CLIs
(accounting.cli_support.run_cli) print it as one line and exit 2; any other exception is a bug
and keeps its traceback. Raise it where input enters (config validation, file readers, CLI
checks), never for an internal invariant.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: reported as one line (`prog: error: message`), exit code 2."""


class MissingFileError(UserError, FileNotFoundError):
    """An input file or folder that is not there (also a FileNotFoundError)."""


class NotAFileError(UserError, IsADirectoryError):
    """A folder given where a file is needed (also an IsADirectoryError)."""
