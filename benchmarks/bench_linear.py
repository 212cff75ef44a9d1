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

Then each row runs once more under torch.profiler with inductor's kernel profile, which gives per
step (mean of 5 after 4 warm-up) the milliseconds in aten::mm/bmm and in the compiled graphs' own
(elementwise/reduction) kernels, the part of those whose name says a permute (a transposed read or
write) was fused in, and the largest kernel: where the forms differ. `--profile`
runs only this part.
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
FORMS = {  # name -> Linear.forward (None: the project's own, unpatched)
    "ours: W cast to bf16, then x @ W.T (model.layers.Linear)": None,
    "x @ W.T, autocast casts the view W.T (ours before 2026-11-24)": lambda self, x: x @ self.weight.T,
    "einsum('...i,oi->...o')": lambda self, x: torch.einsum("...i,oi->...o", x, self.weight),
    "torch.ops.aten.linear (= F.linear)": lambda self, x: torch.ops.aten.linear(x, self.weight),
}
BASELINE = "torch modules (nn.Linear, nn.RMSNorm, ...) + torch.optim.AdamW(fused)"
PROFILED_STEPS = 5


def _stepper_for(name: str):
    """(step, batches) for one row, in this interpreter (patches `Linear` for our other forms)."""
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
    return step, _batches(cfg, 4, 128, device)


def _run(name: str, steps: int) -> dict:
    import time

    step, batches = _stepper_for(name)
    times, loss = [], None
    for i in range(3 + steps):
        t0 = time.perf_counter()
        loss = step(batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
    return {"times": times[3:], "loss": loss, "load": os.getloadavg()[0]}


def _profile(name: str) -> dict:
    """Per-step ms in aten::mm and in the compiled graphs' own kernels (inductor kernel profile)."""
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    inductor_config.cpp.enable_kernel_profile = True  # before the first compile: names each kernel
    step, batches = _stepper_for(name)
    for i in range(4):
        step(batches[i % len(batches)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(PROFILED_STEPS):
            step(batches[i % len(batches)])
    ms = {e.key: e.self_cpu_time_total / PROFILED_STEPS / 1e3 for e in prof.key_averages()}
    kernels = {k: v for k, v in ms.items() if k.startswith("graph_")}  # inductor's generated kernels
    top = max(kernels, key=kernels.get)
    permuted = sum(v for k, v in kernels.items() if "permute" in k)  # a transposed read/write fused in
    return {"mm_ms": ms.get("aten::mm", 0.0) + ms.get("aten::bmm", 0.0),
            "kernels_ms": sum(kernels.values()), "permute_ms": permuted,
            "top_kernel": top, "top_kernel_ms": kernels[top], "load": os.getloadavg()[0]}


def _child(mode: str, name: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, mode, name, "--steps", str(steps)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def profile_table(names: list[str]) -> str:
    from tqdm import tqdm

    lines = [f"Kernel profile ({PROFILED_STEPS} steps per row after 4 warm-up, ms per step):", "",
             "| Linear written as | aten::mm + bmm | compiled graphs' kernels | of which with a permute "
             "fused in | largest kernel | load |",
             "|---|---:|---:|---:|---|---:|"]
    for name in tqdm(names, desc="profile"):
        r = _child("--profile-one", name, 0)
        lines.append(f"| {name} | {r['mm_ms']:.1f} | {r['kernels_ms']:.1f} | {r['permute_ms']:.1f} | "
                     f"`{r['top_kernel'][:60]}` "
                     f"{r['top_kernel_ms']:.1f} | {r['load']:.2f} |")
    return "\n".join(lines) + "\n"


def measure(steps: int, rounds: int) -> str:
    from tqdm import tqdm

    names = [*FORMS, BASELINE]
    rows = {name: {"times": [], "loads": []} for name in names}
    # An untimed first process (the first row after idle ran ~5% slow), then each round in a
    # rotated order, so no row always runs first.
    rotated = [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]
    order = [(None, BASELINE)] + [(r, n) for r in range(rounds) for n in rotated[r]]
    for r, name in tqdm(order, desc="rows"):
        res = _child("--one", name, steps)
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


def main(argv=None) -> int:
    from accounting.cli_support import OneLineArgumentParser, UserError

    parser = OneLineArgumentParser(prog="bench_linear.py", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="only the kernel profile of each row (printed, no timing)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--profile-one", help=argparse.SUPPRESS)
    parser.add_argument("--update-results", action="store_true",
                        help="replace this benchmark's section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    for child in (args.one, args.profile_one):
        if child is not None and child not in (*FORMS, BASELINE):
            raise UserError(f"unknown row {child!r}")
    if args.one:
        print(json.dumps(_run(args.one, args.steps)))
        return 0
    if args.profile_one:
        print(json.dumps(_profile(args.profile_one)))
        return 0
    if args.steps < 1 or args.rounds < 1:
        raise UserError("--steps and --rounds must be >= 1")
    if args.profile:
        print(profile_table([*FORMS, BASELINE]))
        return 0
    section = measure(args.steps, args.rounds) + "\n" + profile_table([*FORMS, BASELINE])
    print(section)
    if args.update_results:
        replace_section(SECTION, section)
    return 0


if __name__ == "__main__":
    from accounting.cli_support import run_cli

    raise SystemExit(run_cli(main, prog="bench_linear.py"))
