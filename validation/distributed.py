"""Multi-rank measurement of a parallel layout beside accounting.parallel / accounting.communication.

`measure_layouts(cfg, layouts, batch_size=B)` spawns the layouts' world size of processes itself
(gloo on CPU; NCCL on CUDA, one GPU per rank), builds the real model on every rank, applies each
layout with model/parallelize.py and runs three training steps (forward + loss, backward, AdamW
step). The third is the measured one: DDP all-reduces one bucket of everything in the first step
and rebuilds its buckets before the second, so the third is the steady state. On every rank:
  - parameter, gradient and AdamW-state bytes, from the local tensors (a DTensor's local shard,
    FSDP2's padded shards), deduplicated by storage;
  - activation bytes: what the forward + loss save for backward (saved_tensors_hooks; DTensors by
    their local tensors; parameters, FSDP's gathered ones included, excluded), by storage;
  - FSDP: the gathered parameters still held after the forward (zero2 keeps them, zero3 not);
  - every collective issued in the step (validation.collectives, at dispatch): kind, phase, group
    size, bytes.
`measure(cfg, layout=..., batch_size=B)` returns a validation Measurement with one row per rank
and quantity and per collective kind, symbolic beside measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from accounting.communication import collectives
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.layout import RUNNABLE_STRATEGIES, Layout
from accounting.parallel import (
    activation_terms_per_rank, fsdp_groups, gathered_group_bytes, layout_values, rank_state_bytes,
    timeline_applies,
)
from accounting.rows import evaluate
from accounting.symbols import L, b
from validation.collectives import Call
from validation.reasons import UNEXPLAINED
from validation.rows import ComparisonRow, Measurement

STEPS = 3
MEASURED_STEP = STEPS  # 1-based: the steady-state step
Progress = Callable[[str, float], None]


@dataclass
class RankResult:
    """What one rank measured in the steady-state step of one layout (bytes; calls)."""

    rank: int
    dp_rank: int
    tp_rank: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    gathered_after_forward: int
    peak_bytes: int | None = None  # DDP on CPU: MemTracker's peak of a training_step (buckets in)
    calls: list[Call] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> "RankResult":
        return cls(**{**data, "calls": [Call(**c) for c in data["calls"]]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_world(layout: Layout, device: str) -> None:
    """UserError for a layout this machine cannot spawn."""
    if layout.strategy not in RUNNABLE_STRATEGIES:
        raise UserError(f"{layout.strategy} is accounted only; measure ddp, zero2 or zero3")
    if layout.world_size < 2:
        raise UserError("a distributed measurement needs a world size of at least 2")
    if device == "cuda":
        if not torch.cuda.is_available() or torch.cuda.device_count() < layout.world_size:
            raise UserError(f"world size {layout.world_size} needs as many CUDA devices; this "
                            f"machine has {torch.cuda.device_count()}")
    elif device != "cpu":
        raise UserError(f"device must be cpu or cuda for a distributed measurement, got {device!r}")


def measure_layouts(cfg: ModelConfig, layouts: list[Layout], *, batch_size: int,
                    context_length: int | None = None, device: str = "cpu",
                    progress: Progress | None = None, timeout_s: float = 600
                    ) -> dict[Layout, list[RankResult]]:
    """Spawn the layouts' (common) world size of ranks once and measure every layout in turn.
    `batch_size` is the global batch. Returns each layout's results, one per rank."""
    from model.parallelize import check_layout

    worlds = {lay.world_size for lay in layouts}
    if len(worlds) != 1:
        raise UserError("measure_layouts takes layouts of one world size")
    for lay in layouts:
        check_world(lay, device)
        check_layout(lay, cfg)
        layout_values(cfg, lay, batch_size, context_length)  # divisibility of heads, d_ff, batch
    world = worlds.pop()
    t = cfg.context_length if context_length is None else context_length
    report = progress or (lambda phase, done: None)
    with tempfile.TemporaryDirectory(prefix="lm-accounting-dist-") as tmp:
        spec = {"config": cfg.to_dict(), "layouts": [dataclasses.asdict(x) for x in layouts],
                "batch_size": batch_size, "context_length": t, "device": device,
                "port": _free_port(), "out": tmp, "world": world}
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        report(f"spawning {world} ranks", 0.0)
        _run_ranks(world, Path(tmp), len(layouts), report, timeout_s)
        data = [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(world)]
    report("done", 1.0)
    return {lay: [RankResult.from_dict(d[i]) for d in data] for i, lay in enumerate(layouts)}


def _run_ranks(world: int, tmp: Path, layouts: int, report: Progress, timeout_s: float) -> None:
    """Start `world` fresh interpreters (so no caller's __main__ is re-imported), wait for all;
    a rank that fails stops the others and raises with its last stderr lines."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in range(world):
        code = f"from validation.distributed import _worker; _worker({rank}, {str(tmp)!r})"
        err = open(tmp / f"stderr{rank}.txt", "w")
        procs.append((subprocess.Popen([sys.executable, "-c", code], env=env, stdout=err,
                                       stderr=subprocess.STDOUT), err))
    start, last = time.monotonic(), -1
    try:
        while any(p.poll() is None for p, _ in procs):
            failed = [r for r, (p, _) in enumerate(procs) if p.poll() not in (None, 0)]
            if failed or time.monotonic() - start > timeout_s:
                raise RuntimeError(_failure(tmp, failed, timeout_s))
            done = len(list(tmp.glob("progress-*")))
            if done != last:
                report(f"measuring {done}/{layouts} layouts", 0.1 + 0.8 * done / layouts)
                last = done
            time.sleep(0.2)
        failed = [r for r, (p, _) in enumerate(procs) if p.returncode != 0]
        if failed:
            raise RuntimeError(_failure(tmp, failed, timeout_s))
    finally:
        for p, err in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            err.close()


def _failure(tmp: Path, failed: list[int], timeout_s: float) -> str:
    if not failed:
        return f"distributed measurement did not finish in {timeout_s:.0f} s"
    tail = (tmp / f"stderr{failed[0]}.txt").read_text(errors="replace").strip().splitlines()[-15:]
    return f"rank {failed[0]} failed:\n" + "\n".join(tail)


def _worker(rank: int, folder: str) -> None:
    """One spawned rank: join the group, measure every layout, write rank{r}.json."""
    import torch.distributed as dist

    spec = json.loads(Path(folder, "spec.json").read_text())
    world = spec["world"]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cuda = spec["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    cfg = ModelConfig.from_dict(spec["config"])
    results = []
    for i, raw in enumerate(spec["layouts"]):
        results.append(dataclasses.asdict(_measure_one(cfg, Layout(**raw), spec, device)))
        if rank == 0:
            Path(spec["out"], f"progress-{i}").touch()
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(results))
    dist.barrier()  # leave together (a gloo rank tearing down first can abort its peer)
    dist.destroy_process_group()


def _measure_one(cfg: ModelConfig, layout: Layout, spec: dict, device: torch.device) -> RankResult:
    from model.loss import cross_entropy
    from model.optim import AdamW
    from model.parallelize import init_mesh, parallelize
    from model.transformer import TransformerLM
    from validation.collectives import CollectiveCounter

    torch.manual_seed(0)
    model = TransformerLM(cfg, device=device)
    mesh = init_mesh(layout, device.type)
    wrapped = parallelize(model, layout, mesh, device)
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    dp_rank, tp_rank = mesh["dp"].get_local_rank(), mesh["tp"].get_local_rank()
    x, y = _batch(cfg, spec["batch_size"], spec["context_length"], layout, dp_rank, device)
    losses, counts = [], {}
    for step in range(1, STEPS + 1):
        measured = step == MEASURED_STEP
        counter = CollectiveCounter()
        with counter if measured else _nothing():
            with _saved_bytes(model) if measured else _nothing() as saved:
                loss = cross_entropy(wrapped(x), y)
            if measured:
                counts["activation_bytes"] = saved.total
                fsdp = layout.strategy in ("zero2", "zero3")
                counts["gathered_after_forward"] = _storage_bytes(
                    p for p in model.parameters() if _gathered(p)) if fsdp else 0
            counter.phase = "backward"
            loss.backward()
            if measured:
                counts["gradient_bytes"] = _storage_bytes(p.grad for p in model.parameters()
                                                          if p.grad is not None)
            counter.phase = "step"
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if measured:
            calls = counter.calls
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    if timeline_applies(layout) and device.type == "cpu":  # after the bucket rebuild (step 2)
        from validation.memtrack import measure_ddp_timeline

        counts["peak_bytes"] = measure_ddp_timeline(wrapped, model, optimizer, x, y).peak
    return RankResult(torch.distributed.get_rank(), dp_rank, tp_rank,
                      parameter_bytes=_storage_bytes(model.parameters()),
                      optimizer_bytes=_storage_bytes(state), calls=calls, losses=losses, **counts)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _batch(cfg, batch_size: int, t: int, layout: Layout, dp_rank: int, device):
    """This data-parallel rank's slice of one fixed global batch (B, T) of ids and targets."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (2, batch_size, t), generator=g)
    per = batch_size // layout.data_parallel
    part = ids[:, dp_rank * per:(dp_rank + 1) * per].clone()  # separate (b, T) tensors
    return part[0].contiguous().to(device), part[1].contiguous().to(device)


def _is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _gathered(p: torch.Tensor) -> bool:
    """A parameter FSDP holds unsharded: a plain tensor, or a DTensor on no "dp" mesh dimension
    (the TP shard FSDP gathered)."""
    return not _is_dtensor(p) or "dp" not in (p.device_mesh.mesh_dim_names or ())


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if _is_dtensor(t) else t


def _storage_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    with torch.no_grad():
        for t in tensors:
            loc = _local(t)
            seen.setdefault(loc.untyped_storage()._cdata, loc.untyped_storage().nbytes())
    return sum(seen.values())


class _saved_bytes:
    """Bytes autograd saves while active (DTensors by their local tensors), by storage, with every
    parameter the model holds at that moment (FSDP's gathered ones too) excluded."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.total, self._seen = model, 0, set()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            loc = _local(t)
            key = loc.untyped_storage()._cdata
            params = {_local(p).untyped_storage()._cdata for p in self.model.parameters()}
            if key not in params and key not in self._seen:
                self._seen.add(key)
                self.total += loc.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


# ---- beside the accounting ----------------------------------------------------------------------
def comparison_rows(cfg: ModelConfig, layout: Layout, results: list[RankResult], batch_size: int,
                    context_length: int | None = None) -> list[ComparisonRow]:
    """Per rank: parameters, gradients, AdamW state, activations (and FSDP's gathered parameters
    after the forward); per collective kind, phase and size: calls in the step, and bytes per kind."""
    subs = layout_values(cfg, layout, batch_size, context_length)
    activations = evaluate(sum(f for _, f, _ in activation_terms_per_rank(cfg)), subs)
    peak = None
    if timeline_applies(layout):
        from accounting.timeline import timeline_peak_bytes

        math_sdpa = cfg.attention == "sdpa" and cfg.dropout > 0  # torch's CPU kernel for dropout
        peak = timeline_peak_bytes(cfg, subs[b], context_length, gradient_buckets=True,
                                   sdpa_backend="math" if math_sdpa else "fused")
    groups = fsdp_groups(cfg)
    gathered = {"zero2": evaluate(L * gathered_group_bytes(groups["block"])
                                  + gathered_group_bytes(groups["root"]), subs), "zero3": 0}
    conv = "local shards, by storage (accounting.parallel)"
    rows = []
    for r in results:
        who = f"rank {r.rank} (dp {r.dp_rank}, tp {r.tp_rank})"
        state = rank_state_bytes(cfg, layout, r.dp_rank)
        pairs = [("parameters", state["parameters"], r.parameter_bytes),
                 ("gradients", state["gradients"], r.gradient_bytes),
                 ("optimizer state", state["optimizer_state"], r.optimizer_bytes),
                 ("activations", activations, r.activation_bytes)]
        if layout.strategy in gathered:
            pairs.append(("gathered parameters after the forward", gathered[layout.strategy],
                          r.gathered_after_forward))
        rows += [_row(f"per-rank {q} bytes", who, "bytes", s, m, conv) for q, s, m in pairs]
        if r.peak_bytes is not None:
            rows.append(_row("per-rank peak bytes (training_step, clip 1.0)", who, "bytes", peak,
                             r.peak_bytes, "the step's memory timeline with DDP's gradient buckets "
                             "held (gradient_buckets=True) vs MemTracker, the buckets tracked"))
    return rows + _collective_rows(cfg, layout, results, batch_size, context_length)


def _row(quantity, component, unit, symbolic, measured, convention) -> ComparisonRow:
    reason = "" if symbolic == measured else UNEXPLAINED
    return ComparisonRow(quantity, component, unit, symbolic, measured, convention, reason)


def _collective_rows(cfg, layout, results, batch_size, context_length) -> list[ComparisonRow]:
    predicted: Counter = Counter()
    for c in collectives(cfg, layout, batch_size, context_length):
        predicted[(c.collective, c.phase, c.ranks, c.bytes)] += c.count
    measured = Counter((c.collective, c.phase, c.ranks, c.bytes) for c in results[0].calls)
    conv = "S = the buffer handed to the collective; counted at dispatch (validation.collectives)"
    rows = []
    for key in sorted(set(predicted) | set(measured), key=lambda k: (k[0], k[1], -k[3])):
        kind, phase, ranks, nbytes = key
        rows.append(_row(f"{kind} calls ({phase})", f"{nbytes:,} B over {ranks} ranks", "calls",
                         predicted.get(key), measured.get(key, 0), conv))
    for kind in sorted({k[0] for k in set(predicted) | set(measured)}):
        rows.append(_row("collective bytes per step", kind, "bytes",
                         sum(k[3] * n for k, n in predicted.items() if k[0] == kind),
                         sum(k[3] * n for k, n in measured.items() if k[0] == kind), conv))
    same = all(Counter((c.collective, c.phase, c.ranks, c.bytes) for c in r.calls) == measured
               for r in results)
    rows.append(_row("ranks issuing rank 0's collectives", "all ranks", "ranks", len(results),
                     len(results) if same else sum(
                         Counter((c.collective, c.phase, c.ranks, c.bytes) for c in r.calls)
                         == measured for r in results), conv))
    return rows


def measure(cfg: ModelConfig, *, layout: Layout, batch_size: int | None = None,
            context_length: int | None = None, device: str = "cpu",
            progress: Progress | None = None) -> Measurement:
    """One layout measured on its world size of spawned ranks, as a validation Measurement.
    `batch_size` is the global batch (default: one sequence per data-parallel rank)."""
    from validation.timing import hardware

    batch = layout.data_parallel if batch_size is None else batch_size
    t = cfg.context_length if context_length is None else context_length
    results = measure_layouts(cfg, [layout], batch_size=batch, context_length=t, device=device,
                              progress=progress)[layout]
    rows = comparison_rows(cfg, layout, results, batch, t)
    settings = {"batch_size": batch, "context_length": t, "dtype": "float32", "steps": STEPS,
                "device": device, "layout": layout.describe(), "world_size": layout.world_size,
                "parallel": layout.strategy, "tensor_parallel": layout.tensor_parallel,
                "per_rank_batch": batch // layout.data_parallel,
                "measured_step": MEASURED_STEP, "backend": "nccl" if device == "cuda" else "gloo"}
    notes = [f"step {MEASURED_STEP} of {STEPS} measured (DDP rebuilds its buckets after step 1)",
             "zero3's gathered parameters at the start of the backward and the unsharded "
             "gradients are modeled, not measured"]
    unexplained = [f"{r.quantity} / {r.component}" for r in rows if r.reason == UNEXPLAINED]
    if unexplained:
        notes.append("unexplained differences: " + ", ".join(unexplained))
    return Measurement(rows, hardware(device), dataclasses.asdict(cfg), settings, notes)
