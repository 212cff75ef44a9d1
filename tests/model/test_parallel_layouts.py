"""Parallel layouts on 2 gloo CPU ranks equal one process on the global batch (DDP, ZeRO-2 and
ZeRO-3 with FSDP2, tensor parallelism with DTensor), and a sharded checkpoint resumes exactly, in
its own layout and in others (torch.distributed.checkpoint).

Tolerances (float32): gradients of one forward/backward within atol 1e-6 (observed <= 3e-8: TP
and the data-parallel reductions sum in another order than one process); after 4 AdamW steps at
lr 1e-2, parameters within atol 1e-5 (observed 6e-8 data-parallel, 1.3e-6 TP: Adam's normalized
update amplifies the last-bit differences of near-zero gradients) and logged losses / gradient
norms within rtol 1e-5 (observed <= 1e-7).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import AdamW, TransformerLM, clip_gradients, cosine_lr, cross_entropy, get_batch, read_checkpoint
from model.trainer import batch_generator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import layouts_worker as W  # noqa: E402  (the ranks' script: configs shared with the reference)

GRAD_ATOL, PARAM_ATOL, LOG_RTOL = 1e-6, 1e-5, 1e-5


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Both ranks of layouts_worker.py, run once for every test here."""
    out = tmp_path_factory.mktemp("layouts")
    # the repository on the ranks' path: the worker script runs from tests/model, installed or not
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    port, env = _port(), {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    procs = [subprocess.Popen([sys.executable, str(HERE / "layouts_worker.py"), str(r), "2", str(port),
                               str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for r in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    return out


def _reference_grads() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = TransformerLM(W.CFG)
    x, y = W.global_batch()
    cross_entropy(model(x), y).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _reference_run(dp_ranks: list[int]) -> tuple[dict[str, torch.Tensor], list[float], list[float]]:
    """One process, written out: step `it` concatenates the batches of the data-parallel ranks
    `dp_ranks[it]` (each rank's own sampler, as the trainer draws them)."""
    torch.manual_seed(W.SEED)
    model = TransformerLM(W.CFG)
    t = W.TCFG
    opt = AdamW(model.parameters(), lr=t.max_lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay)
    samplers = [batch_generator(W.SEED, r) for r in range(2)]
    losses, norms = [], []
    for it, ranks in enumerate(dp_ranks):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(it, t.max_lr, t.min_lr, t.warmup_iters, t.steps)
        xs, ys = zip(*(get_batch(W.DATA, t.batch_size, W.CFG.context_length, generator=samplers[r])
                       for r in ranks))
        loss = cross_entropy(model(torch.cat(xs)), torch.cat(ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(clip_gradients(model.parameters(), t.grad_clip))
        opt.step()
        losses.append(float(loss.detach()))
    return model.state_dict(), losses, norms


def _logged(run: Path, key: str, kind: str = "step") -> list[float]:
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [e[key] for e in events if e["type"] == kind]


def _params(run: Path) -> dict[str, torch.Tensor]:
    path = run / "ckpt.dcp" if (run / "ckpt.dcp").is_dir() else run / "ckpt.pt"
    return read_checkpoint(path)["model"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize("layout", list(W.LAYOUTS))
def test_gradients_equal_one_process(runs, layout):
    got = torch.load(runs / f"{layout}-grads.pt")
    assert _max_diff(got, _reference_grads()) <= GRAD_ATOL


@pytest.mark.parametrize("layout", list(W.LAYOUTS))
def test_training_equals_one_process_on_the_global_batch(runs, layout):
    dp = [0] if W.LAYOUTS[layout][1] == 2 else [0, 1]  # TP over both ranks: one data-parallel rank
    want, losses, norms = _reference_run([dp] * W.STEPS)
    assert _max_diff(_params(runs / layout), want) <= PARAM_ATOL
    np.testing.assert_allclose(_logged(runs / layout, "loss"), losses, rtol=LOG_RTOL)
    np.testing.assert_allclose(_logged(runs / layout, "grad_norm"), norms, rtol=LOG_RTOL)
    assert _logged(runs / layout, "tokens")[-1] == W.STEPS * len(dp) * W.BATCH * W.CFG.context_length
    assert _logged(runs / layout, "step", "eval") == [3, 4]  # every rank evaluated, no hang


def test_tensor_parallel_collectives_under_bf16_autocast(runs):
    """Forward all-reduces carry bf16 matmul outputs, backward ones the float32 residual gradient."""
    from collections import Counter

    from accounting.communication import collectives
    from accounting.layout import Layout

    measured = Counter((c["collective"], c["phase"], c["ranks"], c["bytes"])
                       for c in json.loads((runs / "tp2-bf16-calls.json").read_text()))
    predicted = Counter()
    for c in collectives(W.CFG, Layout(2, "ddp", 2), W.BATCH, dtype="bfloat16"):
        predicted[(c.collective, c.phase, c.ranks, c.bytes)] += c.count
    assert measured == predicted
    assert predicted[("all_reduce", "forward", 2, 2 * W.BATCH * 8 * 16)] == 4  # b*T*d bf16


def test_tensor_parallel_styles_handle_a_bias(runs):
    """Column-wise: the bias sharded with the output features; row-wise: replicated, added once
    after the partial products are summed (GPT-2's Linear layers have biases)."""
    got = torch.load(runs / "bias-mlp.pt")
    torch.manual_seed(5)
    mlp, x = W.BiasMLP(), got["x"].clone().requires_grad_()
    y = mlp(x)
    y.pow(2).sum().backward()
    torch.testing.assert_close(got["y"], y.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got["x_grad"], x.grad, rtol=1e-6, atol=1e-5)
    for name, p in mlp.named_parameters():
        torch.testing.assert_close(got["grads"][name], p.grad, rtol=1e-6, atol=1e-5)
    assert got["calls"] == 2  # one all-reduce forward (row-wise), one backward (replicated input)


def test_sharded_checkpoint_resumes_exactly_in_its_own_layout(runs):
    got, whole = _params(runs / "resumed-zero3"), _params(runs / "zero3")
    assert all(torch.equal(got[k], whole[k]) for k in whole)  # bitwise
    assert _logged(runs / "resumed-zero3", "loss") == _logged(runs / "zero3", "loss")


@pytest.mark.parametrize("layout", ["zero2", "ddp"])
def test_sharded_checkpoint_resumes_in_another_layout(runs, layout):
    want, losses, _ = _reference_run([[0, 1]] * W.STEPS)
    assert _max_diff(_params(runs / f"resumed-{layout}"), want) <= PARAM_ATOL
    np.testing.assert_allclose(_logged(runs / f"resumed-{layout}", "loss"), losses, rtol=LOG_RTOL)


def test_torchrun_resumes_a_zero3_checkpoint_under_tensor_parallelism(runs, tmp_path):
    """The CLI end to end: the zero3 run's step-2 DCP checkpoint continued by `torchrun -m
    model.train --parallel ddp --tensor-parallel 2` (one data-parallel rank: its sampler goes on
    alone), equal to one process drawing the same batches."""
    data = tmp_path / "data.txt"
    data.write_bytes(W.DATA.tobytes())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "model.train", "--train-data", str(data), "--resume", str(runs / "part" / "ckpt.dcp"),
           "--out", str(tmp_path / "run"), "--steps", str(W.STEPS), "--parallel", "ddp",
           "--tensor-parallel", "2", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("layout: ddp over 1 data-parallel rank x tensor-parallel 2 (2 processes); global batch "
            "4 sequences = 4 per data-parallel rank (--batch-size) x 1 data-parallel rank") in res.stderr
    want, losses, _ = _reference_run([[0, 1], [0, 1], [0], [0]])
    assert _max_diff(_params(tmp_path / "run"), want) <= PARAM_ATOL
    np.testing.assert_allclose(_logged(tmp_path / "run", "loss"), losses, rtol=LOG_RTOL)
    tokens = 2 * 2 * W.BATCH * W.CFG.context_length + 2 * W.BATCH * W.CFG.context_length
    assert _logged(tmp_path / "run", "tokens")[-1] == tokens


@pytest.mark.parametrize("flags,needle", [
    (["--tensor-parallel", "2"], "--tensor-parallel 2 needs torchrun"),
    (["--parallel", "zero3"], "--parallel zero3 needs torchrun"),
    (["--tensor-parallel", "3"], "must divide num_heads (2)"),
    (["--tensor-parallel", "2", "--d-ff", "25"], "must divide d_ff (25)"),
    (["--tensor-parallel", "2", "--num-heads", "4", "--num-kv-heads", "1"],
     "must divide the key/value heads (num_kv_heads) (1)"),
])
def test_layout_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, flags, needle):
    from accounting.cli_support import run_cli
    from model.train import main

    data = tmp_path / "data.txt"
    data.write_bytes(W.DATA.tobytes())
    argv = ["--train-data", str(data), "--out", str(tmp_path / "run"), "--d-model", "16",
            "--num-heads", "2", "--vocab-size", "256", "--context-length", "8", *flags]
    assert run_cli(main, argv, prog="python -m model.train") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "run").exists()
