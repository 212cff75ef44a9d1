"""Background training jobs for the Train view (no Streamlit here).

A job trains one or more model variants (the ablations) one after another in a daemon thread
with `model.trainer.train`, appending each trainer event to a thread-safe list. Jobs live in a
module-level registry keyed by job id, so they survive widget changes and reruns; the page keeps
only the id in st.session_state and polls `Job.snapshot()`. `Job.cancel()` sets the threading.Event
passed to the trainer as `stop_event` (the trainer stops after the current step and checkpoints).

At most `max_running()` jobs train at once (default: half the CPU cores, at least one; the
environment variable LM_ACCOUNTING_MAX_TRAINING_JOBS sets another); later jobs wait in a first-in,
first-out queue, their variants "queued", and start as running jobs end. Each run draws from its
own generators (model.trainer), so a job's losses do not depend on what else runs. torch's
intra-op thread count is process-wide: every job sets the same JOB_THREADS, so one job's start
never changes another's arithmetic mid-run.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from accounting.config import ModelConfig

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "no norm": {"norm": "none"},
    "post-norm": {"norm_position": "post"},
    "no RoPE": {"positions": "none"},
    "SiLU FFN": {"ffn": "silu"},
}
"""Ablation name -> config overrides (CS336 assignment 1, section 7)."""

JOB_THREADS = 1
"""torch intra-op threads of every job (one is fastest for these tiny models on a busy machine)."""
MAX_JOBS_ENV = "LM_ACCOUNTING_MAX_TRAINING_JOBS"
_MAX_JOBS = 8  # jobs kept in the registry (finished ones are evicted beyond it)
_REGISTRY: dict[str, "Job"] = {}
_REGISTRY_LOCK = threading.Lock()


def max_running() -> int:
    """How many jobs may train at once: LM_ACCOUNTING_MAX_TRAINING_JOBS if set (a positive
    integer), else half the CPU cores, at least one (the rest serve the pages)."""
    text = os.environ.get(MAX_JOBS_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return max(1, (os.cpu_count() or 1) // 2)


def variant_config(cfg: ModelConfig, name: str) -> ModelConfig:
    """`cfg` with ablation `name` applied. The SiLU FFN gets d_ff = 3/2 of SwiGLU's (rounded up to
    a multiple of 8): two matrices instead of three, so about the same parameter count."""
    overrides = dict(VARIANTS[name])
    if name == "SiLU FFN":
        overrides["d_ff"] = -(-cfg.d_ff * 3 // 2 // 8) * 8
    return cfg.replace(**overrides)


@dataclass
class RunState:
    """One variant of a job: its config, events so far, status and checkpoint.
    status: "queued" | "running" | "done" | "stopped" | "diverged" | "failed" | "cancelled"."""

    label: str
    config: ModelConfig
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = "queued"
    message: str = ""
    checkpoint: Path | None = None

    def losses(self) -> tuple[list[int], list[float], list[int], list[float]]:
        """(steps, train losses, eval steps, val losses)."""
        steps = [e for e in self.events if e["type"] == "step"]
        evals = [e for e in self.events if e["type"] == "eval"]
        return ([e["step"] for e in steps], [e["loss"] for e in steps],
                [e["step"] for e in evals], [e["val_loss"] for e in evals])

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["type"] == kind), None)


class Job:
    """Variants trained one after another in a daemon thread (see module docstring)."""

    def __init__(self, configs: Sequence[tuple[str, ModelConfig]], train_cfg, tokens: np.ndarray,
                 tokenizer: Any = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.train_cfg = train_cfg
        self.tokenizer = tokenizer
        self.threads = JOB_THREADS
        self.out_dir = Path(tempfile.mkdtemp(prefix=f"lm-explorer-{self.id}-"))
        self._runs = [RunState(label, cfg) for label, cfg in configs]
        self._tokens = tokens
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"explorer-train-{self.id}", daemon=True)

    # ---- worker side (no Streamlit calls) ---------------------------------------------------
    def _work(self) -> None:
        try:
            self._train_all()
        finally:
            self._ended.set()
            _QUEUE.finished(self)

    def _train_all(self) -> None:
        import torch

        from model.trainer import train

        torch.set_num_threads(self.threads)  # process-wide: the same value for every job
        for i, run in enumerate(self._runs):
            if self._stop.is_set():
                self._set(i, status="cancelled", message="cancelled before it started")
                continue
            self._set(i, status="running")
            try:
                result = train(run.config, self.train_cfg, self._tokens,
                               out_dir=self.out_dir / f"run{i}", stop_event=self._stop,
                               on_event=lambda event, i=i: self._append(i, event))
            except Exception as exc:  # noqa: BLE001  (shown on the page; never kills the app)
                self._set(i, status="failed", message=f"{type(exc).__name__}: {exc}")
                continue
            self._set(i, status=result.reason, message=result.message, checkpoint=result.checkpoint)

    def _append(self, i: int, event: dict[str, Any]) -> None:
        with self._lock:
            self._runs[i].events.append(dict(event))

    def _set(self, i: int, **changes: Any) -> None:
        with self._lock:
            self._runs[i] = replace(self._runs[i], events=self._runs[i].events, **changes)

    def _cancel_queued(self) -> None:
        """The job never started: every variant cancelled (called by the queue)."""
        for i in range(len(self._runs)):
            self._set(i, status="cancelled", message="cancelled while queued")
        self._ended.set()

    # ---- page side --------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the worker to stop after the current step; variants not started are not started
        (a queued job leaves the queue)."""
        self._stop.set()
        _QUEUE.withdraw(self)

    @property
    def running(self) -> bool:
        """Not ended yet: queued or training."""
        return not self._ended.is_set()

    @property
    def queue_position(self) -> int | None:
        """1 for the next job to start, ...; None when not queued."""
        return _QUEUE.position(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and scripts); True if it ended."""
        return self._ended.wait(timeout)

    def snapshot(self) -> list[RunState]:
        """Copies of the runs' states (safe to read while the worker appends)."""
        with self._lock:
            return [replace(r, events=list(r.events)) for r in self._runs]


class _Queue:
    """First in, first out; at most max_running() jobs' threads alive at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._running: set[Job] = set()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._waiting.append(job)
            self._fill()

    def finished(self, job: Job) -> None:
        with self._lock:
            self._running.discard(job)
            self._fill()

    def withdraw(self, job: Job) -> None:
        with self._lock:
            if job not in self._waiting:
                return
            self._waiting.remove(job)
        job._cancel_queued()

    def position(self, job: Job) -> int | None:
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def _fill(self) -> None:
        while self._waiting and len(self._running) < max_running():
            job = self._waiting.pop(0)
            self._running.add(job)
            job._thread.start()


_QUEUE = _Queue()


def start_job(cfg: ModelConfig, train_cfg, tokens: np.ndarray, variants: Sequence[str],
              tokenizer: Any = None) -> str:
    """Queue training `variants` of `cfg` on `tokens` in the background (it starts at once when
    fewer than max_running() jobs train); return the job id."""
    if not variants:
        raise ValueError("pick at least one variant to train")
    configs = [(name, variant_config(cfg, name)) for name in variants]
    job = Job(configs, train_cfg, tokens, tokenizer)
    with _REGISTRY_LOCK:
        _evict()
        _REGISTRY[job.id] = job
    _QUEUE.submit(job)
    return job.id


def _evict() -> None:
    """Drop the oldest finished jobs (and their files) beyond _MAX_JOBS."""
    finished = [k for k, j in _REGISTRY.items() if not j.running]
    while len(_REGISTRY) >= _MAX_JOBS and finished:
        old = _REGISTRY.pop(finished.pop(0))
        shutil.rmtree(old.out_dir, ignore_errors=True)


def get_job(job_id: str | None) -> Job | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.get(job_id) if job_id else None


@dataclass(frozen=True)
class Artifacts:
    """What a job left: every finished variant's checkpoint (label, path), and the tokenizer."""

    checkpoints: tuple[tuple[str, Path], ...]
    tokenizer_zip: bytes | None


def tokenizer_zip(tokenizer: Any) -> bytes:
    """The tokenizer's files (Tokenizer.save: vocab, merges, special tokens) in one zip archive."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).iterdir()):
                archive.write(path, path.name)
    return buffer.getvalue()


def artifacts(job_id: str | None) -> Artifacts | None:
    """Every finished variant's checkpoint (and the job's tokenizer) of job `job_id`."""
    job = get_job(job_id)
    if job is None:
        return None
    done = tuple((r.label, Path(r.checkpoint)) for r in job.snapshot()
                 if r.checkpoint is not None and Path(r.checkpoint).is_file())
    if not done and job.tokenizer is None:
        return None
    return Artifacts(done, tokenizer_zip(job.tokenizer) if job.tokenizer is not None else None)
