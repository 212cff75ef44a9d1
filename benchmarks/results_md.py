"""Replace one `## ...` section of benchmarks/RESULTS.md in place (atomically), keeping the others."""

from __future__ import annotations

from pathlib import Path

from accounting.atomic import atomic_write_text

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(heading: str, section: str, path: Path = RESULTS_MD) -> None:
    """Swap the section that starts at `heading` (up to the next `## `) for `section`."""
    doc = path.read_text()
    start = doc.index(heading)
    end = doc.find("\n## ", start + len(heading))
    end = len(doc) if end < 0 else end + 1
    atomic_write_text(path, doc[:start] + section.rstrip("\n") + "\n\n" + doc[end:])
