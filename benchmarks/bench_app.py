"""How fast the explorer's accounting views answer a widget change (the issue's bar: 200 ms).

For each accounting view, an AppTest session at CS336's GPT-2 XL changes the batch size 10 times and
times each full script rerun (what the server does before the browser redraws; the browser's own
rendering is not included). "new settings": a batch never seen (a fresh report, the memory timeline
and sympy evaluated); "seen settings": a batch seen before (the cached report). Median and max in
milliseconds. The Memory view draws the timeline's peak at every batch of its chart and the step's
timeline; the Inference view its own report per batch of the throughput chart; the Parallelism
view (its defaults: 8 GPUs, ZeRO-3) every strategy and N = 1 to 1,024 data-parallel ranks, at
global batches that 8 divides.

    python benchmarks/bench_app.py
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"
VIEWS = ("overview", "params_flops", "memory", "inference", "parallelism", "formulas", "downloads")
TARGET_MS = 200


def _time_view(view: str, batches: list[int]) -> list[float]:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"view": view, "preset": "cs336-gpt2-xl"})
    at.run()
    times = []
    for b in batches:
        at.number_input(key="w_batch_size").set_value(b)
        start = time.perf_counter()
        at.run()
        times.append(1000 * (time.perf_counter() - start))
        assert not at.exception, at.exception
    return times


def main() -> None:
    load = os.getloadavg()[0]
    print(f"load average (1 min) at start: {load:.2f}; {os.cpu_count()} CPUs\n")
    print("| view | new settings: median ms | max ms | seen settings: median ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for i, view in enumerate(VIEWS):
        fresh = list(range(100 + 20 * i, 110 + 20 * i))
        if view == "parallelism":  # a global batch the 8 data-parallel ranks divide
            fresh = [8 * b for b in fresh]
        new = _time_view(view, fresh)
        seen = _time_view(view, fresh[:5] * 2)[5:]
        print(f"| {view} | {statistics.median(new):.0f} | {max(new):.0f} | "
              f"{statistics.median(seen):.0f} | {max(seen):.0f} |")
    print(f"\ntarget (issue 19): a rerun under {TARGET_MS} ms")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
