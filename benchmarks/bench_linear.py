"""How `model.layers.Linear.forward` is written vs torch's nn.Linear, on the step where it matters:
tinystories (T=128, B=4), sdpa attention, fused AdamW, bf16 autocast, torch.compile, on CPU.

`python benchmarks/bench_linear.py [--steps 20] [--rounds 3] [--update-results]`. The training step
is bench_training.py's (as model.trainer runs it: the model and the loss compiled separately,
forward under autocast, backward, gradient clipping at 1.0, AdamW; 4 fixed random batches in turn).
Each row runs in a fresh interpreter (a patched `Linear` and compile caches do not leak), after 3
warm-up steps; the rows run one after another, `--rounds` times over in rotated order (ABC BCA),
after one untimed process, and each row's timed steps are pooled, so load from other jobs on a
shared machine and the position in a round fall on every row alike.
All our forms compute y = x W^T with the same values; only the graph torch.compile sees differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402  (the forms below must name it directly: dynamo breaks the graph at __import__)

from bench_common import replace_section  # noqa: E402

SECTION = "## Writing `Linear` for bf16 + compile (`benchmarks/bench_linear.py`)"
OURS = "ours: W cast to bf16, then x @ W.T (model.layers.Linear)"
FORMS = {  # name -> Linear.forward (None: the project's own, unpatched)
    OURS: None,
    "x @ W.T, autocast casts the view W.T (ours before 2026-11-24)": lambda self, x: x @ self.weight.T,
    "einsum('...i,oi->...o')": lambda self, x: torch.einsum("...i,oi->...o", x, self.weight),
    "torch.ops.aten.linear (= F.linear)": lambda self, x: torch.ops.aten.linear(x, self.weight),
}
BASELINE = "torch modules (nn.Linear, nn.RMSNorm, ...) + torch.optim.AdamW(fused)"


def _run(name: str, steps: int) -> dict:
    import time

    import model.layers as layers
    from bench_training import Variant, _batches, _model_config, _stepper

    if name == BASELINE:
        variant = Variant(name, "torch", optimizer="fused", dtype="bfloat16", compile=True)
    else:
        if FORMS[name] is not None:
            layers.Linear.forward = FORMS[name]
        variant = Variant(name, attention="sdpa", optimizer="fused", dtype="bfloat16", compile=True)
    device = torch.device("cpu")
    cfg = _model_config({"preset": "tinystories"}, 128)
    _, step = _stepper(variant, cfg, device)
    batches = _batches(cfg, 4, 128, device)
    times, loss = [], None
    for i in range(3 + steps):
        t0 = time.perf_counter()
        loss = step(batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
    return {"times": times[3:], "loss": loss, "load": os.getloadavg()[0]}


def measure(steps: int, rounds: int) -> str:
    from tqdm import tqdm

    names = [*FORMS, BASELINE]
    rows = {name: {"times": [], "loads": []} for name in names}
    # An untimed first process (the first row after idle ran ~5% slow), then each round in a
    # rotated order, so no row always runs first.
    order = [(None, BASELINE)] + [(r, n) for r in range(rounds) for n in names[r % len(names):] + names[:r % len(names)]]
    for r, name in tqdm(order, desc="rows"):
        out = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(steps)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        if r is None:
            continue
        rows[name]["times"] += res["times"]
        rows[name]["loads"].append(res["load"])
        rows[name]["loss"] = res["loss"]
    base = statistics.median(rows[BASELINE]["times"])
    lines = [SECTION, "",
             f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
             f"tinystories T=128 B=4, sdpa, fused AdamW, bf16 autocast, torch.compile; {rounds} rounds x "
             f"{steps} timed steps per row.", "",
             "| Linear written as | median step s | min step s | speed vs torch modules | load | last loss |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        med = statistics.median(r["times"])
        lines.append(f"| {name} | {med:.4f} | {min(r['times']):.4f} | {base / med:.2f}x | "
                     f"{min(r['loads']):.2f}-{max(r['loads']):.2f} | {r['loss']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--update-results", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run(args.one, args.steps)))
        return
    section = measure(args.steps, args.rounds)
    print(section)
    if args.update_results:
        replace_section(SECTION, section)


if __name__ == "__main__":
    main()
