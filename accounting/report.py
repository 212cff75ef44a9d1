"""`build_report`: every accounting quantity for one config and step shape, as typed sections.

The computing layer returns raw ints / floats and sympy formulas; rendering (table, markdown, JSON,
LaTeX) lives in accounting.render. Integer counts are exact Python ints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from accounting.activations import (
    activation_rows, checkpoint_recompute_flops, checkpointed_activation_bytes,
)
from accounting.config import ModelConfig
from accounting.dataset import chinchilla_tokens
from accounting.conventions import DEFAULT_CONVENTIONS, DTYPE_BYTES, TRAINING_DTYPES, Conventions
from accounting.errors import UserError
from accounting.flops import (
    attention_recompute_flops, backward_flops_rows, forward_flops_rows, kaplan_6nd_formula, palm_formula,
)
from accounting.hardware import GPU, Link, custom_gpu, get_gpu
from accounting.layout import Layout
from accounting.parallel_report import ParallelSection, parallel_section
from accounting.memory import BatchFit, largest_batch_size, memory_rows
from accounting.timeline import Timeline, memory_timeline
from accounting.nonmatmul import nonmatmul_forward_rows
from accounting.optimizer import ADAMW_OPS, adamw_flops_per_element, adamw_state_bytes
from accounting.parameters import matmul_parameters_formula, non_embedding_parameters_formula, parameter_rows
from accounting.rows import Row, evaluate, total
from accounting.symbols import values
from accounting.training_time import training_seconds

DEFAULT_GPU = "H100-SXM"
DEFAULT_STEPS = 10_000


@dataclass(frozen=True)
class Estimate:
    """A rule-of-thumb estimate beside the exact value: `value` FLOPs, its `ratio` to the exact."""

    name: str
    formula: object
    value: int
    ratio: float
    n_meaning: str


@dataclass(frozen=True)
class ParameterSection:
    rows: list[Row]
    total: int
    non_embedding: int                 # without token and position embeddings, lm_head kept (Kaplan)
    non_embedding_without_head: int    # also without lm_head (0 difference when tied)
    matmul: int                        # weights multiplying activations, the head even when tied
    bytes_by_dtype: dict[str, int]


@dataclass(frozen=True)
class FlopSection:
    forward: list[Row]
    backward: list[Row]
    forward_total: int
    backward_total: int
    train_step: int
    nonmatmul_forward: list[Row]
    attention_recompute: int
    estimates: list[Estimate]


@dataclass(frozen=True)
class MemorySection:
    rows: list[Row]                          # the peak event's composition (accounting.memory)
    peak_bytes: int                          # the timeline's maximum
    activations: dict[str, list[Row]]        # convention -> rows (bytes)
    checkpointed_bytes: int
    checkpoint_recompute_flops: int
    budget_bytes: int
    largest_batch: BatchFit | None  # None: the GPU's memory cannot hold the batch-free part
    timeline: Timeline                       # the step's memory, event by event


@dataclass(frozen=True)
class OptimizerSection:
    state_bytes: int
    flops_per_element: int
    step_flops: int
    ops: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class TrainingSection:
    gpu: str
    peak_flops_per_s: float
    mfu: float
    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float
    chinchilla_tokens: int   # 20 tokens per parameter (Hoffmann et al. 2022)


@dataclass(frozen=True)
class Report:
    """Everything for `config` at a step of `batch_size` x `context_length` in `dtype`."""

    config: ModelConfig
    batch_size: int
    context_length: int
    dtype: str
    parameters: ParameterSection
    flops: FlopSection
    memory: MemorySection
    optimizer: OptimizerSection
    training: TrainingSection
    conventions: Conventions = field(default=DEFAULT_CONVENTIONS)
    parallelism: ParallelSection | None = None  # when a layout is given


def _parameters(cfg: ModelConfig) -> ParameterSection:
    rows = parameter_rows(cfg)
    n = total(rows)
    subs = values(cfg)
    non_embedding = evaluate(non_embedding_parameters_formula(cfg), subs)
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model
    return ParameterSection(rows, n, non_embedding, non_embedding - head,
                            evaluate(matmul_parameters_formula(cfg), subs),
                            {k: n * DTYPE_BYTES[k] for k in ("float32", "bfloat16")})


def _flops(cfg: ModelConfig, b: int, t: int) -> FlopSection:
    fwd, bwd = forward_flops_rows(cfg, b, t), backward_flops_rows(cfg, b, t)
    step = total(fwd) + total(bwd)
    subs = values(cfg, b, t)
    estimates = []
    for name, formula, meaning in (
        ("6ND", kaplan_6nd_formula(cfg), "N = non-embedding parameters (Kaplan), D = B*T"),
        ("PaLM 6N+12LdT", palm_formula(cfg), "N = matmul weights incl. LM head, per token x B*T"),
    ):
        value = evaluate(formula, subs)
        estimates.append(Estimate(name, formula, value, value / step, meaning))
    recompute = attention_recompute_flops(cfg, b, t) if cfg.attention == "sdpa" else 0
    return FlopSection(fwd, bwd, total(fwd), total(bwd), step, nonmatmul_forward_rows(cfg, b, t),
                       recompute, estimates)


def _resolve_gpu(gpu: str | GPU | None, peak_flops_per_s: float | None,
                 memory_budget_bytes: int | None) -> tuple[GPU, int]:
    base = gpu if isinstance(gpu, GPU) else get_gpu(gpu or DEFAULT_GPU)
    if peak_flops_per_s is not None:
        base = custom_gpu(peak_flops_per_s, base.memory_bytes, name=f"{base.name} (peak given)")
    return base, base.memory_bytes if memory_budget_bytes is None else memory_budget_bytes


def _fit(cfg: ModelConfig, budget: int, t: int, dtype: str, explicit: bool, optimizer: str,
         checkpointing: bool, convention: str) -> BatchFit | None:
    """The largest batch; a user-given budget below the fixed memory is an error (UserError), a
    GPU's memory below it just means nothing fits (None)."""
    try:
        return largest_batch_size(cfg, budget, t, dtype, convention, optimizer=optimizer,
                                  checkpointing=checkpointing)
    except ValueError:
        if explicit:
            raise
        return None


def build_report(cfg: ModelConfig, *, batch_size: int, context_length: int | None = None,
                 dtype: str = "float32", gpu: str | GPU | None = None, mfu: float = 0.5,
                 steps: int = DEFAULT_STEPS, memory_budget_bytes: int | None = None,
                 peak_flops_per_s: float | None = None, optimizer: str = "reference",
                 checkpointing: bool = False, activations: str = "implementation",
                 layout: Layout | None = None, link: str | Link | None = None) -> Report:
    """The full report. `gpu` (name in GPUS, a GPU, or None = H100-SXM) gives the peak FLOP/s for
    `dtype` and the memory budget unless `peak_flops_per_s` / `memory_budget_bytes` are given.
    `optimizer` ("reference" | "foreach" | "fused") and `checkpointing` pick the training path
    whose memory timeline gives the peak. `activations` is the convention of the peak and the
    largest batch: "implementation" (the timeline's maximum) or "textbook" (CS336's list, the
    static sum of weights, gradients, AdamW state and those activations); both conventions'
    activation tables are in the report either way. `layout` (accounting.layout.Layout) adds the
    `parallelism` section: per-GPU memory, communication on `link` (a name in
    accounting.hardware.LINKS; default NVLink-H100) and time, with `batch_size` the global batch
    (split over the data-parallel ranks)."""
    if dtype not in TRAINING_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(TRAINING_DTYPES)}, got {dtype!r}")
    t = cfg.context_length if context_length is None else context_length
    values(cfg, batch_size, t)  # validates the sizes
    device, budget = _resolve_gpu(gpu, peak_flops_per_s, memory_budget_bytes)
    peak = device.peak(dtype)
    mem_rows = memory_rows(cfg, batch_size, t, dtype, activations, optimizer=optimizer,
                           checkpointing=checkpointing)
    memory = MemorySection(
        mem_rows, total(mem_rows),
        {c: activation_rows(cfg, batch_size, t, c, dtype) for c in ("implementation", "textbook")},
        checkpointed_activation_bytes(cfg, batch_size, t, dtype=dtype),
        checkpoint_recompute_flops(cfg, batch_size, t), budget,
        _fit(cfg, budget, t, dtype, memory_budget_bytes is not None, optimizer, checkpointing, activations),
        memory_timeline(cfg, batch_size, t, dtype, optimizer, checkpointing),
    )
    params = _parameters(cfg)
    flops = _flops(cfg, batch_size, t)
    opt_dtype = "float32"  # float32 runs and bf16 mixed precision both keep AdamW state in float32
    path = dict(optimizer=optimizer, checkpointing=checkpointing)  # the training path (by name)
    optimizer = OptimizerSection(adamw_state_bytes(cfg, opt_dtype), adamw_flops_per_element(),
                                 adamw_flops_per_element() * params.total, ADAMW_OPS)
    seconds = training_seconds(cfg, batch_size=batch_size, context_length=t, steps=steps,
                               peak_flops_per_s=peak, mfu=mfu)
    tokens = steps * batch_size * t
    training = TrainingSection(device.name, peak, mfu, steps, tokens, seconds, tokens / seconds,
                               chinchilla_tokens(params.total))
    parallelism = None
    if layout is not None:
        parallelism = parallel_section(cfg, layout, batch_size=batch_size, context_length=t,
                                       dtype=dtype, peak_flops_per_s=peak, mfu=mfu,
                                       budget_bytes=budget, steps=steps, link=link, **path)
    return Report(cfg, batch_size, t, dtype, params, flops, memory, optimizer, training,
                  dataclasses.replace(DEFAULT_CONVENTIONS, activation=activations),
                  parallelism=parallelism)
