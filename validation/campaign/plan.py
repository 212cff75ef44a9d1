"""The campaign's fixed plan: each step, its shapes, its wall-clock budget and its estimated time on
an H100, and the tiny shapes of `--dry-run`. Imports no torch.

The issue's "gpt2-small", "gpt2-medium", "gpt2-xl" are CS336's shapes, the presets
`cs336-gpt2-small`, `cs336-gpt2-medium`, `cs336-gpt2-xl` (GPT-2's sizes with the CS336 block);
`gpt2` ... `gpt2-xl` are the published models, which the campaign does not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounting.config import ModelConfig, get_preset
from accounting.errors import UserError

NAMES_NOTE = ("gpt2-small / gpt2-medium / gpt2-xl in this plan are CS336's shapes, the presets "
              "cs336-gpt2-small / cs336-gpt2-medium / cs336-gpt2-xl (not the published GPT-2)")
DEFAULT_BUDGET_S = 480.0
DRY_CONTEXT = 32
DRY_BATCH = 2
DRY_SIZES = dict(vocab_size=96, d_model=32, num_layers=2, num_heads=2, d_ff=64)
"""--dry-run keeps every variant switch of a step and shrinks the model to these sizes, T to
DRY_CONTEXT and B to at most DRY_BATCH."""


@dataclass(frozen=True)
class Shape:
    """One model and step shape. `batch_size` None: the step solves for it (largest batch)."""

    preset: str
    batch_size: int | None
    context_length: int
    dtype: str          # "float32" | "bfloat16"
    attention: str      # "naive" | "sdpa"
    checkpointing: bool = False


@dataclass(frozen=True)
class StepSpec:
    """A step of the plan. `kind` names the function that runs it; `budget_s` is its wall-clock
    budget, `estimate_s` its expected time on an H100 SXM (compilation included)."""

    key: str
    number: str
    title: str
    kind: str           # environment | dense_peak | measure | largest_batch | throughput
    budget_s: float
    estimate_s: float
    shape: Shape | None = None
    measure: bool = True  # kind "measure": run validation.core.measure (False: the training-step probe alone)


_SMALL, _XL = "cs336-gpt2-small", "cs336-gpt2-xl"
PLAN: tuple[StepSpec, ...] = (
    StepSpec("env", "1", "environment: GPU, memory, driver, torch, CUDA, GPU-table entry", "environment",
             15, 3),
    StepSpec("peak", "2", "measured dense peak: 8192^3 bf16, tf32 and fp32 matmuls vs the GPU table",
             "dense_peak", 25, 3),
    StepSpec("small-fp32", "3a", "measure cs336-gpt2-small B=8 T=1024 float32, naive attention", "measure",
             45, 15, Shape(_SMALL, 8, 1024, "float32", "naive")),
    StepSpec("small-bf16", "3b", "measure cs336-gpt2-small B=8 T=1024 bfloat16, sdpa", "measure",
             45, 12, Shape(_SMALL, 8, 1024, "bfloat16", "sdpa")),
    StepSpec("xl", "3c", "measure cs336-gpt2-xl B=1 T=1024 bfloat16, sdpa", "measure",
             50, 25, Shape(_XL, 1, 1024, "bfloat16", "sdpa")),
    StepSpec("xl-ckpt", "3d", "cs336-gpt2-xl B=1 T=1024 bfloat16, sdpa, activation checkpointing", "measure",
             35, 10, Shape(_XL, 1, 1024, "bfloat16", "sdpa", checkpointing=True), measure=False),
    StepSpec("tinystories", "3e", "measure tinystories B=32 T=256 float32, naive attention", "measure",
             30, 8, Shape("tinystories", 32, 256, "float32", "naive")),
    StepSpec("largest-batch", "4", "largest batch of cs336-gpt2-medium bf16 (sdpa) in this GPU's free memory",
             "largest_batch", 45, 15, Shape("cs336-gpt2-medium", None, 1024, "bfloat16", "sdpa")),
    StepSpec("throughput", "5", "training throughput: cs336-gpt2-small B=16 T=1024 bf16 autocast, sdpa, "
             "fused AdamW, compiled, beside the torch-modules baseline", "throughput", 190, 120,
             Shape(_SMALL, 16, 1024, "bfloat16", "sdpa")),
)
"""The plan, in order. Budgets sum to DEFAULT_BUDGET_S (480 s); estimates to about 210 s."""


def select(only: str | None) -> list[StepSpec]:
    """The steps `--only` names (comma-separated keys or numbers; "3" = 3a-3e), in plan order, with
    the environment always first (every other step needs it). None: the whole plan."""
    if only is None:
        return list(PLAN)
    wanted = {t.strip() for t in only.split(",") if t.strip()}
    known = {s.key for s in PLAN} | {s.number for s in PLAN} | {s.number[0] for s in PLAN}
    unknown = sorted(wanted - known)
    if unknown or not wanted:
        names = ", ".join(f"{s.number}={s.key}" for s in PLAN)
        raise UserError(f"--only: unknown step {', '.join(unknown) or '(none given)'}; steps: {names}")
    return [s for s in PLAN if s.key == "env" or wanted & {s.key, s.number, s.number[0]}]


def model_config(shape: Shape, dry_run: bool) -> tuple[ModelConfig, int | None, int, str]:
    """(config, batch size, context length, label) of a shape; --dry-run shrinks the model."""
    cfg = get_preset(shape.preset).replace(attention=shape.attention)
    B, T, label = shape.batch_size, shape.context_length, shape.preset
    if dry_run:
        T = DRY_CONTEXT
        B = None if B is None else min(B, DRY_BATCH)
        cfg = cfg.replace(**DRY_SIZES)
        label = f"{shape.preset}-tiny"
    return cfg.replace(context_length=T), B, T, label


def file_stem(label: str, gpu_tag: str, dtype: str, batch: int | None, context: int, attention: str,
              checkpointing: bool = False) -> str:
    """`cs336-gpt2-small_H100-SXM_float32_B8_T1024_naive` (B omitted when None)."""
    parts = [label, gpu_tag, dtype] + ([f"B{batch}"] if batch is not None else [])
    parts += [f"T{context}", attention]
    return "_".join(parts) + ("_ckpt" if checkpointing else "")


@dataclass
class StepRecord:
    """What happened to a step: `status` "ok" | "out of memory" | "failed" | "over budget" |
    "skipped" (the plan's budget was spent) | "not run" (yet); `files` the measurement JSONs it wrote."""

    spec: StepSpec
    status: str = "not run"
    seconds: float = 0.0
    budget_s: float = 0.0
    error: str = ""
    files: list[str] = field(default_factory=list)
