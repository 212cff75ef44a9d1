"""One rank of tests/model/test_parallel_layouts.py (run as a script: layouts_worker.py RANK WORLD
PORT OUT). For each layout: the gradients of one forward/backward on this rank's slice of a fixed
global batch (saved in full by rank 0), then model.trainer.train for STEPS steps; TP's collectives
under bf16 autocast; and for zero3 the same run interrupted at step 2 and resumed under zero3,
zero2 and ddp from its DCP checkpoint."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from accounting.config import ModelConfig
from accounting.layout import Layout
from model import TransformerLM, TrainConfig, cross_entropy
from model.parallelize import init_mesh, parallelize
from model.trainer import train

CFG = ModelConfig(vocab_size=256, context_length=8, d_model=16, num_layers=2, num_heads=2, d_ff=24)
LAYOUTS = {"ddp": ("ddp", 1), "zero2": ("zero2", 1), "zero3": ("zero3", 1), "tp2": ("ddp", 2)}
STEPS, BATCH, SEED, LR = 4, 4, 11, 1e-2
TCFG = TrainConfig(batch_size=BATCH, steps=STEPS, seed=SEED, max_lr=LR, min_lr=LR / 10,
                   warmup_iters=1, grad_clip=1.0, log_interval=1, val_fraction=0.0,
                   checkpoint_interval=0, eval_interval=3, eval_batches=1)
DATA = np.frombuffer(("A small corpus for two ranks. " * 40).encode(), dtype=np.uint8)
VAL = DATA[:64]  # evaluated at steps 3 and 4: a sharded model's eval is collective on every rank


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, CFG.vocab_size, (2, BATCH, CFG.context_length), generator=g)
    return ids[0], ids[1]


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def gradients(name: str, world: int, out: Path) -> None:
    strategy, k = LAYOUTS[name]
    layout = Layout(world, strategy, k)
    torch.manual_seed(0)
    model = TransformerLM(CFG)
    mesh = init_mesh(layout, "cpu")
    wrapped = parallelize(model, layout, mesh, torch.device("cpu"))
    x, y = global_batch()
    per, r = BATCH // layout.data_parallel, mesh["dp"].get_local_rank()
    cross_entropy(wrapped(x[r * per:(r + 1) * per]), y[r * per:(r + 1) * per]).backward()
    grads = {n: _full(p.grad).detach().clone() for n, p in model.named_parameters()}
    if dist.get_rank() == 0:
        torch.save(grads, out / f"{name}-grads.pt")


def autocast_collectives(world: int, out: Path) -> None:
    """TP under bf16 autocast: every collective of one forward/backward (saved by rank 0)."""
    from validation.collectives import CollectiveCounter

    layout = Layout(world, "ddp", world)
    torch.manual_seed(0)
    model = TransformerLM(CFG)
    wrapped = parallelize(model, layout, init_mesh(layout, "cpu"), torch.device("cpu"))
    x, y = global_batch()
    counter = CollectiveCounter()
    with counter:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = wrapped(x)
        loss = cross_entropy(logits, y)
        counter.phase = "backward"
        loss.backward()
    if dist.get_rank() == 0:
        (out / "tp2-bf16-calls.json").write_text(json.dumps([c.__dict__ for c in counter.calls]))


class BiasLinear(torch.nn.Module):
    """A Linear with a bias (GPT-2's projections), to check the TP styles' bias handling."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(d_out, d_in))
        self.bias = torch.nn.Parameter(torch.randn(d_out))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class BiasMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = BiasLinear(8, 12), BiasLinear(12, 8)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def biased_tensor_parallel(world: int, out: Path) -> None:
    """Column-wise `up` (bias sharded) then row-wise `down` (bias replicated, added once) on the
    ranks: output and full gradients saved by rank 0 (the test compares one process)."""
    from torch.distributed.tensor.parallel import parallelize_module

    from model.parallelize import ColwiseLinear, ReplicatedInput, RowwiseLinear
    from validation.collectives import CollectiveCounter

    torch.manual_seed(5)
    mlp, x = BiasMLP(), torch.randn(3, 8, requires_grad=True)
    mesh = init_mesh(Layout(world, "ddp", world), "cpu")["tp"]
    parallelize_module(mlp, mesh, {"": ReplicatedInput(), "up": ColwiseLinear(), "down": RowwiseLinear()})
    counter = CollectiveCounter()
    with counter:
        y = mlp(x)
        y.pow(2).sum().backward()
    grads = {n: _full(p.grad) for n, p in mlp.named_parameters()}
    if dist.get_rank() == 0:
        torch.save({"x": x.detach(), "x_grad": x.grad, "y": y.detach(), "grads": grads,
                    "calls": len(counter.calls)},
                   out / "bias-mlp.pt")


def main(rank: int, world: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for name, (strategy, k) in LAYOUTS.items():
        gradients(name, world, out)
        train(CFG, TCFG.replace(parallel=strategy, tensor_parallel=k), DATA, VAL, out_dir=out / name)
    autocast_collectives(world, out)
    biased_tensor_parallel(world, out)
    zero3 = TCFG.replace(parallel="zero3")
    train(CFG, zero3.replace(steps=2), DATA, VAL, out_dir=out / "part")
    for strategy in ("zero3", "zero2", "ddp"):
        train(CFG, TCFG.replace(parallel=strategy), DATA, VAL, out_dir=out / f"resumed-{strategy}",
              resume_from=out / "part" / "ckpt.dcp")
    dist.barrier()  # leave together (a gloo rank tearing down first can abort its peer)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
