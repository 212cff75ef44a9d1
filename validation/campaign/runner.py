"""Runs the plan: one step after another, each under its wall-clock budget, a failure recorded and
the plan going on; memory freed between steps; every measurement written (atomically) as it is
made and summary.md rewritten after every step, so a run killed from outside leaves what it did."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from accounting.atomic import atomic_write_text
from accounting.hardware import GPU
from validation.campaign import summary
from validation.campaign.common import (Counters, Deadline, NoCounters, OverBudget, counters_for,
                                        first_line, is_oom)
from validation.campaign.plan import StepRecord, StepSpec
from validation.rows import Measurement
from validation.timing import hardware


@dataclass
class Context:
    """What the steps share: the device, the environment's facts, the measured peaks, and, per
    step, its deadline, a progress hook and `emit(stem, measurement)`."""

    device: torch.device
    dry_run: bool
    counters: Counters | NoCounters
    emit: Callable[[str, Measurement], None]
    phase: Callable[[str], None] = lambda text: None
    facts: dict = field(default_factory=dict)
    gpu: GPU | None = None
    gpu_tag: str = "cpu"
    peaks: dict[str, float] = field(default_factory=dict)
    deadline: Deadline = field(default_factory=lambda: Deadline(float("inf")))


def _environment(ctx: Context, spec: StepSpec) -> None:
    from validation.campaign.environment import environment

    ctx.facts, ctx.gpu = environment(ctx.device, ctx.dry_run)
    if ctx.gpu is not None:
        ctx.gpu_tag = ctx.gpu.name
    elif ctx.device.type == "cuda":
        ctx.gpu_tag = re.sub(r"[^A-Za-z0-9.]+", "-", str(ctx.facts.get("gpu_name", "cuda"))).strip("-")


def _dense_peak(ctx: Context, spec: StepSpec) -> None:
    from validation.campaign.environment import dense_peak_rows

    rows, ctx.peaks = dense_peak_rows(ctx.device, ctx.gpu, ctx.dry_run, ctx.deadline)
    settings = {"batch_size": None, "context_length": None, "dtype": ", ".join(ctx.peaks),
                "steps": None, "device": str(ctx.device), "campaign_step": spec.number,
                "campaign_key": spec.key, "campaign_label": f"{spec.number} dense matmul peak",
                "dry_run": ctx.dry_run}
    ctx.emit(f"dense-peak_{ctx.gpu_tag}", Measurement(rows, dict(ctx.facts), {}, settings))


def _step_function(kind: str) -> Callable[[Context, StepSpec], None]:
    if kind == "environment":
        return _environment
    if kind == "dense_peak":
        return _dense_peak
    if kind == "measure":
        from validation.campaign.steps import measure_step
        return measure_step
    if kind == "largest_batch":
        from validation.campaign.steps import largest_batch_step
        return largest_batch_step
    from validation.campaign.throughput import throughput_step
    return throughput_step


def run_step(ctx: Context, spec: StepSpec, record: StepRecord) -> None:
    """Run one step into `record`: ok, or the failure recorded (an OOM, an error, the budget)."""
    start = time.monotonic()
    try:
        _step_function(spec.kind)(ctx, spec)
        record.status = "ok"
    except OverBudget as exc:
        record.status, record.error = "over budget", str(exc)
    except Exception as exc:  # recorded with its place; the plan goes on
        record.status, record.error = ("out of memory" if is_oom(exc) else "failed"), first_line(exc)
    finally:
        record.seconds = time.monotonic() - start
    ctx.counters.cleanup()  # outside the except blocks: a failed step's tensors are unreferenced now


@dataclass
class PlanResult:
    records: list[StepRecord]
    measurements: list[tuple[str, Measurement]]   # (file name, measurement), in the order written
    facts: dict                                   # the environment
    head: dict                                    # summary.header's arguments


def run_plan(specs: list[StepSpec], out: Path, *, device: torch.device, dry_run: bool, budget_s: float,
             command: str, progress: bool = True) -> PlanResult:
    """Run `specs` in order, writing into `out` (measurement JSONs, summary.md)."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    records = [StepRecord(s) for s in specs]
    written: dict[str, Measurement] = {}
    started, plan_start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.monotonic()
    current: list[StepRecord] = []

    def emit(stem: str, m: Measurement) -> None:
        name = f"{stem}.json"
        atomic_write_text(out / name, json.dumps(m.to_dict(), indent=1) + "\n")
        written[name] = m
        if current and name not in current[-1].files:
            current[-1].files.append(name)

    ctx = Context(device, dry_run, counters_for(device), emit)
    ctx.facts = hardware(str(device))  # the environment step adds to it; its keys, should that step fail
    threads = torch.get_num_threads()
    if dry_run:  # tiny tensors: one thread is faster and steadier on a shared machine
        torch.set_num_threads(1)
    bar = tqdm(total=len(specs), file=sys.stderr, disable=not progress, unit="step",
               bar_format="{desc} {n}/{total} [{elapsed}] {postfix}")
    ctx.phase = lambda text: bar.set_postfix_str(text[:60], refresh=True)

    def write_summary() -> dict:
        head = dict(gpu=_gpu_title(ctx), dry_run=dry_run, started=started, budget_s=budget_s,
                    elapsed_s=time.monotonic() - plan_start, command=command)
        text = summary.render(records, list(written.items()), ctx.facts, **head)
        atomic_write_text(out / "summary.md", text)
        return head

    try:
        for spec, record in zip(specs, records):
            elapsed = time.monotonic() - plan_start
            left = max(0.0, budget_s - elapsed)
            record.budget_s = spec.budget_s if spec.key == "env" else min(spec.budget_s, left)
            bar.set_description_str(f"{spec.number} {spec.key}")
            if spec.key != "env" and elapsed >= budget_s:
                record.status = "skipped"
                record.error = f"the plan's {budget_s:.0f} s budget was spent ({elapsed:.0f} s)"
            else:
                ctx.deadline = Deadline(record.budget_s)
                current.append(record)
                run_step(ctx, spec, record)
            bar.update(1)
            write_summary()
    finally:
        bar.close()
        torch.set_num_threads(threads)
        head = write_summary()
    return PlanResult(records, list(written.items()), ctx.facts, head)


def _gpu_title(ctx: Context) -> str:
    if ctx.device.type != "cuda":
        return f"dry run on {ctx.facts.get('name', 'the CPU')}"
    name = ctx.facts.get("gpu_name", "unknown GPU")
    return f"{name} (GPU table: {ctx.gpu.name if ctx.gpu else 'no entry'})"
