"""The reusable training loop shared by the CLI, the Streamlit app and the experiments runner.

`train(model_cfg, train_cfg, train_data, ...)` runs AdamW with a cosine schedule on random
windows of a token array, reports progress through `on_event(dict)`, stops cleanly on a
`threading.Event`, flags (never raises on) a non-finite loss, and writes `ckpt.pt` + `log.jsonl`
to `out_dir`. On CPU it is deterministic given `train_cfg.seed`, and resuming from a checkpoint
continues the uninterrupted loss trajectory exactly (model, optimizer, the run's generator and
sampler states are all checkpointed). A run draws from its own generators only: the initial
weights and dropout masks from a torch.Generator on the run's device seeded with the seed
(TransformerLM(cfg, generator=...)), the batches from a numpy Generator; so runs in concurrent
threads of one process give the losses each gives alone (the explorer runs them so), except
attention="sdpa" with dropout > 0, whose kernel draws from torch's default generator.

Events (one dict each; `step` counts completed optimizer steps):
  {"type": "step", "step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "wall_s", "mfu"}
   (+ "peak_flops_per_s", "peak_source" when a peak is known)
  {"type": "eval", "step", "val_loss", "val_perplexity"}
  {"type": "checkpoint", "step", "path"}
  {"type": "end", "step", "reason"}   reason: "done" | "stopped" | "diverged"
`mfu` is model FLOPs utilization: exact matmul FLOPs per step (2mnp per matmul, forward + backward,
from `accounting.flops.train_step_flops`; activation checkpointing's recompute is not model FLOPs
and is not counted) times steps/s, over a peak FLOP/s: `peak_flops_per_s` when given (peak_source
"user-given"), else on CUDA the GPU's dense peak for the run's matmul dtype from
`accounting.hardware` (peak_source names the table entry); None when no peak is known.

Fast paths (TrainConfig): optimizer="foreach"|"fused" (model.fast_optim.FastAdamW, the same update),
activation_checkpointing, compile, dtype="bfloat16"; the model's attention="sdpa" is a ModelConfig
variant.

Each step is `training_step`: forward, loss, backward, clip, AdamW step, then
zero_grad(set_to_none=True), the loop whose memory accounting.timeline accounts for; no gradients
exist during the forward. Before building anything `train` checks that the predicted peak of that
step (accounting.timeline) fits the memory free on the device (model.guard), raising
model.guard.InsufficientMemory (a ValueError) otherwise, unless check_memory=False.

Parallel layouts: if torch.distributed is initialized, the model is laid out as
`train_cfg.parallel` ("ddp", "zero2", "zero3") over the data-parallel ranks times
`train_cfg.tensor_parallel` K (accounting.layout.Layout; applied by model/parallelize.py on a
("dp", "tp") device mesh). Each data-parallel rank samples `batch_size` sequences from its own
generator (`batch_generator(seed, dp_rank)`; the K ranks of a tensor-parallel group read the same
ones), so the global batch per step is batch_size x world_size / K sequences, with gradients
averaged over the data-parallel ranks. Rank 0 emits events and writes the log; the logged loss is
the mean over ranks. DDP and single-process runs checkpoint to ckpt.pt; sharded layouts (zero2,
zero3, K > 1) to the DCP folder ckpt.dcp/ (model.dcp_checkpoint), and either kind resumes under
any layout.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist

from accounting.atomic import atomic_write_text
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.hardware import match_gpu, matmul_dtype
from accounting.layout import Layout
from model.checkpoint import checkpoint_model_config, read_checkpoint, save_checkpoint
from model.data import check_length, get_batch, resolve_device
from model.loss import clip_gradients, cross_entropy
from model.optim import AdamW, cosine_lr
from model.train_config import TrainConfig

Event = dict[str, Any]
CHECKPOINT_NAME = "ckpt.pt"
SHARDED_CHECKPOINT_NAME = "ckpt.dcp"  # a folder (model.dcp_checkpoint)
LOG_NAME = "log.jsonl"
_RANK_SEED_STRIDE = 1_000_003  # keeps rank streams apart for any realistic seed
_EVAL_SEED_OFFSET = 7_919  # validation batches use their own fixed stream


@dataclass
class TrainResult:
    """What a run ended with. `reason`: "done", "stopped" (stop_event) or "diverged" (NaN/inf loss)."""

    steps: int
    reason: str
    message: str
    final_loss: float | None = None
    final_val_loss: float | None = None
    checkpoint: Path | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.reason == "diverged"

    def losses(self) -> list[float]:
        return [e["loss"] for e in self.events if e["type"] == "step"]


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                  y: torch.Tensor, *, loss_fn: Callable = cross_entropy, autocast: Callable = nullcontext,
                  max_norm: float = math.inf, parameters=None, clip: Callable = clip_gradients,
                  mark: Callable[[str], None] | None = None) -> tuple[torch.Tensor, float]:
    """One training step, the loop accounting.timeline describes (and validation measures):

        logits = model(x)  (under autocast()); loss = loss_fn(logits, y); del logits
        loss.backward(); clip_gradients(parameters, max_norm); optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    The gradients are freed at the end of the step, so none exist during the next forward (the
    update is the same as zeroing them before the backward). `parameters` defaults to the
    model's; `clip` is clip_gradients (validation passes a twin that does not read the norm on
    the meta device); `mark(phase)` is called as each phase starts ("forward", "loss", "backward",
    "clip", "optimizer", "zero_grad") and with "end" (validation.memtrack's phase boundaries).
    Returns the loss tensor (a scalar, alive until the caller drops it) and the gradient norm."""
    mark = mark or (lambda phase: None)
    mark("forward")
    with autocast():
        logits = model(x)  # (B, T, V)
    mark("loss")
    loss = loss_fn(logits, y)
    del logits  # not saved by the loss: dies before the backward
    mark("backward")
    loss.backward()
    mark("clip")
    grad_norm = clip(model.parameters() if parameters is None else parameters, max_norm)
    mark("optimizer")
    optimizer.step()
    mark("zero_grad")
    optimizer.zero_grad(set_to_none=True)
    mark("end")
    return loss, grad_norm


def batch_generator(seed: int, rank: int = 0) -> np.random.Generator:
    """The training-batch sampler of process `rank` for a run seeded with `seed`."""
    return np.random.default_rng(seed + _RANK_SEED_STRIDE * rank)


def split_tail(data: npt.NDArray, fraction: float) -> tuple[npt.NDArray, npt.NDArray | None]:
    """(head, tail) with the last `fraction` of tokens as tail (views, no copy); None if fraction 0."""
    if fraction <= 0:
        return data, None
    cut = len(data) - int(len(data) * fraction)
    return data[:cut], data[cut:]


def check_vocab(data: npt.NDArray, vocab_size: int, name: str = "train data") -> None:
    """ValueError unless every id in `data` is < vocab_size (one pass over the data)."""
    top = int(np.max(data))
    if top >= vocab_size or int(np.min(data)) < 0:
        raise UserError(f"{name} holds token id {top} but vocab_size is {vocab_size}; "
                         f"use --vocab-size {top + 1} or more")


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, train_data: npt.NDArray,
          val_data: npt.NDArray | None = None, *, out_dir: str | Path | None = None,
          resume_from: str | Path | None = None, on_event: Callable[[Event], None] | None = None,
          stop_event: threading.Event | None = None, progress: bool = False,
          flops_per_step: int | None = None, peak_flops_per_s: float | None = None,
          check_memory: bool = True,
          on_start: Callable[[Layout, int], None] | None = None) -> TrainResult:
    """Train a TransformerLM built from `model_cfg`; see the module docstring for the contract.

    on_start(layout, global_batch) is called on rank 0 once the run is set up (configs, data and
    layout checked, model laid out, checkpoint loaded), before the first step.
    val_data None: the tail `train_cfg.val_fraction` of `train_data` is held out (0 = no eval).
    flops_per_step overrides the FLOPs used for `mfu` (default: accounting's exact count);
    peak_flops_per_s is the device's peak for `mfu` (default: the CUDA GPU table, else no MFU).
    check_memory: raise model.guard.InsufficientMemory before building anything when the step's
    predicted peak exceeds the device's free memory (False: run anyway).
    """
    if peak_flops_per_s is not None and not peak_flops_per_s > 0:
        raise UserError(f"peak_flops_per_s must be positive, got {peak_flops_per_s}")
    if check_memory:
        from model.guard import guard_step

        # a DDP rank (torchrun has joined the group) holds every gradient in DDP's buckets
        ddp = (_dist_rank_world()[1] > 1 and train_cfg.parallel == "ddp"
               and train_cfg.tensor_parallel == 1)
        guard_step(model_cfg, train_cfg.batch_size, resolve_device(train_cfg.device), dtype=train_cfg.dtype,
                   optimizer=train_cfg.optimizer, checkpointing=train_cfg.activation_checkpointing,
                   gradient_buckets=ddp)
    with _deterministic_on_cpu(train_cfg.device), _cpu_threads(train_cfg.threads):
        run = _Run(model_cfg, train_cfg, train_data, val_data, out_dir, on_event, stop_event,
                   peak_flops_per_s)
        if resume_from is not None:
            run.resume(resume_from)
        if flops_per_step is not None:
            run.flops_per_step = flops_per_step
        if on_start is not None and run.rank == 0:
            on_start(run.layout, run.global_batch)
        return run.loop(progress)


def default_threads() -> int:
    """torch CPU threads for a run that names none: half the CPUs this process may run on
    (os.sched_getaffinity, else os.cpu_count), divided among the node's torchrun ranks
    (LOCAL_WORLD_SIZE), at least 1. Half leaves the machine's other work (the data sampler, the
    explorer, other jobs) a core instead of fighting it: on a busy 2-core machine the README's
    300-step run took 190 s with torch's default threads and 26.5 s with one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cpus // 2 // ranks)


@contextmanager
def _cpu_threads(threads: int | None):
    """torch.set_num_threads(threads or default_threads()) for the run, restored afterwards
    (process-wide: runs in concurrent threads share it)."""
    was = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(was)


@contextmanager
def _deterministic_on_cpu(device: str):
    """torch.use_deterministic_algorithms(True) for the run on CPU, restored afterwards.

    Without it, two fresh CPU runs with 2+ threads differ in the 7th digit (the embedding
    backward's accumulating index_put_ is parallel and order-dependent). Process-wide state:
    concurrent runs in threads share it, so it is counted: the first run in sets it, the last
    out restores what was there before. Not on CUDA, where it would demand cuBLAS settings.
    """
    if not str(device).startswith("cpu"):
        yield
        return
    with _DETERMINISTIC_LOCK:
        if _DETERMINISTIC_USERS[0] == 0:
            _DETERMINISTIC_SAVED[:] = [torch.are_deterministic_algorithms_enabled(),
                                       torch.is_deterministic_algorithms_warn_only_enabled()]
            torch.use_deterministic_algorithms(True, warn_only=True)
        _DETERMINISTIC_USERS[0] += 1
    try:
        yield
    finally:
        with _DETERMINISTIC_LOCK:
            _DETERMINISTIC_USERS[0] -= 1
            if _DETERMINISTIC_USERS[0] == 0:
                was, warn_only = _DETERMINISTIC_SAVED
                torch.use_deterministic_algorithms(was, warn_only=warn_only)


_DETERMINISTIC_LOCK = threading.Lock()
_DETERMINISTIC_USERS = [0]       # CPU runs inside _deterministic_on_cpu now
_DETERMINISTIC_SAVED: list = []  # the setting before the first of them


class _Run:
    """State of one training run (model, optimizer, samplers, events); `train` drives it."""

    def __init__(self, model_cfg, train_cfg, train_data, val_data, out_dir, on_event, stop_event,
                 peak_flops_per_s=None):
        from model import TransformerLM  # late: the model core is a sibling module

        self.cfg, self.tcfg = model_cfg, train_cfg
        self.device = resolve_device(train_cfg.device)
        if val_data is None:
            train_data, val_data = split_tail(train_data, train_cfg.val_fraction)
        self.train_data, self.val_data = train_data, val_data
        check_length(train_data, model_cfg.context_length, "train data")
        check_vocab(train_data, model_cfg.vocab_size)
        if val_data is not None:
            check_length(val_data, model_cfg.context_length, "validation data")
            check_vocab(val_data, model_cfg.vocab_size, "validation data")
        self.rank, self.world = _dist_rank_world()
        self.layout = run_layout(model_cfg, train_cfg, self.world)
        self.saving = out_dir is not None  # known on every rank: checkpoints gather RNG states
        self.out_root = Path(out_dir) if self.saving else None  # every rank (sharded checkpoints)
        self.out_dir = self.out_root if self.rank == 0 else None
        self.on_event, self.stop_event = on_event, stop_event
        # the run's own stream (identical init on every rank): concurrent runs do not share one
        self.generator = torch.Generator(device=self.device).manual_seed(train_cfg.seed)
        self.model = TransformerLM(
            model_cfg, device=self.device, activation_checkpointing=train_cfg.activation_checkpointing,
            generator=self.generator)
        self.wrapped, self.dp_rank = self._parallelize()
        self.optimizer = _optimizer(self.model, train_cfg)  # over the (sharded) parameters
        self.sampler = batch_generator(train_cfg.seed, self.dp_rank)
        self.start_step = self.tokens_at_start = 0
        self.last_eval_step: int | None = None
        self.events: list[Event] = []
        self._loss = cross_entropy
        if peak_flops_per_s is not None:
            self.peak, self.peak_source = float(peak_flops_per_s), "user-given"
        else:
            self.peak, self.peak_source = cuda_peak(self.device, train_cfg.dtype) or (None, None)
        # MFU only with a known peak; skip the (sympy) FLOP count otherwise
        self.flops_per_step = _default_flops(model_cfg, self.global_batch) \
            if self.peak is not None else None

    @property
    def global_batch(self) -> int:
        """Sequences per step over all data-parallel ranks."""
        return self.tcfg.batch_size * self.layout.data_parallel

    def _parallelize(self) -> tuple[torch.nn.Module, int]:
        """(the module to call, this rank's data-parallel index): the layout applied in place."""
        if self.world == 1:
            return self.model, 0
        from model.parallelize import init_mesh, parallelize

        mesh = init_mesh(self.layout, self.device.type)
        return parallelize(self.model, self.layout, mesh, self.device), mesh["dp"].get_local_rank()

    def resume(self, path: str | Path) -> None:
        """Continue from a ckpt.pt or a ckpt.dcp/ folder written under any layout."""
        from model.dcp_checkpoint import is_sharded_checkpoint, load_training_state, read_meta

        sharded = is_sharded_checkpoint(path)
        payload = read_meta(path) if sharded else read_checkpoint(path, map_location=self.device)
        saved = checkpoint_model_config(payload)
        if saved != self.cfg:
            diff = [f"{k}={v!r}" for k, v in saved.to_dict().items() if getattr(self.cfg, k) != v]
            raise UserError(f"checkpoint {path} was trained with {', '.join(diff)}")
        self.start_step = int(payload["iteration"])
        if self.start_step >= self.tcfg.steps:
            raise UserError(f"checkpoint {path} is at step {self.start_step} and steps = "
                            f"{self.tcfg.steps} is the run's total: nothing left to train "
                            f"(pass --steps above {self.start_step})")
        if sharded or self.layout.sharded:
            load_training_state(self.model, self.optimizer, path, payload)
        else:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
        extra = payload.get("extra") or {}
        rng = extra.get("rng") or {}
        if "generator" in rng:
            self.generator.set_state(rng["generator"].cpu())
        elif "torch" in rng and self.device.type == "cpu":  # older checkpoints: the default stream
            self.generator.set_state(rng["torch"].cpu())
        if "numpy" in rng:
            np.random.set_state(_decode_np_legacy(rng["numpy"]))
        samplers = rng.get("samplers") or []  # one per data-parallel rank of the saving run
        if self.dp_rank < len(samplers):
            self.sampler.bit_generator.state = json.loads(samplers[self.dp_rank])
        self.events = [e for e in extra.get("events", []) if e.get("step", 0) <= self.start_step]
        self.last_eval_step = next((e["step"] for e in reversed(self.events) if e["type"] == "eval"),
                                   None)
        last = next((e for e in reversed(self.events) if e["type"] == "step"
                     and e["step"] == self.start_step), None)  # a resume may change the batch
        self.tokens_at_start = last["tokens"] if last else self._tokens(self.start_step)

    # ---- the loop -------------------------------------------------------------------------
    def loop(self, progress: bool) -> TrainResult:
        model = self._wrapped_model()
        tcfg, steps = self.tcfg, self.tcfg.steps
        bar = _progress_bar(progress and self.rank == 0, self.start_step, steps)
        reason, message, loss = "done", f"trained {steps} steps", None
        t0 = last_t = time.perf_counter()
        last_step, step = self.start_step, self.start_step
        for it in range(self.start_step, steps):
            if self.stop_event is not None and self.stop_event.is_set():
                reason, message = "stopped", f"stopped at step {step} on request"
                break
            lr = cosine_lr(it, tcfg.max_lr, tcfg.min_lr, tcfg.warmup_iters, tcfg.cycle_iters)
            loss, grad_norm = self._step(model, lr)
            step = it + 1
            bar.update(1)
            if not math.isfinite(loss):
                reason = "diverged"
                message = f"loss became {loss} at step {step} (lr {lr:.3g}); stopped"
                self._emit({"type": "step", "step": step, "loss": loss, "lr": lr,
                            "grad_norm": grad_norm, "tokens": self._tokens_seen(step),
                            "tokens_per_s": None, "wall_s": time.perf_counter() - t0, "mfu": None})
                break
            if step % tcfg.log_interval == 0 or step == steps or it == self.start_step:
                now = time.perf_counter()
                tps = self._tokens(step - last_step) / max(now - last_t, 1e-9)
                last_t, last_step = now, step
                event = {"type": "step", "step": step, "loss": loss, "lr": lr,
                         "grad_norm": grad_norm, "tokens": self._tokens_seen(step),
                         "tokens_per_s": tps, "wall_s": now - t0, "mfu": self._mfu(tps)}
                if self.peak is not None:  # say what the MFU is relative to
                    event.update(peak_flops_per_s=self.peak, peak_source=self.peak_source)
                self._emit(event)
                bar.set_postfix(loss=f"{loss:.4f}")
            if self._due(step, tcfg.eval_interval):
                self._evaluate(model, step)
            if self._due(step, tcfg.checkpoint_interval) and step != steps:
                self._checkpoint(step)
        bar.close()
        return self._finish(reason, message, step, loss)

    def _step(self, model: torch.nn.Module, lr: float) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(self.train_data, self.tcfg.batch_size, self.cfg.context_length,
                         self.device, generator=self.sampler)  # (B, T) each
        max_norm = self.tcfg.grad_clip if self.tcfg.grad_clip > 0 else math.inf
        if self.layout.sharded:  # DTensor gradients: the norm from local shards, one all-reduce
            from model.parallelize import clip_gradients as clip
        else:
            clip = clip_gradients
        loss, grad_norm = training_step(model, self.optimizer, x, y, loss_fn=self._loss,
                                        autocast=self._autocast, max_norm=max_norm,
                                        parameters=self.model.parameters(), clip=clip)
        value = loss.detach()
        if self.world > 1:
            dist.all_reduce(value)
            value /= self.world
        return float(value), grad_norm

    @torch.no_grad()
    def _evaluate(self, model: torch.nn.Module, step: int) -> None:
        # a sharded model's forward is collective: every rank evaluates, rank 0 reports
        if self.val_data is None or (self.rank != 0 and not self.layout.sharded):
            return
        model.eval()
        rng = np.random.default_rng(self.tcfg.seed + _EVAL_SEED_OFFSET)  # same batches every eval
        total = 0.0
        for _ in range(self.tcfg.eval_batches):
            x, y = get_batch(self.val_data, self.tcfg.batch_size, self.cfg.context_length,
                             self.device, generator=rng)
            with self._autocast():
                total += float(cross_entropy(self.model(x), y))
        model.train()
        self.last_eval_step = step
        val_loss = total / self.tcfg.eval_batches
        self._emit({"type": "eval", "step": step, "val_loss": val_loss,
                    "val_perplexity": math.exp(min(val_loss, 700.0))})

    def _finish(self, reason: str, message: str, step: int, loss: float | None) -> TrainResult:
        # decided alike on every rank (only rank 0 keeps events; a sharded eval is collective)
        if reason == "done" and self.val_data is not None and self.last_eval_step != step:
            self._evaluate(self.model, step)
        ckpt = self._checkpoint(step) if reason != "diverged" else None
        self._emit({"type": "end", "step": step, "reason": reason, "message": message})
        self._write_log()
        last_eval = next((e for e in reversed(self.events) if e["type"] == "eval"), None)
        return TrainResult(steps=step, reason=reason, message=message, final_loss=loss,
                           final_val_loss=last_eval["val_loss"] if last_eval else None,
                           checkpoint=ckpt, events=list(self.events))

    # ---- helpers --------------------------------------------------------------------------
    def _wrapped_model(self) -> torch.nn.Module:
        model = self.wrapped
        if self.tcfg.compile:
            model = torch.compile(model)
            self._loss = torch.compile(cross_entropy)  # a chain of elementwise ops over (B, T, V)
        model.train()
        return model

    def _autocast(self):
        if self.tcfg.dtype == "bfloat16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _tokens(self, steps: int) -> int:
        return steps * self.global_batch * self.cfg.context_length

    def _tokens_seen(self, step: int) -> int:
        """Tokens trained up to `step`, counting the steps before a resume at their own batch."""
        return self.tokens_at_start + self._tokens(step - self.start_step)

    def _due(self, step: int, interval: int) -> bool:
        return step == self.tcfg.steps or (interval > 0 and step % interval == 0)

    def _mfu(self, tokens_per_s: float) -> float | None:
        if self.peak is None or not self.flops_per_step:
            return None
        steps_per_s = tokens_per_s / self._tokens(1)
        return self.flops_per_step * steps_per_s / (self.peak * self.world)

    def _emit(self, event: Event) -> None:
        if self.rank != 0:
            return
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _checkpoint(self, step: int) -> Path | None:
        if not self.saving:
            return None
        rng = self._rng_states()  # a collective under DDP: every rank takes part
        extra = dict(train_config=self.tcfg.to_dict(), rng=rng, events=list(self.events))
        if self.layout.sharded:  # every rank writes its shards
            from model.dcp_checkpoint import save_sharded

            path = self.out_root / SHARDED_CHECKPOINT_NAME
            save_sharded(self.model, self.optimizer, path, {
                "iteration": step, "model_config": self.cfg.to_dict(), "extra": extra})
            if self.out_dir is None:
                return None
        else:
            if self.out_dir is None:
                return None
            path = self.out_dir / CHECKPOINT_NAME
            save_checkpoint(self.model, self.optimizer, step, path, model_config=self.cfg, **extra)
        self._emit({"type": "checkpoint", "step": step, "path": str(path)})
        self._write_log()
        return path

    def _rng_states(self) -> dict[str, Any]:
        samplers = [json.dumps(self.sampler.bit_generator.state)]
        if self.world > 1:
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, samplers[0])
            # one per data-parallel rank (ranks r = dp_rank * K + tp_rank share a sampler)
            samplers = gathered[::self.layout.tensor_parallel]
        return {"generator": self.generator.get_state(), "torch": torch.get_rng_state(),
                "numpy": _encode_np_legacy(np.random.get_state()), "samplers": samplers}

    def _write_log(self) -> None:
        """Rewrite log.jsonl atomically: it always matches the events up to the last checkpoint."""
        if self.out_dir is not None:
            text = "".join(json.dumps(e) + "\n" for e in self.events)
            atomic_write_text(self.out_dir / LOG_NAME, text)


def run_layout(model_cfg: ModelConfig, train_cfg: TrainConfig, world: int) -> Layout:
    """The layout of a run on `world` processes; UserError (before anything starts) for one that
    cannot run: a tensor-parallel degree not dividing the heads, the key/value heads or d_ff, a
    parallel layout without torchrun, a degree not dividing the world, ZeRO-1, DDP x TP on a 2-D
    mesh, torch.compile of a sharded model."""
    k, strategy = train_cfg.tensor_parallel, train_cfg.parallel
    Layout(k, strategy, k).check_model(model_cfg)  # a config error first
    if world == 1 and k > 1:
        raise UserError(f"--tensor-parallel {k} needs torchrun with a multiple of {k} processes: "
                        f"torchrun --nproc-per-node {k} -m model.train ...")
    if world == 1 and strategy != "ddp":
        raise UserError(f"--parallel {strategy} needs torchrun with several processes: "
                        f"torchrun --nproc-per-node N -m model.train ...")
    layout = Layout(world, strategy, k)
    layout.check_runnable()
    if layout.sharded and train_cfg.compile:
        raise UserError("--compile is not supported with zero2 / zero3 / --tensor-parallel")
    return layout


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _progress_bar(enabled: bool, start: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True)


def _encode_np_legacy(state: tuple) -> list:
    # numpy's legacy state holds a uint32 key array; store it as a tensor for weights_only loads
    name, key, pos, has_gauss, gauss = state
    return [name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _decode_np_legacy(saved: list) -> tuple:
    name, key, pos, has_gauss, gauss = saved
    return name, key.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss


def _default_flops(cfg: ModelConfig, global_batch: int) -> int:
    """Exact matmul FLOPs of one training step (accounting.flops.train_step_flops; imported here so
    that `import model` does not load sympy)."""
    from accounting.flops import train_step_flops

    return int(train_step_flops(cfg, global_batch, cfg.context_length))


def cuda_peak(device: torch.device, dtype: str) -> tuple[float, str] | None:
    """(dense peak FLOP/s, where it comes from) of a CUDA device the accounting's GPU table knows,
    for a run in `dtype` ("float32" means TF32 when torch allows TF32 matmuls); else None."""
    if device.type != "cuda":
        return None
    gpu = match_gpu(torch.cuda.get_device_name(device))
    if gpu is None:
        return None
    kind = matmul_dtype(dtype, torch.backends.cuda.matmul.allow_tf32)
    return gpu.peak(kind), f"accounting GPU table: {gpu.name} {kind} ({gpu.source})"


def _optimizer(model: torch.nn.Module, tcfg: TrainConfig) -> torch.optim.Optimizer:
    """The AdamW implementation `tcfg.optimizer` names (all compute the same update)."""
    kwargs = dict(lr=tcfg.max_lr, betas=tcfg.betas, eps=tcfg.eps, weight_decay=tcfg.weight_decay)
    if tcfg.optimizer == "reference":
        return AdamW(model.parameters(), **kwargs)
    from model.fast_optim import FastAdamW

    return FastAdamW(model.parameters(), implementation=tcfg.optimizer, **kwargs)
