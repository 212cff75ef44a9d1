"""Which files on the server the Train view may read (no Streamlit): none, unless the operator
names a data directory.

The environment variable LM_ACCOUNTING_DATA_DIR names it (set it where `streamlit run` starts).
Unset, the "local text file" source is off. Set, a path is accepted only if it names a regular
file inside that directory: relative to it (or absolute), without any ".." component, and its
resolved form (every symlink followed) inside the resolved directory, so a symlink pointing out
is refused too. Size and text checks are the upload's (explorer.corpus.read_text).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

DATA_DIR_ENV = "LM_ACCOUNTING_DATA_DIR"


def data_dir() -> Path | None:
    """The operator's data directory (resolved), or None when the local-file source is off.
    ValueError when the variable names no directory."""
    text = os.environ.get(DATA_DIR_ENV, "").strip()
    if not text:
        return None
    folder = Path(text).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{DATA_DIR_ENV}={text} is not a directory")
    return folder


def resolve_inside(text: str, folder: Path) -> Path:
    """The file `text` names inside `folder` (resolved), or ValueError saying why not."""
    text = text.strip()
    if not text:
        raise ValueError("give a file name inside the data directory")
    if "\x00" in text:
        raise ValueError("the path holds a NUL character")
    if ".." in PurePath(text).parts:
        raise ValueError(f"{text}: '..' is not allowed; give a path inside the data directory")
    root = folder.resolve()
    path = (root / text).resolve()  # an absolute `text` replaces root here; checked just below
    if not path.is_relative_to(root):
        raise ValueError(f"{text} is outside the data directory {root}")
    if not path.is_file():
        raise ValueError(f"{text} is not a file in the data directory")
    return path
