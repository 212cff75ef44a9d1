"""Speed of the validation on the meta device: `python -m validation.measure --device meta --preset
cs336-gpt2-xl` (T=1024, B=1: forward + backward + one AdamW step, every instrument; target < 20 s on the
2-core machine) beside references in the same run: an interpreter that only imports torch, and
in-process the bare instruments' floor (build GPT-2 XL on meta, forward + loss + backward under a
plain FlopCounterMode, no attribution, no saved-tensor hooks, no AdamW).

    python benchmarks/bench_validation.py [--runs 3] [--update-results]

--update-results replaces the "## Validation on the meta device" section of benchmarks/RESULTS.md
(that section only, written atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import replace_section, wall_times  # noqa: E402

SECTION = "## Validation on the meta device (`benchmarks/bench_validation.py`)"
TARGET_S = 20.0


def _bare_flop_counter(cfg) -> float:
    """Reference: build on meta, forward + loss + backward under FlopCounterMode only."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model.loss import cross_entropy
    from model.transformer import TransformerLM

    t0 = time.perf_counter()
    model = TransformerLM(cfg, device="meta")
    x = torch.randint(0, cfg.vocab_size, (1, cfg.context_length)).to("meta")
    with FlopCounterMode(display=False):
        cross_entropy(model(x), x).backward()
    return time.perf_counter() - t0


def _in_process(runs: int) -> dict[str, list[float]]:
    import torch

    from accounting import get_preset
    from validation.core import measure

    torch.set_num_threads(1)
    cfg = get_preset("cs336-gpt2-xl")
    out: dict[str, list] = {"ours": [], "bare": []}
    for _ in tqdm(range(runs), desc="in-process", leave=False):
        t0 = time.perf_counter()
        m = measure(cfg, device="meta")
        out["ours"].append(time.perf_counter() - t0)
        out["bare"].append(_bare_flop_counter(cfg))
    compared = [r for r in m.rows if r.symbolic is not None and r.measured is not None]
    out["rows"] = [len(compared), sum(r.equal for r in compared),
                   sorted({r.quantity for r in compared if not r.equal})]
    return out


def _fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s ({min(times):.2f} s)"


def measure_section(runs: int) -> str:
    load_before = os.getloadavg()[0]
    cli = wall_times([sys.executable, "-m", "validation.measure", "--device", "meta", "--preset", "cs336-gpt2-xl",
                 "--no-progress", "--format", "json"], runs, "cli")
    floor = wall_times([sys.executable, "-c", "import torch"], runs, "import torch")
    inproc = _in_process(runs)
    load_after = os.getloadavg()[0]
    ok = "meets" if statistics.median(cli) < TARGET_S else "MISSES"
    import torch

    from validation.timing import hardware

    n_rows, n_equal, differing = inproc["rows"]
    return "\n".join([
        SECTION, "",
        f"{hardware('cpu')['name']}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, torch {torch.__version__}; load average {load_before:.2f} before, "
        f"{load_after:.2f} after; {runs} runs each, median (min); {time.strftime('%Y-%m-%d')}.",
        "GPT-2 XL (2.13B parameters), B=1, T=1024, float32, naive attention.",
        "",
        "| what | wall time |", "|---|---|",
        f"| `python -m validation.measure --device meta --preset cs336-gpt2-xl` (fwd + bwd + AdamW, every "
        f"instrument, JSON out) | {_fmt(cli)}: {ok} the {TARGET_S:.0f} s target |",
        f"| floor: `python -c 'import torch'` | {_fmt(floor)} |",
        f"| in-process `validation.measure(cs336-gpt2-xl, device='meta')` | {_fmt(inproc['ours'])} |",
        f"| in-process reference: build on meta + forward/backward under a bare FlopCounterMode | "
        f"{_fmt(inproc['bare'])} |",
        "",
        "On the meta device tensors have shapes and no data, so the cost is Python per aten call: the "
        "attribution mode (a TorchFunctionMode labelling autograd nodes), the dispatch counter, the "
        "saved-tensor hooks and FlopCounterMode each run once per op, plus the accounting's sympy "
        "evaluation for the symbolic side.",
        f"Of the {n_rows} rows with both a symbolic and a measured value, {n_equal} are equal integer for "
        f"integer; the others: {', '.join(differing) or 'none'} (each with its named reason).",
        "",
        "No GPU was lent to the task that wrote this: the CUDA measurements (allocator peak vs the "
        "predicted peak after the named residuals, MFU) are still to be taken, with "
        "`python -m validation.measure --device cuda --preset cs336-gpt2-small --batch-size 8 --format json "
        "--out validation/results/<name>.json` (and bfloat16, tinystories, cs336-gpt2-xl at B=1). Committed so "
        "far (`validation/results/`): meta GPT-2 XL (float32 naive; bfloat16 sdpa), meta GPT-2 small B=8, "
        "CPU TinyStories B=2 T=256 (naive and sdpa, with step times under the load recorded in each file).",
        "",
    ])


def update_results(section: str) -> None:
    replace_section(SECTION, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--update-results", action="store_true")
    args = parser.parse_args()
    section = measure_section(args.runs)
    print(section)
    if args.update_results:
        update_results(section)


if __name__ == "__main__":
    main()
