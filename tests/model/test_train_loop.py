"""The training loop: overfitting one batch, exact resume continuity, stop, NaN stop, bf16, errors."""

import json
import math
import threading

import numpy as np
import pytest
import torch

from accounting.config import ModelConfig
from model import TrainConfig, read_checkpoint
from model.trainer import train

CFG = ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=48)
TCFG = TrainConfig(batch_size=4, steps=8, max_lr=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=4,
                   eval_batches=2, checkpoint_interval=4, log_interval=1, val_fraction=0.0, seed=3)
DATA = np.random.default_rng(0).integers(0, 64, size=2_000).astype(np.uint16)


def _step_losses(result):
    return {e["step"]: e["loss"] for e in result.events if e["type"] == "step"}


def test_overfits_one_batch():
    # T + 1 tokens: every sampled window is the whole array, so each step sees the same batch.
    one = np.random.default_rng(1).integers(0, 64, size=CFG.context_length + 1)
    cfg = TCFG.replace(steps=60, max_lr=1e-2, min_lr=1e-2, warmup_iters=0, weight_decay=0.0)
    result = train(CFG, cfg, one)
    losses = result.losses()
    assert losses[0] > 3.5  # about log(64) = 4.16 at init
    assert result.final_loss < 0.1 * losses[0], losses[-5:]


def test_resume_continues_the_same_trajectory(tmp_path):
    straight = train(CFG, TCFG, DATA)
    stop = threading.Event()

    def stop_after_four(event):
        if event["type"] == "step" and event["step"] == 4:
            stop.set()

    first = train(CFG, TCFG, DATA, out_dir=tmp_path, on_event=stop_after_four, stop_event=stop)
    assert first.reason == "stopped" and first.steps == 4
    second = train(CFG, TCFG, DATA, out_dir=tmp_path, resume_from=tmp_path / "ckpt.pt")
    assert second.reason == "done" and second.steps == 8
    want = _step_losses(straight)
    assert len(want) == 8
    assert {**_step_losses(first), **_step_losses(second)} == want  # bit-identical on CPU
    # log.jsonl holds the whole history (first half restored from the checkpoint), then the end
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {e["step"]: e["loss"] for e in logged if e["type"] == "step"} == want
    assert logged[-1] == {"type": "end", "step": 8, "reason": "done", "message": "trained 8 steps"}
    assert read_checkpoint(tmp_path / "ckpt.pt")["iteration"] == 8


def test_same_seed_same_run_other_seed_other_run():
    a, b = train(CFG, TCFG.replace(steps=3), DATA), train(CFG, TCFG.replace(steps=3), DATA)
    c = train(CFG, TCFG.replace(steps=3, seed=4), DATA)
    assert a.losses() == b.losses() and a.losses() != c.losses()


def test_nan_loss_stops_with_a_flag_not_an_exception(tmp_path):
    bad = TCFG.replace(steps=50, max_lr=1e9, min_lr=1e9, warmup_iters=0, grad_clip=0.0)
    result = train(CFG, bad, DATA, out_dir=tmp_path)
    assert result.diverged and result.steps < 50
    assert not math.isfinite(result.final_loss)
    assert "loss became" in result.message
    assert not (tmp_path / "ckpt.pt").exists()  # a diverged state is not worth resuming


def test_eval_events_and_bf16_autocast():
    events = []
    cfg = TCFG.replace(steps=4, dtype="bfloat16", val_fraction=0.2)
    result = train(CFG, cfg, DATA, on_event=events.append)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [4]
    assert evals[0]["val_perplexity"] == pytest.approx(math.exp(evals[0]["val_loss"]))
    assert math.isfinite(result.final_loss) and result.final_val_loss == evals[0]["val_loss"]
    step_keys = {"type", "step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "wall_s", "mfu"}
    assert all(set(e) == step_keys for e in events if e["type"] == "step")


def test_vocab_must_cover_the_data():
    with pytest.raises(ValueError, match="vocab_size"):
        train(CFG.replace(vocab_size=10), TCFG, DATA)


def test_train_config_validation_and_json(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="unknown"):
        TCFG.replace(learning_rate=1)
    TCFG.save(tmp_path / "t.json")
    assert TrainConfig.load(tmp_path / "t.json") == TCFG
    assert torch.get_default_dtype() == torch.float32


def test_cpu_runs_use_deterministic_algorithms_and_restore_the_setting():
    # Fresh CPU runs with 2 threads differed in the 7th digit without it (parallel index_put_
    # accumulation in the embedding backward); the setting must not leak out of the run.
    seen = []
    before = torch.are_deterministic_algorithms_enabled()
    train(CFG, TCFG.replace(steps=1), DATA,
                on_event=lambda e: seen.append(torch.are_deterministic_algorithms_enabled()))
    assert seen and all(seen)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_threads_apply_while_training_and_are_restored(monkeypatch):
    import model.trainer as trainer

    before = torch.get_num_threads()
    seen = []
    train(CFG, TCFG.replace(steps=1, threads=3), DATA, on_event=lambda e: seen.append(torch.get_num_threads()))
    assert set(seen) == {3} and torch.get_num_threads() == before
    # the default: half the CPUs the process may use, divided among the node's torchrun ranks
    monkeypatch.setattr(trainer.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert trainer.default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert trainer.default_threads() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert trainer.default_threads() == 1
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        TCFG.replace(threads=0)


def test_mfu_is_flops_rate_over_peak(monkeypatch):
    # No GPU here: stand in a peak of 1e9 FLOP/s and 1e6 FLOPs per step. Then
    # mfu = 1e6 FLOPs * (tokens_per_s / tokens per step) / 1e9, tokens per step = B * T = 64.
    import model.trainer as trainer

    monkeypatch.setattr(trainer, "cuda_peak", lambda device, dtype: (1e9, "test"))
    result = train(CFG, TCFG.replace(steps=2), DATA, flops_per_step=10**6)
    for e in (e for e in result.events if e["type"] == "step"):
        assert e["mfu"] == pytest.approx(1e6 * e["tokens_per_s"] / 64 / 1e9)


def test_accounting_flops_hook_counts_matmuls_of_a_step():
    # Hand count, B=4, T=16, d=32, d_ff=48, V=64, L=2, 2 FLOPs per multiply-add:
    #   per layer: Q,K,V,O 4*2*BTd^2 = 524,288; scores + weighted values 2*2*B*T^2*d = 131,072;
    #              SwiGLU 3*2*BTd*d_ff = 589,824  -> 1,245,184, times 2 layers = 2,490,368
    #   LM head 2*BTdV = 262,144; forward 2,752,512; a step (forward + 2x backward) = 8,257,536
    from model.trainer import _default_flops

    assert _default_flops(CFG, 4) == 8_257_536
