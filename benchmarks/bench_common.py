"""Shared by the benchmark scripts: wall time of a command, and rewriting one RESULTS.md section."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tqdm import tqdm

from accounting.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"


def wall_times(cmd: list[str], runs: int, label: str) -> list[float]:
    """Seconds of each of `runs` runs of `cmd` in a fresh process (from the repo root, output dropped)."""
    times = []
    for _ in tqdm(range(runs), desc=label, leave=False):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def replace_section(heading: str, section: str, path: Path = RESULTS_MD) -> None:
    """Swap the section that starts at `heading` (up to the next `## `) for `section`."""
    doc = path.read_text()
    start = doc.index(heading)
    end = doc.find("\n## ", start + len(heading))
    end = len(doc) if end < 0 else end + 1
    atomic_write_text(path, doc[:start] + section.rstrip("\n") + "\n\n" + doc[end:])
