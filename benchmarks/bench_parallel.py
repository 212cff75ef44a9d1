"""Parallel layouts on 4 processes (gloo, CPU): predicted (accounting.parallel,
accounting.communication) beside measured (validation.distributed: local shards, saved tensors,
collectives counted at dispatch; DDP's peak: the bucket timeline vs MemTracker over a
training_step), side by side, for DDP, ZeRO-2, ZeRO-3, TP 4 and the 2-D layouts
ZeRO-2 / ZeRO-3 x TP 2, on two configs: one big enough for two DDP buckets, one grouped-query /
sdpa / tied-embedding variant with a vocabulary of 37 (FSDP pads every shard of the embedding).

    python benchmarks/bench_parallel.py [--world-size 4] [--update-results]

Then training on the same ranks beside one process on the global batch: two AdamW steps (lr 1e-2)
under each layout, in float32 and in float64, largest parameter difference (config A).

--update-results replaces the "## Parallel layouts" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import replace_section  # noqa: E402

from accounting.communication import collectives  # noqa: E402
from accounting.config import ModelConfig  # noqa: E402
from accounting.format import fmt_int  # noqa: E402
from accounting.layout import Layout  # noqa: E402
from accounting.parallel import activation_terms_per_rank, layout_values, rank_state_bytes  # noqa: E402
from accounting.rows import evaluate  # noqa: E402

SECTION = "## Parallel layouts, predicted vs measured (`benchmarks/bench_parallel.py`)"
CONFIGS = {
    "A: V=1000 T=32 d=128 L=2 h=4 d_ff=344": ModelConfig(
        vocab_size=1000, context_length=32, d_model=128, num_layers=2, num_heads=4, d_ff=344),
    "B: V=37 T=16 d=64 L=2 h=8 h_kv=4 d_ff=96 sdpa tied": ModelConfig(
        vocab_size=37, context_length=16, d_model=64, num_layers=2, num_heads=8, num_kv_heads=4,
        d_ff=96, attention="sdpa", tie_embeddings=True),
}
BATCH = 4  # global


def _layouts(world: int) -> list[Layout]:
    half = world // 2
    return [Layout(world, "ddp"), Layout(world, "zero2"), Layout(world, "zero3"),
            Layout(world, "ddp", world), Layout(world, "zero2", half), Layout(world, "zero3", half)]


def _calls(items) -> str:
    return ", ".join(f"{kind} {phase} {n}x{fmt_int(b)}" for (kind, phase, b), n in sorted(items.items()))


def _rows(cfg: ModelConfig, layout: Layout, results) -> list[str]:
    from validation.distributed import comparison_rows

    subs = layout_values(cfg, layout, BATCH)
    rank0 = next(r for r in results if r.rank == 0)
    state = rank_state_bytes(cfg, layout, 0)
    act = evaluate(sum(f for _, f, _ in activation_terms_per_rank(cfg)), subs)
    predicted, measured = Counter(), Counter((c.collective, c.phase, c.bytes) for c in rank0.calls)
    for c in collectives(cfg, layout, BATCH):
        predicted[(c.collective, c.phase, c.bytes)] += c.count
    rows = comparison_rows(cfg, layout, results, BATCH)
    unequal = sum(not r.equal for r in rows)
    pairs = [(state["parameters"], rank0.parameter_bytes), (state["gradients"], rank0.gradient_bytes),
             (state["optimizer_state"], rank0.optimizer_bytes), (act, rank0.activation_bytes)]
    cells = [f"{fmt_int(p)} / {fmt_int(m)}" for p, m in pairs]
    peak = next((r for r in rows if r.quantity.startswith("per-rank peak") and r.component.startswith("rank 0")),
                None)  # DDP: the bucket timeline's peak vs MemTracker
    cells.append("—" if peak is None else f"{fmt_int(peak.symbolic)} / {fmt_int(peak.measured)}")
    return [f"| {layout.describe()} | {' | '.join(cells)} | {_calls(predicted)} | "
            f"{'same' if predicted == measured else _calls(measured)} | "
            f"{'all equal' if not unequal else f'{unequal} differ'} ({len(rows)} rows, {len(results)} ranks) |"]


def run(world: int) -> str:
    from validation.distributed import measure_layouts

    load = os.getloadavg()[0]
    lines, unequal = [], 0
    for name, cfg in CONFIGS.items():
        layouts = [lay for lay in _layouts(world) if cfg.num_heads % lay.tensor_parallel == 0]
        t0 = time.perf_counter()
        results = measure_layouts(cfg, layouts, batch_size=BATCH)
        seconds = time.perf_counter() - t0
        lines += [f"\n**Config {name}**, global batch {BATCH} ({seconds:.0f} s for {len(layouts)} "
                  f"layouts, one spawn of {world} ranks)\n",
                  "| layout | parameters | gradients | AdamW state | activations | peak (DDP: timeline) | "
                  "collectives predicted (kind phase calls x bytes) | measured | every row, every rank |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for layout in layouts:
            lines += _rows(cfg, layout, results[layout])
            unequal += sum("differ" in line for line in lines[-1:])
    lines.append(f"\nEvery measured per-rank byte and collective equal to the prediction: "
                 f"{'yes' if not unequal else f'no ({unequal} layouts differ)'}.")
    today = datetime.date.today().isoformat()
    head = (f"`python benchmarks/bench_parallel.py --world-size {world}` ({today}; "
            f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, Python "
            f"{platform.python_version()}, torch {__import__('torch').__version__}, gloo; load "
            f"average at start {load:.2f}). Per-rank bytes are rank 0's, predicted / measured; "
            f"every other rank is compared too (last column). Collectives: the steady-state step "
            f"(the third), rank 0's calls; every rank issued the same.")
    return "\n".join([SECTION, "", head, *lines]) + "\n"


EQUIVALENCE_STEPS = 2


def _train(model, call, xs) -> dict:
    """AdamW steps on batches `xs` through `call`; the full parameters afterwards."""
    from model.loss import cross_entropy
    from model.optim import AdamW

    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for x in xs:
        cross_entropy(call(x), x).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for n, p in model.named_parameters()}


def _batches(cfg):
    import torch

    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, cfg.vocab_size, (BATCH, cfg.context_length), generator=g)
            for _ in range(EQUIVALENCE_STEPS)]


def _worker(rank: int, world: int, port: int, dtype_name: str, out: str) -> None:
    """One rank: every layout trained EQUIVALENCE_STEPS steps; rank 0 saves the full parameters."""
    import torch
    import torch.distributed as dist

    from model.parallelize import init_mesh, parallelize
    from model.transformer import TransformerLM

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg, dtype = next(iter(CONFIGS.values())), getattr(torch, dtype_name)
    results = {}
    for layout in _layouts(world):
        torch.manual_seed(0)
        model = TransformerLM(cfg, dtype=dtype)
        mesh = init_mesh(layout, "cpu")
        call = parallelize(model, layout, mesh, torch.device("cpu"))
        per, r = BATCH // layout.data_parallel, mesh["dp"].get_local_rank()
        results[layout.describe()] = _train(model, call, [x[r * per:(r + 1) * per]
                                                          for x in _batches(cfg)])
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


def equivalence(world: int) -> list[str]:
    import socket
    import subprocess
    import tempfile

    import torch

    from model.transformer import TransformerLM

    cfg = next(iter(CONFIGS.values()))
    lines = [f"\n**Training vs one process on the global batch** (config A, {EQUIVALENCE_STEPS} AdamW "
             f"steps at lr 1e-2, weight decay 0.1; largest |parameter difference|)\n",
             "| layout | float32 | float64 |", "|---|---|---|"]
    diffs: dict[str, list[str]] = {}
    for dtype_name in ("float32", "float64"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "params.pt")
            procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(r), str(port),
                                       dtype_name, out, "--world-size", str(world)],
                                      env={**os.environ, "OMP_NUM_THREADS": "1"},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for r in range(world)]
            if any(p.wait() != 0 for p in procs):
                raise RuntimeError(f"a {dtype_name} training rank failed")
            got = torch.load(out)
        torch.manual_seed(0)
        ref = TransformerLM(cfg, dtype=getattr(torch, dtype_name))
        want = _train(ref, ref, _batches(cfg))
        for name, params in got.items():
            diff = max(float((params[k] - want[k]).abs().max()) for k in want)
            diffs.setdefault(name, []).append(f"{diff:.1e}")
    worst32 = max(float(d[0]) for d in diffs.values())
    worst64 = max(float(d[1]) for d in diffs.values())
    return lines + [f"| {name} | {' | '.join(d)} |" for name, d in diffs.items()] + [
        f"\nReading: the float32 differences (up to {worst32:.1e}) are rounding, not a wrong "
        f"update: in float64 the same runs agree to {worst64:.1e}. The layouts sum gradients and "
        f"(TP) partial products in another order than one process; AdamW's first steps divide by "
        f"sqrt(v) + eps, which turns last-bit differences of near-zero gradients into differences "
        f"of up to lr."]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, default=4)
    p.add_argument("--update-results", action="store_true")
    p.add_argument("--worker", nargs=4, metavar=("RANK", "PORT", "DTYPE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        rank, port, dtype_name, out = args.worker
        _worker(int(rank), args.world_size, int(port), dtype_name, out)
        return
    text = run(args.world_size) + "\n".join(equivalence(args.world_size)) + "\n"
    print(text)
    if args.update_results:
        doc = (ROOT / "benchmarks" / "RESULTS.md").read_text()
        if SECTION not in doc:
            (ROOT / "benchmarks" / "RESULTS.md").write_text(doc.rstrip("\n") + "\n\n" + SECTION + "\n")
        replace_section(SECTION, text)


if __name__ == "__main__":
    main()
