"""A run draws from its own generators: runs in concurrent threads give the losses each gives alone,
even beside a thread that reseeds and draws from torch's default generator all along; the run's
generator reproduces the default stream of the same seed; checkpointing redraws dropout masks."""

import threading

import numpy as np
import torch

from accounting.config import ModelConfig
from model import TrainConfig, TransformerLM
from model.trainer import train as _train

CFG = ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=48,
                  dropout=0.1)
TCFG = TrainConfig(batch_size=4, steps=12, max_lr=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=6,
                   eval_batches=2, checkpoint_interval=0, log_interval=1, val_fraction=0.1)
DATA = np.random.default_rng(0).integers(0, 64, size=2_000).astype(np.uint16)


def train(*args):  # dropout's memory is not in the timeline yet: no memory guard
    return _train(*args, check_memory=False)


def _losses(result):
    return [(e["type"], e["step"], e.get("loss", e.get("val_loss"))) for e in result.events
            if e["type"] in ("step", "eval")]


def test_concurrent_runs_equal_their_solo_runs():
    jobs = {"a": (CFG, TCFG.replace(seed=1)), "b": (CFG.replace(ffn="silu"), TCFG.replace(seed=2))}
    solo = {name: _losses(train(cfg, tcfg, DATA)) for name, (cfg, tcfg) in jobs.items()}
    together: dict[str, list] = {}
    start, noise_stop = threading.Barrier(3), threading.Event()

    def run(name):
        start.wait()
        together[name] = _losses(train(*jobs[name], DATA))

    def noise():  # what another user's code may do to the process-wide default generator
        start.wait()
        while not noise_stop.is_set():
            torch.manual_seed(12345)
            torch.rand(256)

    threads = [threading.Thread(target=run, args=(n,)) for n in jobs] + [threading.Thread(target=noise)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join(120)
    noise_stop.set()
    threads[2].join(10)
    assert together == solo
    assert solo["a"] != solo["b"]


def test_the_runs_generator_is_the_default_stream_of_its_seed():
    # so runs seeded as before (torch.manual_seed(seed), then build) keep their weights
    torch.manual_seed(7)
    before = TransformerLM(CFG).state_dict()
    after = TransformerLM(CFG, generator=torch.Generator().manual_seed(7)).state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_checkpointing_redraws_the_dropout_masks_from_the_runs_generator():
    x = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        model = TransformerLM(CFG, activation_checkpointing=checkpointing,
                              generator=torch.Generator().manual_seed(3))
        model.train()
        model(x).square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
