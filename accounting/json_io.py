"""Read a JSON file with one-line errors (the project's CLIs print them as `error: ...`, exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from accounting.errors import MissingFileError, UserError


def read_json_file(path: str | os.PathLike[str], what: str) -> Any:
    """The parsed JSON at `path`; FileNotFoundError / ValueError naming `what` and the file."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{p} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{p} is not UTF-8 text (byte {exc.start})") from None
