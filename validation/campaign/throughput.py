"""Step 5: training throughput of our model beside the torch-modules baseline, in the same process.

A step, for both: forward under bf16 autocast (float32 master weights), loss, zero_grad(set_to_none),
backward, AdamW; no gradient clipping (benchmarks/bench_training clips; here the model and
optimizer are compared alone). Ours: model.TransformerLM + model.FastAdamW(fused) + our
cross_entropy; baseline: validation.torch_baseline.TorchLM + torch.optim.AdamW(fused=True) +
F.cross_entropy. Model and loss are torch.compile'd (inductor on CUDA; dynamo's eager backend in
--dry-run). Each contender falls back, with a note, from compiled + fused to eager + fused to
eager + foreach when its first step raises (an OOM is not retried). After 3 warm-up steps each
(the first compiles), steps run round-robin (ours, baseline, ours, ...), each timed alone with
CUDA events, up to 20 per contender or until the step's budget runs short (at least 3).

MFU = accounting.train_step_flops(cfg, B, T) (forward + backward matmuls, 2mnp) / median step
time / peak, against the GPU table's dense bf16 peak and the dense bf16 peak measured in step 2.
B = 16 (step 3 uses 8), chosen before any run: at B = 8 a step at 45% MFU takes ~19 ms, and the
AdamW update of 190M float32 parameters (~6 GB of memory traffic, ~2 ms) alone would be a tenth
of it.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import accounting as acc
from model.loss import cross_entropy
from model.transformer import TransformerLM
from validation.campaign.common import (OPTIMIZER_KWARGS, OverBudget, adamw, autocast, first_line,
                                        fused_available, is_oom, sync, timed, wall)
from validation.campaign.environment import compile_backend, matmul_peak
from validation.campaign.plan import file_stem, model_config
from validation.campaign.steps import campaign_settings
from validation.campaign.targets import BASELINE, OURS, RATIO, THROUGHPUT, mfu_component
from validation.rows import ComparisonRow, Measurement
from validation.torch_baseline import TorchLM, torch_loss

WARMUP = 3
MAX_TIMED = 20
MIN_TIMED = 3


@dataclass
class Contender:
    who: str
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    how: str                      # "inductor + fused AdamW", ...
    first_step_s: float
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def _build(who: str, cfg, device: torch.device, backend: str | None, optimizer: str, dtype: str):
    """One training step of `who` (OURS or BASELINE) as a function of (x, y) -> detached loss."""
    torch.manual_seed(0)
    if who == OURS:
        model = TransformerLM(cfg, device=device)
        opt, loss_fn = adamw(model.parameters(), optimizer), cross_entropy
    else:
        model = TorchLM(cfg, device=device)
        opt = torch.optim.AdamW(model.parameters(), **OPTIMIZER_KWARGS, **{optimizer: True})
        loss_fn = torch_loss
    fwd = model
    if backend is not None:  # the loss too, as the trainer does: ours is a chain of elementwise ops
        fwd, loss_fn = torch.compile(model, backend=backend), torch.compile(loss_fn, backend=backend)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, dtype):
            logits = fwd(x)  # (B, T, V)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def prepare(who: str, cfg, device: torch.device, backend: str | None, dtype: str, x, y,
            notes: list[str]) -> Contender:
    """Build `who` and run its first step, falling back (with a note) when that step raises."""
    optimizers = ["fused", "foreach"] if fused_available() else ["foreach"]
    attempts = [(backend, optimizers[0])] + ([(None, optimizers[0])] if backend is not None else []) \
        + [(None, o) for o in optimizers[1:]]
    for i, (b, optimizer) in enumerate(attempts):
        try:
            step = _build(who, cfg, device, b, optimizer, dtype)
            first = wall(lambda: step(x, y), device)
            return Contender(who, step, f"{b or 'eager'} + {optimizer} AdamW", first)
        except Exception as exc:  # compile / fused kernel missing: recorded, the next attempt runs
            if is_oom(exc):
                raise
            failure = first_line(exc)
        step = None
        notes.append(f"{who}: {b or 'eager'} + {optimizer} AdamW failed ({failure})"
                     + ("; falling back" if i + 1 < len(attempts) else ""))
        gc.collect()  # no torch._dynamo.reset(): it would drop the other contender's compiled code
    raise RuntimeError(f"{who}: every attempt failed; see the notes")


def _batches(cfg, B: int, T: int, device: torch.device, n: int = 4):
    gen = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, cfg.vocab_size, (B, T + 1), generator=gen) for _ in range(n)]
    return [(i[:, :-1].contiguous().to(device), i[:, 1:].contiguous().to(device)) for i in ids]


def _run(contenders: list[Contender], batches, device, deadline) -> None:
    """Warm-up, then round-robin timed steps (module docstring)."""
    for c in contenders:
        for i in range(1, WARMUP):
            c.step(*batches[i % len(batches)])
    sync(device)
    for i in range(MAX_TIMED):
        if i >= MIN_TIMED and deadline is not None and deadline.left() < 3:
            break
        for c in contenders:
            out = []
            c.times.append(timed(lambda: out.append(c.step(*batches[i % len(batches)])), device))
            c.losses.append(float(out[0]))  # the step is synchronized already


def _rows(contenders, flops: int, tokens: int, peaks: dict[str, tuple[float, str]], convention: str):
    rows, tps = [], {}
    for c in contenders:
        if not c.times:
            continue
        median = statistics.median(c.times)
        tps[c.who] = tokens / median
        conv = f"{convention}; {c.how}"
        rows += [ComparisonRow(THROUGHPUT, f"{c.who}: step time", "seconds", None, median, conv,
                               f"median of {len(c.times)} timed steps (round-robin), "
                               f"min {min(c.times):.4g} s, max {max(c.times):.4g} s"),
                 ComparisonRow(THROUGHPUT, f"{c.who}: tokens/s", "tokens/s", None, tokens / median, conv),
                 ComparisonRow(THROUGHPUT, f"{c.who}: first step (compile + run)", "seconds", None,
                               c.first_step_s, conv)]
        for name, (peak, source) in peaks.items():
            rows.append(ComparisonRow(THROUGHPUT, mfu_component(c.who, name), "ratio", None,
                                      flops / median / peak, conv,
                                      f"peak {peak / 1e12:.4g} TFLOP/s: {source}"))
    if OURS in tps and BASELINE in tps:
        rows.append(ComparisonRow(THROUGHPUT, RATIO, "x", None, tps[OURS] / tps[BASELINE], convention,
                                  "same process, same batches, steps interleaved"))
    return rows


def _peaks(ctx) -> dict[str, tuple[float, str]]:
    out = {}
    if ctx.gpu is not None:
        out["table's"] = (ctx.gpu.peak("bfloat16"), f"{ctx.gpu.name}, {ctx.gpu.source}")
    measured = ctx.peaks.get("bfloat16")
    source = "step 2's best bf16 matmul"
    if measured is None:
        n = 256 if ctx.dry_run else 8192
        measured, _, count = matmul_peak(ctx.device, "bfloat16", n, 10)
        source = f"best of {count} {n}^3 bf16 matmuls in this step (step 2 did not run)"
    out["measured"] = (measured, source)
    return out


def throughput_step(ctx, spec) -> None:
    sh = spec.shape
    cfg, B, T, label = model_config(sh, ctx.dry_run)
    backend, why = compile_backend(ctx.device, ctx.dry_run)
    notes = [f"compile: {why}"]
    batches = _batches(cfg, B, T, ctx.device)
    peaks = _peaks(ctx)
    contenders, over, failed = [], None, []
    for who in (OURS, BASELINE):
        try:
            ctx.deadline.check(f"building {who}")
            ctx.phase(f"{who}: build, compile, first step")
            contenders.append(prepare(who, cfg, ctx.device, backend, sh.dtype, *batches[0], notes))
        except OverBudget as exc:
            over = exc
            notes.append(f"{exc}: the remaining contenders did not run")
            break
        except Exception as exc:  # an OOM or every fallback failing: the other contender still runs
            failed.append(f"{who}: {first_line(exc)}")
        if failed:
            ctx.counters.cleanup()
    notes += [f"did not run: {f}" for f in failed]
    if contenders:
        ctx.phase("timed steps, round-robin")
        _run(contenders, batches, ctx.device, ctx.deadline)
    for c in contenders:
        if c.losses:
            finite = all(math.isfinite(v) for v in c.losses)
            notes.append(f"{c.who} ({c.how}): loss {c.losses[0]:.4f} -> {c.losses[-1]:.4f}"
                         + ("" if finite else " (NOT FINITE)"))
    convention = (f"{label} B={B} T={T}, bf16 autocast, attention {cfg.attention}; model FLOPs = "
                  "accounting.train_step_flops (forward + backward matmuls, 2mnp)")
    rows = _rows(contenders, acc.train_step_flops(cfg, B, T), B * T, peaks, convention)
    stem = f"throughput_{file_stem(label, ctx.gpu_tag, sh.dtype, B, T, sh.attention)}_{backend or 'eager'}"
    settings = campaign_settings(ctx, spec, label, B, T, {"compile_backend": backend})
    ctx.emit(stem, Measurement(rows, dict(ctx.facts), dataclasses.asdict(cfg), settings, notes))
    if over is not None:
        raise over
    if not contenders:
        raise RuntimeError("no contender ran: " + "; ".join(failed))
