"""How `model.layers.Linear.forward` is written vs torch's nn.Linear, on the step where it matters:
tinystories (T=128, B=4), sdpa attention, fused AdamW, bf16 autocast, torch.compile, on CPU.

`python benchmarks/bench_linear.py [--steps 10] [--update-results]`. Each row runs in a fresh
interpreter (compile caches do not leak between rows); rows run one after another, so a shared
machine's load can differ between them: the load average is printed with each row. Median and
minimum step time after 3 warm-up steps; the step is forward + loss + backward + optimizer.
Our forms all compute y = x W^T (same loss to the last digit); only the graph torch sees differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import replace_section  # noqa: E402

SECTION = "## Writing `Linear` for bf16 + compile (`benchmarks/bench_linear.py`)"
FORMS = {  # name -> Linear.forward (None: the project's own, unpatched)
    "ours: x @ W.T (model.layers.Linear)": None,
    "torch.matmul(x, W.t())": lambda self, x: __import__("torch").matmul(x, self.weight.t()),
    "einsum('...i,oi->...o')": lambda self, x: __import__("torch").einsum("...i,oi->...o", x, self.weight),
    "torch.ops.aten.linear (= F.linear)": lambda self, x: __import__("torch").ops.aten.linear(x, self.weight),
}
BASELINE = "torch modules (nn.Linear, nn.RMSNorm, ...) + torch.optim.AdamW(fused)"


def _run(name: str, steps: int) -> dict:
    import statistics
    import time

    import torch

    import model.layers as layers
    from accounting import get_preset
    from model import FastAdamW, TransformerLM, cross_entropy

    torch.manual_seed(0)
    cfg = get_preset("tinystories").replace(attention="sdpa", context_length=128)
    if name == BASELINE:
        from torch_baseline import TorchLM, torch_loss

        model, loss_fn = TorchLM(cfg), torch_loss
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    else:
        if FORMS[name] is not None:
            layers.Linear.forward = FORMS[name]
        model, loss_fn = TransformerLM.from_config(cfg), cross_entropy
        opt = FastAdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                        implementation="fused")
    step_loss = torch.compile(lambda x, y: loss_fn(model(x), y))
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, cfg.vocab_size, (4, 128), generator=gen) for _ in range(2))
    times = []
    for _ in range(3 + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = step_loss(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    timed = times[3:]
    return {"median_s": statistics.median(timed), "min_s": min(timed), "loss": loss.item(),
            "load": os.getloadavg()[0]}


def measure(steps: int) -> str:
    from tqdm import tqdm

    rows = {}
    for name in tqdm([*FORMS, BASELINE], desc="forms"):
        out = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(steps)],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        rows[name] = json.loads(out.strip().splitlines()[-1])
    base = rows[BASELINE]["median_s"]
    lines = [SECTION, "",
             f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
             f"tinystories T=128 B=4, sdpa, fused AdamW, bf16 autocast, torch.compile, {steps} timed steps.", "",
             "| Linear written as | median step s | min step s | speed vs torch modules | load | last loss |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_s']:.4f} | {r['min_s']:.4f} | {base / r['median_s']:.2f}x | "
                     f"{r['load']:.2f} | {r['loss']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--update-results", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run(args.one, args.steps)))
        return
    section = measure(args.steps)
    print(section)
    if args.update_results:
        replace_section(SECTION, section)


if __name__ == "__main__":
    main()
