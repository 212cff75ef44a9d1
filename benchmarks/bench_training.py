"""Training throughput and MFU: our reference path, each fast path and a torch-modules baseline.

    python benchmarks/bench_training.py [--device cpu|cuda] [--steps 10] [--warmup 3] [--compile]
                                        [--threads N] [--json PATH] [--update-results]

One run, the same shapes for every variant of a config. A training step: forward (bf16 autocast
where named), loss, backward, gradient clipping at 1.0, AdamW, on fixed random tokens, every
variant from the same seed. All variants of a config are timed in one freshly spawned interpreter
with their steps interleaved round-robin (so load from other jobs on a shared machine hits every
variant alike); each eager variant's peak memory is taken in its own fresh interpreter (2 steps).
Reported per variant:
  - step time: the median of the `--steps` timed steps (after `--warmup` steps; CUDA synchronized);
  - tokens/s = B * T / median step time;
  - peak memory: CPU: peak resident set during the variant (VmHWM) minus the RSS before the model
    was built (weights, gradients, optimizer state, activations, allocator slack); CUDA:
    torch.cuda.max_memory_allocated; not taken for compiled variants (a second compile);
  - MFU = accounting.train_step_flops(cfg, B, T) (exact matmul FLOPs of forward + backward,
    2mnp per matmul; no checkpoint recompute, no optimizer) / step time / peak FLOP/s. Peak: CUDA:
    the dense peak of accounting's GPU table for the variant's matmul dtype; CPU: ASSUMED equal to
    the best measured throughput of a 2048^3 matmul in the same run and dtype (so CPU MFU is
    "fraction of this machine's own large-matmul speed", not of a datasheet number).
Variants: "ours" is model.TransformerLM (+ model.optim / model.fast_optim, model.loss); "torch" is
validation/torch_baseline.py (torch's nn modules, sdpa, torch.optim.AdamW). Goal on CPU: our
fastest >= 0.95x the faster torch baseline. `--device cuda` runs cs336-gpt2-small at T=1024 and the
tinystories config in bf16 (compiled variants included), and estimates the wall time of the
handout's TinyStories budget (327,680,000 tokens) from the measured tokens/s beside accounting's
training_seconds at the measured MFU.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TINYSTORIES_TOKENS = 327_680_000


@dataclass(frozen=True)
class Variant:
    name: str
    impl: str = "ours"           # "ours" | "torch"
    attention: str = "naive"     # ours only ("torch" always uses sdpa)
    optimizer: str = "reference"  # ours: reference | foreach | fused; torch: foreach | fused
    dtype: str = "float32"       # float32 | bfloat16 (autocast, float32 master weights)
    checkpointing: bool = False
    compile: bool = False


def variants(device: str, with_compile: bool) -> list[Variant]:
    fast = Variant("sdpa + fused AdamW", attention="sdpa", optimizer="fused")
    if device == "cuda":
        bf16c = replace(fast, name="sdpa + fused + bf16 + compile", dtype="bfloat16", compile=True)
        out = [Variant("reference (naive attn, reference AdamW, fp32)"),
               fast, replace(fast, name="sdpa + fused + bf16", dtype="bfloat16"), bf16c,
               replace(bf16c, name=bf16c.name + " + checkpointing", checkpointing=True),
               Variant("torch modules + AdamW(fused) + bf16", "torch", optimizer="fused", dtype="bfloat16"),
               Variant("torch modules + AdamW(fused) + bf16 + compile", "torch", optimizer="fused",
                       dtype="bfloat16", compile=True)]
        return out
    out = [Variant("reference (naive attn, reference AdamW)"),
           Variant("sdpa", attention="sdpa"),
           Variant("sdpa + foreach AdamW", attention="sdpa", optimizer="foreach"),
           fast,
           replace(fast, name="sdpa + fused + checkpointing", checkpointing=True),
           replace(fast, name="sdpa + fused + bf16 autocast", dtype="bfloat16"),
           Variant("torch modules + AdamW(foreach)", "torch", optimizer="foreach"),
           Variant("torch modules + AdamW(fused)", "torch", optimizer="fused"),
           Variant("torch modules + AdamW(fused) + bf16 autocast", "torch", optimizer="fused",
                   dtype="bfloat16")]
    if with_compile:
        out += [replace(fast, name="sdpa + fused + compile", compile=True),
                replace(fast, name="sdpa + fused + bf16 + compile", dtype="bfloat16", compile=True),
                Variant("torch modules + AdamW(fused) + compile", "torch", optimizer="fused",
                        compile=True),
                Variant("torch modules + AdamW(fused) + bf16 + compile", "torch", optimizer="fused",
                        dtype="bfloat16", compile=True)]
    return out


def configs(device: str) -> list[tuple[str, dict, int, int]]:
    """(label, ModelConfig fields or preset name, batch size, context length)."""
    if device == "cuda":
        return [("cs336-gpt2-small", {"preset": "cs336-gpt2-small"}, 8, 1024),
                ("tinystories", {"preset": "tinystories"}, 128, 256)]
    small = dict(vocab_size=2048, context_length=128, d_model=256, num_layers=4, num_heads=8, d_ff=704)
    return [("tinystories", {"preset": "tinystories"}, 4, 128), ("small", small, 8, 128)]


def _model_config(spec: dict, context_length: int):
    from accounting.config import ModelConfig, get_preset

    spec = dict(spec)
    cfg = get_preset(spec.pop("preset")) if "preset" in spec else ModelConfig(**spec)
    return cfg.replace(context_length=context_length)


# ---- one variant, in a fresh interpreter -------------------------------------------------------
def _build(v: Variant, cfg, device):
    """(model, optimizer, loss_fn, clip_fn) for a variant."""
    import torch

    if v.impl == "torch":
        from validation.torch_baseline import TorchLM, torch_loss

        model = TorchLM(cfg, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                                **{v.optimizer: True})
        return model, opt, torch_loss, lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0)
    from model import TransformerLM, clip_gradients, cross_entropy
    from model.trainer import _optimizer
    from model.train_config import TrainConfig

    model = TransformerLM(cfg.replace(attention=v.attention), device=device,
                                      activation_checkpointing=v.checkpointing)
    opt = _optimizer(model, TrainConfig(max_lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                                        optimizer=v.optimizer))
    return model, opt, cross_entropy, lambda ps: clip_gradients(ps, 1.0)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _high_water_mark() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _stepper(v: Variant, cfg, device):
    """(model, step): step(ids (B, T+1)) trains one step on ids and returns the loss (synced)."""
    import contextlib

    import torch

    torch.manual_seed(0)  # every variant of a config starts from the same weights
    model, opt, loss_fn, clip = _build(v, cfg, device)
    fwd = torch.compile(model) if v.compile else model
    if v.compile:  # the loss too (as the trainer does): ours is a chain of elementwise ops
        loss_fn = torch.compile(loss_fn)

    def step(ids):
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if v.dtype == "bfloat16"
                    else contextlib.nullcontext())
        with autocast:
            logits = fwd(ids[:, :-1])
        loss = loss_fn(logits, ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip(model.parameters())
        opt.step()
        return loss.detach().item()  # synchronizes on CUDA

    return model, step


def _batches(cfg, batch: int, context: int, device, n: int = 4):
    import torch

    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, cfg.vocab_size, (batch, context + 1), generator=gen).to(device)
            for _ in range(n)]


def time_variants(variants_: list[Variant], spec: dict, batch: int, context: int, device_name: str,
                  steps: int, warmup: int, threads: int) -> list[dict]:
    """All variants of one config in one process, steps interleaved round-robin (variant 1 step
    1, variant 2 step 1, ...), so load from other jobs on a shared machine hits them alike."""
    import torch

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    cfg = _model_config(spec, context)
    batches = _batches(cfg, batch, context, device)
    built, out = {}, [{} for _ in variants_]
    for k, v in enumerate(variants_):
        try:
            built[k] = _stepper(v, cfg, device)
        except Exception as exc:  # reported in the table; the other variants still run
            out[k] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
    times = {k: [] for k in built}
    losses = {k: [] for k in built}
    for i in range(warmup + steps):
        for k, (_, step) in list(built.items()):
            t0 = time.perf_counter()
            try:
                losses[k].append(step(batches[i % len(batches)]))
            except Exception as exc:  # e.g. a compile failure on the first step
                out[k] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
                del built[k]
                continue
            times[k].append(time.perf_counter() - t0)
    for k, (m, _) in built.items():
        t = times[k]
        out[k] = {"median_s": statistics.median(t[warmup:]), "min_s": min(t[warmup:]),
                  "first_step_s": t[0], "loss_first": losses[k][0], "loss_last": losses[k][-1],
                  "parameters": sum(p.numel() for p in m.parameters())}
    return out


def peak_memory(v: Variant, spec: dict, batch: int, context: int, device_name: str,
                threads: int) -> int:
    """Peak bytes over 2 training steps of one variant (optimizer state exists from step 1 on):
    CPU: VmHWM minus the RSS before the model was built; CUDA: max_memory_allocated."""
    import torch

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    cfg = _model_config(spec, context)
    batches = _batches(cfg, batch, context, device, n=2)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss()
    _, step = _stepper(v, cfg, device)
    for ids in batches:
        step(ids)
    return int(torch.cuda.max_memory_allocated(device) if cuda else _high_water_mark() - before)


def _child(queue, fn_name: str, *args) -> None:
    try:
        queue.put(globals()[fn_name](*args))
    except Exception as exc:  # reported in the table, the other variants still run
        queue.put({"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]})


def _spawned(*args) -> object:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ---- peak FLOP/s ------------------------------------------------------------------------------
def matmul_peak(device_name: str, dtype: str, threads: int, n: int = 2048, trials: int = 5) -> tuple[float, str]:
    """(peak FLOP/s, source): CUDA from accounting's GPU table; CPU measured (best 2n^3 matmul)."""
    import torch

    device = torch.device(device_name)
    if device.type == "cuda":
        from model.trainer import cuda_peak

        found = cuda_peak(device, dtype)
        if found is None:
            raise SystemExit(f"{torch.cuda.get_device_name(device)} is not in accounting's GPU table")
        return found
    torch.set_num_threads(threads)
    a = torch.randn(n, n, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, dtype=getattr(torch, dtype))
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best, f"measured: best of {trials} {n}^3 {dtype} matmuls, {threads} threads"


# ---- the run ----------------------------------------------------------------------------------
def _accounting_peak(cfg, v: Variant, batch: int, context: int) -> int | None:
    """accounting's peak training bytes for an "ours" variant (None for the torch baseline)."""
    from accounting import activation_bytes, checkpointed_activation_bytes, peak_memory_bytes

    if v.impl != "ours":
        return None
    cfg = cfg.replace(attention=v.attention)
    peak = peak_memory_bytes(cfg, batch, context, dtype=v.dtype)
    if v.checkpointing:
        peak += (checkpointed_activation_bytes(cfg, batch, context, dtype=v.dtype)
                 - activation_bytes(cfg, batch, context, dtype=v.dtype))
    return peak


def measure(args) -> dict:
    from tqdm import tqdm

    dtypes = ("float32", "bfloat16")
    seen = {dt: [matmul_peak(args.device, dt, args.threads)] for dt in dtypes}
    runs = []
    for label, spec, batch, context in configs(args.device):
        vs = variants(args.device, args.compile)
        with tqdm(total=1 + len(vs), desc=label, unit="job") as bar:
            bar.set_postfix_str("timing all variants, interleaved")
            timed = _spawned("time_variants", vs, spec, batch, context, args.device, args.steps,
                             args.warmup, args.threads)
            bar.update(1)
            if isinstance(timed, dict):  # the whole process failed
                timed = [timed] * len(vs)
            for v, res in zip(vs, timed):
                bar.set_postfix_str(f"memory: {v.name}")
                if "error" not in res and not v.compile:  # compiled: no second compile for memory
                    mem = _spawned("peak_memory", v, spec, batch, context, args.device, args.threads)
                    res["peak_bytes"] = mem if isinstance(mem, int) else None
                runs.append({"config": label, "batch_size": batch, "context_length": context,
                             "variant": asdict(v), "name": v.name, **res})
                bar.update(1)
        for dt in dtypes:
            seen[dt].append(matmul_peak(args.device, dt, args.threads))
    peaks = {dt: max(seen[dt]) for dt in dtypes}
    if args.device == "cpu":  # shared machine: its peak is the best matmul seen in the run
        peaks = {dt: (p, f"measured: the best of {len(seen[dt])} timings (at the start and after "
                      f"each config) of a 2048^3 {dt} matmul, {args.threads} threads")
                 for dt, (p, _) in peaks.items()}
    for row in runs:
        if "error" not in row:
            _score(row, peaks[row["variant"]["dtype"]][0], args.device)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(args),
            "load_average_start": args.load_start, "load_average_end": os.getloadavg(),
            "steps": args.steps, "warmup": args.warmup,
            "peaks": {dt: {"flops_per_s": p, "source": s} for dt, (p, s) in peaks.items()},
            "runs": runs}


def _score(row: dict, peak: float, device: str) -> None:
    """Add tokens/s, accounting's FLOPs and memory, MFU and the TinyStories budget to a run."""
    from accounting import train_step_flops, training_seconds

    label, batch, context = row["config"], row["batch_size"], row["context_length"]
    cfg = _model_config(next(c[1] for c in configs(device) if c[0] == label), context)
    flops = train_step_flops(cfg, batch, context)
    mfu = flops / row["median_s"] / peak
    row.update(tokens_per_s=batch * context / row["median_s"], train_step_flops=flops,
               peak_flops_per_s=peak, mfu=mfu,
               accounting_peak_bytes=_accounting_peak(cfg, Variant(**row["variant"]), batch, context))
    if label == "tinystories" and mfu <= 1:
        steps = TINYSTORIES_TOKENS / (batch * context)
        row["tinystories_budget_s"] = TINYSTORIES_TOKENS / row["tokens_per_s"]
        row["tinystories_budget_accounting_s"] = training_seconds(
            cfg, batch_size=batch, context_length=context, steps=max(1, round(steps)),
            peak_flops_per_s=peak, mfu=mfu)


def _machine(args) -> str:
    import torch

    if args.device == "cuda":
        dev = torch.cuda.get_device_name(0)
    else:
        dev = f"{platform.machine()} CPU, {os.cpu_count()} cores visible, {args.threads} torch threads"
    return f"{dev}; Python {platform.python_version()}, torch {torch.__version__}"


def main(argv=None) -> int:
    from accounting.cli_support import OneLineArgumentParser, UserError

    parser = OneLineArgumentParser(prog="bench_training.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile included)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants (CPU)")
    parser.add_argument("--json", type=Path, help="where to write the JSON "
                        "(default benchmarks/results/bench_training_<device>.json)")
    parser.add_argument("--update-results", action="store_true",
                        help="replace this benchmark's section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        raise UserError("--steps and --threads must be >= 1, --warmup >= 0")
    from bench_training_report import render, update_results

    args.load_start = os.getloadavg()
    result = measure(args)
    text = render(result)
    print(text)
    from accounting.atomic import atomic_write_text

    json_path = (args.json or ROOT / "benchmarks" / "results" / f"bench_training_{args.device}.json").resolve()
    atomic_write_text(json_path, json.dumps(result, indent=1) + "\n")
    if args.update_results:
        update_results(text, json_path)
    return 0


if __name__ == "__main__":
    from accounting.cli_support import run_cli

    raise SystemExit(run_cli(main, prog="bench_training.py"))
