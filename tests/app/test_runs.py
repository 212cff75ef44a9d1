"""Training jobs of the Train view: capped and queued, reproducible whatever else runs, and their
throughput reported as averages over time, not the last interval (explorer.runs, explorer.rates)."""

from __future__ import annotations

import numpy as np
import pytest

from accounting.config import ModelConfig
from explorer import rates, runs

CFG = ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=48)
TOKENS = np.random.default_rng(0).integers(0, 64, size=4_000).astype(np.uint16)


def _tcfg(steps: int = 30):
    from model import TrainConfig

    return TrainConfig(batch_size=4, steps=steps, max_lr=3e-3, min_lr=3e-4, warmup_iters=3, eval_interval=10,
                       eval_batches=2, checkpoint_interval=0, log_interval=1, device="cpu", val_fraction=0.1)


def _losses(job_id: str) -> dict[str, list]:
    job = runs.get_job(job_id)
    assert job.wait(120), "the job did not end"
    return {r.label: [(e["type"], e["step"], e.get("loss", e.get("val_loss"))) for e in r.events
                      if e["type"] in ("step", "eval")] for r in job.snapshot()}


def test_two_concurrent_jobs_reproduce_their_solo_losses(monkeypatch):
    monkeypatch.setenv(runs.MAX_JOBS_ENV, "2")
    jobs = (["baseline", "no RoPE"], ["SiLU FFN"])
    solo = [_losses(runs.start_job(CFG, _tcfg(), TOKENS, v)) for v in jobs]
    together = [runs.start_job(CFG, _tcfg(), TOKENS, v) for v in jobs]
    assert all(runs.get_job(j).queue_position is None for j in together)  # both started at once
    assert [_losses(j) for j in together] == solo


def test_jobs_beyond_the_cap_wait_in_a_queue(monkeypatch):
    monkeypatch.setenv(runs.MAX_JOBS_ENV, "1")
    first = runs.get_job(runs.start_job(CFG, _tcfg(200), TOKENS, ["baseline"]))
    second = runs.get_job(runs.start_job(CFG, _tcfg(5), TOKENS, ["baseline"]))
    third = runs.get_job(runs.start_job(CFG, _tcfg(5), TOKENS, ["baseline"]))
    assert (second.queue_position, third.queue_position) == (1, 2)
    assert second.snapshot()[0].status == "queued" and second.running
    third.cancel()  # leaves the queue, never starts
    assert third.wait(5) and third.snapshot()[0].status == "cancelled" and second.queue_position == 1
    first.cancel()
    assert first.wait(60) and second.wait(60)
    assert second.snapshot()[0].status == "done"


def test_max_running_is_half_the_cores_unless_set(monkeypatch):
    monkeypatch.delenv(runs.MAX_JOBS_ENV, raising=False)
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 8)
    assert runs.max_running() == 4
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 1)
    assert runs.max_running() == 1
    monkeypatch.setenv(runs.MAX_JOBS_ENV, "3")
    assert runs.max_running() == 3


def test_rates_are_means_over_time_by_hand():
    # 1,000 tokens per step; steps logged at 1 s, 2 s, then a slow patch, then fast again
    events = [{"type": "step", "step": s, "tokens": 1000 * s, "wall_s": w} for s, w in
              ((1, 1.0), (2, 2.0), (3, 12.0), (13, 13.0), (14, 13.5))] + [{"type": "eval", "step": 14}]
    r = rates.throughput(events, window_s=10.0)
    assert (r.steps, r.tokens, r.elapsed_s) == (14, 14_000, 13.5)
    assert r.average_tokens_per_s == 14_000 / 13.5
    # the latest logged step at least 10 s before 13.5 s is the one at 2 s (2,000 tokens)
    assert r.recent_tokens_per_s == (14_000 - 2_000) / (13.5 - 2.0)
    short = rates.throughput(events[:2], window_s=10.0)  # less than a window: from the start
    assert short.recent_tokens_per_s == short.average_tokens_per_s == 1000.0
    assert rates.throughput([]).average_tokens_per_s is None
    assert rates.mfu(1000.0, 6e6, 1e12) == pytest.approx(0.006)
