"""Committed measurements (validation/results/*.json): read them back, e.g. to show GPU results to
users without a GPU. Imports no torch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from accounting.errors import MissingFileError, UserError
from validation.rows import Measurement

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def load_results(directory: str | os.PathLike[str] | None = None) -> list[Measurement]:
    """Every *.json measurement in `directory` (default: validation/results), sorted by file name.
    A file that is not a valid measurement raises ValueError naming it."""
    folder = Path(directory) if directory is not None else RESULTS_DIR
    if not folder.is_dir():
        raise MissingFileError(f"no results directory at {folder}")
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Measurement.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, AttributeError) as exc:
            raise UserError(f"{path.name}: not a validation measurement ({exc})") from None
    return out
