"""Training throughput and MFU: our reference path, each fast path and a torch-modules baseline.

    python benchmarks/bench_training.py [--device cpu|cuda] [--steps 10] [--warmup 3] [--compile]
                                        [--threads N] [--json PATH] [--update-results]

One run, the same shapes for every variant of a config. Each variant trains `--warmup` + `--steps`
steps on fixed random tokens in a freshly spawned interpreter (so memory and compile caches do not
leak between variants): forward (bf16 autocast where named), loss, backward, gradient clipping at
1.0, AdamW. Reported per variant:
  - step time: the median of the `--steps` timed steps (after the warm-up; CUDA synchronized);
  - tokens/s = B * T / median step time;
  - peak memory: CPU: peak resident set during the variant (VmHWM) minus the RSS before the model
    was built (weights, gradients, optimizer state, activations, allocator slack); CUDA:
    torch.cuda.max_memory_allocated;
  - MFU = accounting.train_step_flops(cfg, B, T) (exact matmul FLOPs of forward + backward,
    2mnp per matmul; no checkpoint recompute, no optimizer) / step time / peak FLOP/s. Peak: CUDA:
    the dense peak of accounting's GPU table for the variant's matmul dtype; CPU: ASSUMED equal to
    the best measured throughput of a 2048^3 matmul in the same run and dtype (so CPU MFU is
    "fraction of this machine's own large-matmul speed", not of a datasheet number).
Variants: "ours" is model.TransformerLM (+ model.optim / model.fast_optim, model.loss); "torch" is
benchmarks/torch_baseline.py (torch's nn modules, sdpa, torch.optim.AdamW). Goal on CPU: our
fastest >= 0.95x the faster torch baseline. `--device cuda` runs gpt2-small at T=1024 and the
tinystories config in bf16 (compiled variants included), and estimates the wall time of the
handout's TinyStories budget (327,680,000 tokens) from the measured tokens/s beside accounting's
training_seconds at the measured MFU.
"""

from __future__ import annotations

import argparse
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

SECTION = "## Training throughput and MFU (`benchmarks/bench_training.py`)"
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
           Variant("torch modules + AdamW(fused)", "torch", optimizer="fused")]
    if with_compile:
        out += [replace(fast, name="sdpa + fused + compile", compile=True),
                Variant("torch modules + AdamW(fused) + compile", "torch", optimizer="fused",
                        compile=True)]
    return out


def configs(device: str) -> list[tuple[str, dict, int, int]]:
    """(label, ModelConfig fields or preset name, batch size, context length)."""
    if device == "cuda":
        return [("gpt2-small", {"preset": "gpt2-small"}, 16, 1024),
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
        from torch_baseline import TorchLM, torch_loss

        model = TorchLM(cfg, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                                **{v.optimizer: True})
        return model, opt, torch_loss, lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0)
    from model import TransformerLM, clip_gradients, cross_entropy
    from model.trainer import _optimizer
    from model.train_config import TrainConfig

    model = TransformerLM.from_config(cfg.replace(attention=v.attention), device=device,
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


def run_variant(v: Variant, spec: dict, batch: int, context: int, device_name: str, steps: int,
                warmup: int, threads: int) -> dict:
    """Train warmup + steps steps; step times, peak memory, first and last loss."""
    import contextlib

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device_name)
    cfg = _model_config(spec, context)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, cfg.vocab_size, (batch, context + 1), generator=gen).to(device)
               for _ in range(4)]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss()
    model, opt, loss_fn, clip = _build(v, cfg, device)
    params = sum(p.numel() for p in model.parameters())
    fwd = torch.compile(model) if v.compile else model
    if v.compile:  # the loss too (as the trainer does): ours is a chain of elementwise ops
        loss_fn = torch.compile(loss_fn)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if v.dtype == "bfloat16"
                else contextlib.nullcontext())
    times, losses = [], []
    for i in range(warmup + steps):
        ids = batches[i % len(batches)]
        t0 = time.perf_counter()
        with autocast:
            logits = fwd(ids[:, :-1])
        loss = loss_fn(logits, ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip(model.parameters())
        opt.step()
        losses.append(loss.detach().item())  # synchronizes on CUDA
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if cuda else _high_water_mark() - before
    matmul = None if cuda else matmul_peak(device_name, v.dtype, threads, trials=3)[0]
    return {"matmul_flops_per_s": matmul,"median_s": statistics.median(times[warmup:]), "min_s": min(times[warmup:]),
            "first_step_s": times[0], "peak_bytes": int(peak), "parameters": params,
            "loss_first": losses[0], "loss_last": losses[-1]}


def _child(queue, *args) -> None:
    try:
        queue.put(run_variant(*args))
    except Exception as exc:  # reported in the table, the other variants still run
        queue.put({"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]})


def _spawned(*args) -> dict:
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
        from model.trainer import _cuda_peak, _cuda_peak_source

        peak = _cuda_peak(device, dtype)
        if peak is None:
            raise SystemExit(f"{torch.cuda.get_device_name(device)} is not in accounting's GPU table")
        return peak, _cuda_peak_source(device, dtype)
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
    peaks = {dt: matmul_peak(args.device, dt, args.threads) for dt in dtypes}
    runs = []
    plan = [(c, v) for c in configs(args.device) for v in variants(args.device, args.compile)]
    for (label, spec, batch, context), v in tqdm(plan, desc="variants", unit="variant"):
        res = _spawned(v, spec, batch, context, args.device, args.steps, args.warmup, args.threads)
        runs.append({"config": label, "batch_size": batch, "context_length": context,
                     "variant": asdict(v), "name": v.name, **res})
    if args.device == "cpu":  # the machine is shared: its peak is the best matmul seen in the run
        for dt in dtypes:
            seen = [peaks[dt][0], matmul_peak(args.device, dt, args.threads)[0]]
            seen += [r["matmul_flops_per_s"] for r in runs
                     if r.get("matmul_flops_per_s") and r["variant"]["dtype"] == dt]
            peaks[dt] = (max(seen), f"measured: the best of {len(seen)} timings (at the start, before "
                         f"each variant, at the end) of a 2048^3 {dt} matmul, {args.threads} threads")
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


def _speedup_lines(result: dict) -> list[str]:
    lines = []
    for label in dict.fromkeys(r["config"] for r in result["runs"]):
        ok = [r for r in result["runs"] if r["config"] == label and "tokens_per_s" in r]
        ours = max((r for r in ok if r["variant"]["impl"] == "ours"), key=lambda r: r["tokens_per_s"])
        base = max((r for r in ok if r["variant"]["impl"] == "torch"), key=lambda r: r["tokens_per_s"])
        ref = next(r for r in ok if r["variant"]["impl"] == "ours")
        ratio = ours["tokens_per_s"] / base["tokens_per_s"]
        ours_min = min((r for r in ok if r["variant"]["impl"] == "ours"), key=lambda r: r["min_s"])
        base_min = min((r for r in ok if r["variant"]["impl"] == "torch"), key=lambda r: r["min_s"])
        lines.append(f"- {label}: our fastest ({ours['name']}) = {ratio:.2f}x the fastest torch "
                     f"baseline ({base['name']}) by median step time: "
                     f"{'meets' if ratio >= 0.95 else 'MISSES'} the 0.95x goal; "
                     f"{ours['tokens_per_s'] / ref['tokens_per_s']:.2f}x our reference path. By the "
                     f"least-disturbed (min) step: {ours_min['name']} {base_min['min_s'] / ours_min['min_s']:.2f}x "
                     f"{base_min['name']}.")
    return lines


def render(result: dict) -> str:
    def mib(n):
        return "-" if n is None else f"{n / 2**20:,.0f}"

    out = [f"machine: {result['machine']}; {result['date']}; load average at start "
           f"{result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f}; "
           f"{result['warmup']} warm-up + {result['steps']} timed steps per variant",
           "peak FLOP/s for MFU: " + "; ".join(
               f"{dt} {p['flops_per_s'] / 1e12:.3g} TFLOP/s ({p['source']})"
               for dt, p in result["peaks"].items()), ""]
    for label in dict.fromkeys(r["config"] for r in result["runs"]):
        rows = [r for r in result["runs"] if r["config"] == label]
        r0 = rows[0]
        out += [f"{label}: B={r0['batch_size']}, T={r0['context_length']}, "
                f"{r0.get('parameters', 0):,} parameters, train_step_flops "
                f"{r0.get('train_step_flops', 0):,} (matmul, fwd+bwd)", "",
                "| variant | median step s | min step s | tokens/s | MFU | peak MiB (measured) | "
                "peak MiB (accounting) | loss first -> last |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if "error" in r:
                out.append(f"| {r['name']} | failed: {r['error']} | | | | | | |")
                continue
            out.append(f"| {r['name']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['tokens_per_s']:,.0f} | "
                       f"{r['mfu']:.1%} | {mib(r['peak_bytes'])} | {mib(r['accounting_peak_bytes'])} | "
                       f"{r['loss_first']:.4f} -> {r['loss_last']:.4f} |")
        out.append("")
    out += _speedup_lines(result)
    budget = [r for r in result["runs"] if "tinystories_budget_s" in r and r["variant"]["impl"] == "ours"]
    if budget:
        best = max(budget, key=lambda r: r["tokens_per_s"])
        out.append(f"- TinyStories budget ({TINYSTORIES_TOKENS:,} tokens) at {best['name']}'s "
                   f"{best['tokens_per_s']:,.0f} tokens/s (T={best['context_length']}): "
                   f"{best['tinystories_budget_s'] / 3600:.2f} h measured; accounting's "
                   f"training_seconds at the measured MFU {best['mfu']:.1%}: "
                   f"{best['tinystories_budget_accounting_s'] / 3600:.2f} h.")
    return "\n".join(out) + "\n"


NOTES = (
    "Notes. Every variant of a config starts from the same seed, so \"ours\" variants share their "
    "first loss (the torch baseline initializes its own way; tests/model/test_fast_train.py checks "
    "that it computes our logits with our weights). Step times come from a machine shared with other "
    "jobs (see the load averages): the median is the issue's measure, the min is the least "
    "disturbed step. Measured peak memory is process RSS growth (allocator slack, the logits' "
    "gradient and other temporaries included), so it exceeds accounting's peak_memory_bytes "
    "(weights + gradients + AdamW state + saved activations; with checkpointing, "
    "checkpointed_activation_bytes). CPU MFU is relative to this machine's own measured large-matmul "
    "throughput in the variant's dtype (bf16 matmuls use AMX here, hence the low bf16 MFU). "
    "`--device cuda` (gpt2-small at T=1024 and tinystories, bf16, compiled variants, TinyStories "
    "budget estimate) is implemented but has not been run: this task had no GPU.",
)


def update_results(text: str, json_path: Path) -> None:
    from accounting.atomic import atomic_write_text

    path = ROOT / "benchmarks" / "RESULTS.md"
    doc = path.read_text()
    start = doc.index(SECTION)
    end = doc.find("\n## ", start + len(SECTION))
    end = len(doc) if end < 0 else end + 1
    section = "\n".join([SECTION, "", f"`python benchmarks/bench_training.py` (JSON: "
                         f"`{json_path.relative_to(ROOT)}`). Conventions: see the script's docstring "
                         "(MFU = accounting's exact matmul FLOPs / median step time / peak).", "",
                         text.rstrip("\n"), "", *NOTES, ""])
    atomic_write_text(path, doc[:start] + section + "\n" + doc[end:])


def main(argv=None) -> int:
    from accounting.cli_support import OneLineArgumentParser, UsageError

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
        raise UsageError("--steps and --threads must be >= 1, --warmup >= 0")
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
