"""The memory guard: a step whose predicted peak (accounting.timeline) exceeds the free memory is
refused before anything is allocated or written: one line, exit 2, both numbers and the largest
batch that fits; --force (check_memory=False) runs anyway."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accounting import largest_batch_size, peak_memory_bytes
from accounting.cli_support import run_cli
from accounting.config import ModelConfig
from accounting.guard import InsufficientMemory, check_fits
from model.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
TINY = ModelConfig(vocab_size=256, context_length=8, d_model=16, num_layers=1, num_heads=2, d_ff=24)
TINY_FLAGS = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "24",
              "--vocab-size", "256", "--context-length", "8"]


def test_check_fits_names_both_numbers_and_the_largest_batch():
    peak = peak_memory_bytes(TINY, 4)
    ok = check_fits(TINY, 4, peak, where="cpu (available RAM)")
    assert ok.fits and ok.largest_batch == largest_batch_size(TINY, peak).batch_size >= 4
    tight = peak_memory_bytes(TINY, 2)
    no = check_fits(TINY, 4, tight, where="cpu (available RAM)")
    assert not no.fits and no.largest_batch == 2
    assert f"{peak:,} bytes" in no.message and f"{tight:,} bytes" in no.message
    assert "the largest batch that fits is 2" in no.message and "\n" not in no.message
    nothing = check_fits(TINY, 1, 1000)  # not even the weights
    assert nothing.largest_batch is None and "the largest batch that fits: none" in nothing.message


def test_guard_predicts_the_kernel_that_runs(monkeypatch):
    """On CPU, sdpa with dropout runs torch's math decomposition (the CPU flash kernel has no
    dropout): the guard checks that program's peak, larger than the fused kernel's; on CUDA the
    fused kernel's."""
    import model.guard

    cfg = TINY.replace(attention="sdpa", dropout=0.1)
    math, fused = (peak_memory_bytes(cfg, 4, sdpa_backend=b) for b in ("math", "fused"))
    assert math > fused
    monkeypatch.setattr(model.guard, "free_memory_bytes", lambda device: 10**12)
    assert model.guard.guard_step(cfg, 4, "cpu").peak_bytes == math
    assert model.guard.guard_step(cfg.replace(dropout=0.0), 4, "cpu").peak_bytes == peak_memory_bytes(
        cfg.replace(dropout=0.0), 4)


def test_cpu_ranks_of_a_node_share_its_ram(monkeypatch):
    """Under torchrun with 4 ranks on one node each CPU rank may use a quarter of the available RAM:
    a step that fits the whole RAM but not a quarter is refused, naming the split; CUDA ranks have
    a GPU each."""
    import model.guard

    peak = peak_memory_bytes(TINY, 4)
    monkeypatch.setattr(model.guard, "free_memory_bytes", lambda device: 2 * peak)
    assert model.guard.guard_step(TINY, 4, "cpu").free_bytes == 2 * peak  # one process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(InsufficientMemory, match=r"free on cpu \(available RAM / 4 ranks on this node\)"):
        model.guard.guard_step(TINY, 4, "cpu")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    check = model.guard.guard_step(TINY, 4, "cpu")  # 2 peak // 2 ranks: exactly fits
    assert check.fits and check.free_bytes == peak


def test_a_ddp_rank_is_guarded_with_its_gradient_buckets(monkeypatch):
    """Under torchrun with DDP each rank holds every gradient in DDP's buckets for the whole step:
    free memory equal to the one-device peak fits one process but not a DDP rank."""
    import model.guard
    import model.trainer
    from model.trainer import train

    one_device = peak_memory_bytes(TINY, 4)
    ddp = peak_memory_bytes(TINY, 4, gradient_buckets=True)
    assert ddp > one_device
    monkeypatch.setattr(model.guard, "free_memory_bytes", lambda device: one_device)
    monkeypatch.setattr(model.trainer, "_dist_rank_world", lambda: (0, 2))  # as under torchrun
    data = np.arange(200, dtype=np.uint16) % 256
    with pytest.raises(InsufficientMemory, match=f"{ddp:,} bytes"):
        train(TINY, TrainConfig(batch_size=4, steps=1, parallel="ddp"), data)


def test_train_refuses_before_building_anything(tmp_path, monkeypatch):
    import model.guard
    from model.trainer import train

    monkeypatch.setattr(model.guard, "free_memory_bytes", lambda device: 10_000)
    data = np.arange(200, dtype=np.uint16) % 256
    out = tmp_path / "run"
    with pytest.raises(InsufficientMemory, match="exceeds the 9.77 KiB"):
        train(TINY, TrainConfig(batch_size=4, steps=1), data, out_dir=out)
    assert not out.exists()
    result = train(TINY, TrainConfig(batch_size=4, steps=1, eval_interval=0, val_fraction=0), data,
                   check_memory=False)
    assert result.steps == 1


def test_train_cli_refuses_and_force_runs(tmp_path, monkeypatch, capsys):
    import model.guard

    monkeypatch.setattr(model.guard, "free_memory_bytes", lambda device: 10_000)
    text = tmp_path / "t.txt"
    text.write_text("tiny tokens " * 50)
    out = tmp_path / "run"
    argv = ["--train-data", str(text), "--out", str(out), *TINY_FLAGS, "--batch-size", "2", "--steps", "1",
            "--no-progress", "--eval-interval", "0"]
    main = importlib.import_module("model.train").main
    assert run_cli(main, argv, prog="python -m model.train") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predicted peak" in err[0] and "--force runs anyway" in err[0]
    assert not out.exists()
    assert run_cli(main, [*argv, "--force"], prog="python -m model.train") == 0
    assert (out / "ckpt.pt").is_file()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_huge_configs_refuse_instantly_in_a_subprocess(tmp_path):
    """GPT-2 XL at B=64 needs more than a terabyte: refused before any allocation on any machine."""
    out = tmp_path / "m.json"
    done = _cli("-m", "validation.measure", "--device", "cpu", "--preset", "cs336-gpt2-xl", "--batch-size", "64",
                "--no-progress", "--format", "json", "--out", str(out))
    assert done.returncode == 2 and not done.stdout and not out.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "exceeds" in lines[0] and "free on cpu (available RAM)" in lines[0], done.stderr
    assert "the largest batch that fits" in lines[0]
    data = tmp_path / "ids.npy"
    np.save(data, np.arange(5000, dtype=np.uint16) % 1000)
    run = tmp_path / "run"
    done = _cli("-m", "model.train", "--train-data", str(data), "--preset", "cs336-gpt2-xl", "--batch-size", "64",
                "--out", str(run), "--no-progress")
    assert done.returncode == 2 and not done.stdout and not run.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "predicted peak" in lines[0] and "the largest batch that fits" in lines[0]
