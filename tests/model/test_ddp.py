"""Data-parallel training (torchrun, 2 CPU processes, gloo) equals one process on the global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from accounting.config import ModelConfig
from model import AdamW, TransformerLM, clip_gradients, cosine_lr, cross_entropy, read_checkpoint
from model.trainer import batch_generator

REPO = Path(__file__).resolve().parents[2]
CFG = ModelConfig(vocab_size=256, context_length=8, d_model=16, num_layers=1, num_heads=2, d_ff=24)
STEPS, BATCH, SEED, LR = 3, 4, 11, 1e-2


def _reference_params(data: np.ndarray) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Single process, written out by hand: each step concatenates both ranks' batches."""
    torch.manual_seed(SEED)
    model = TransformerLM(CFG)
    opt = AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    samplers = [batch_generator(SEED, rank) for rank in range(2)]
    losses = []
    for it in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(it, LR, LR / 10, 1, STEPS)
        xs, ys = zip(*(_batch(data, s) for s in samplers))
        loss = cross_entropy(model(torch.cat(xs)), torch.cat(ys))  # mean over the 2B sequences
        opt.zero_grad()
        loss.backward()
        clip_gradients(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return model.state_dict(), losses


def _batch(data, sampler):
    starts = sampler.integers(0, len(data) - CFG.context_length, size=BATCH)
    windows = torch.as_tensor(np.stack([data[s:s + CFG.context_length + 1] for s in starts]),
                              dtype=torch.long)
    return windows[:, :-1], windows[:, 1:]


def test_two_gloo_ranks_equal_one_process_on_the_global_batch(tmp_path):
    text = ("A small corpus for two ranks. " * 40).encode()
    (tmp_path / "data.txt").write_bytes(text)
    out = tmp_path / "run"
    flags = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--d-ff", "24",
             "--vocab-size", "256", "--context-length", "8", "--batch-size", str(BATCH),
             "--steps", str(STEPS), "--seed", str(SEED), "--max-lr", str(LR), "--min-lr", str(LR / 10),
             "--warmup-iters", "1", "--betas", "0.9", "0.95", "--weight-decay", "0.1",
             "--grad-clip", "1.0", "--log-interval", "1", "--val-fraction", "0", "--no-progress"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "model.train", "--train-data", str(tmp_path / "data.txt"), "--out", str(out), *flags]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    want_state, want_losses = _reference_params(np.frombuffer(text, dtype=np.uint8))
    got = read_checkpoint(out / "ckpt.pt")
    assert got["iteration"] == STEPS
    for name, tensor in want_state.items():
        torch.testing.assert_close(got["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    events = [json.loads(line) for line in res.stdout.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    logged = [e["loss"] for e in steps]
    assert len(logged) == STEPS  # rank 0 alone logs
    np.testing.assert_allclose(logged, want_losses, rtol=1e-5)
    assert steps[-1]["tokens"] == STEPS * 2 * BATCH * CFG.context_length  # global batch counted
