"""Parallelism applied to a `TransformerLM` from outside (torchtitan's habit): the model file stays
single-device; this module turns it into a tensor-parallel, FSDP2-sharded or DDP-wrapped model on a
2-D device mesh ("dp", "tp") described by an `accounting.layout.Layout`.

Tensor parallelism (K = layout.tensor_parallel ranks of the "tp" mesh dimension), Megatron's split
with DTensor, written per module type so it extends to other blocks:
  - `ColwiseLinear`: weight (out, in) sharded on dim 0 (each rank holds out/K output features, i.e.
    whole heads of q/k/v, or d_ff/K of W1/W3); a bias is sharded likewise. Input: replicated;
    output: this rank's features as a plain local tensor.
  - `RowwiseLinear`: weight sharded on dim 1 (in/K input features); a bias stays replicated and is
    added once, after the partial products are summed. Input: this rank's features; output: the
    partial products all-reduced (Megatron's "g": one all-reduce in the forward), replicated.
  - `ReplicatedInput` on each block's `attn` and `ffn`: their input becomes one
    replicated DTensor that q/k/v (or W1/W3) all read, so the backward sums their partial input
    gradients and all-reduces once (Megatron's "f"). Two all-reduces per block in the forward,
    two in the backward; nothing else communicates.
  The embedding, the norms and the LM head are not split (replicated over the K ranks; their
  gradients are equal on every rank without communication). The model reads its local head count
  from the projections' local width, so its numerics on one device do not change.
Data parallelism over the "dp" dimension (layout.data_parallel ranks):
  - "zero2" / "zero3": FSDP2 `fully_shard` on each TransformerBlock, then on the root
    TransformerLM (which then owns token_embeddings, ln_final and lm_head), with
    `reshard_after_forward` False / True for every group. One all-gather per group in the forward,
    (zero3) one more per group in the backward, one reduce-scatter of gradients per group. FSDP2
    pads each parameter's dim 0 to a multiple of the dp ranks (of its TP-local shape).
  - "ddp": DistributedDataParallel with `gradient_as_bucket_view=True` (gradients live in the
    buckets: no second copy) and no per-step buffer broadcast (the RoPE tables are computed equal on
    every rank). With K > 1 only a single data-parallel rank is allowed (DDP takes no DTensors; use
    zero2 / zero3 for a 2-D mesh).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_module, distribute_tensor
from torch.distributed.tensor.parallel import ParallelStyle, parallelize_module

from accounting.errors import UserError
from accounting.layout import Layout

TP_PLAN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "attn": (("q_proj", "k_proj", "v_proj"), ("output_proj",)),
    "ffn": (("w1", "w3"), ("w2",)),
}
"""Submodule of a block -> (its column-wise Linears, its row-wise Linears); absent ones (w3 of the
SiLU FFN) are skipped."""

MESH_DIMS = ("dp", "tp")


def init_mesh(layout: Layout, device_type: str) -> DeviceMesh:
    """The ("dp", "tp") mesh of an initialized process group of layout.world_size ranks; ranks
    r = dp_rank * K + tp_rank, so the K ranks of a tensor-parallel group are neighbours."""
    if not dist.is_initialized() or dist.get_world_size() != layout.world_size:
        raise UserError(f"layout {layout.describe()} needs a process group of {layout.world_size} "
                        f"ranks (start with torchrun --nproc-per-node {layout.world_size})")
    return init_device_mesh(device_type, (layout.data_parallel, layout.tensor_parallel),
                            mesh_dim_names=MESH_DIMS)


def _shard_parameter(module: nn.Module, name: str, mesh: DeviceMesh, placement) -> None:
    param = getattr(module, name, None)
    if param is not None and not isinstance(param, DTensor):
        module.register_parameter(name, nn.Parameter(distribute_tensor(param.data, mesh, [placement]),
                                                     requires_grad=param.requires_grad))


def _replicated_input(module: nn.Module, inputs: tuple, mesh: DeviceMesh) -> tuple:
    x, *rest = inputs
    if not isinstance(x, DTensor):  # a Linear used alone: its own "f"
        x = DTensor.from_local(x, mesh, [Replicate()], run_check=False)
    return (x, *rest)


class ColwiseLinear(ParallelStyle):
    """Column-wise split of a Linear (weight (out, in) and any bias sharded on dim 0)."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        def partition(name: str, sub: nn.Module, mesh: DeviceMesh) -> None:
            if sub is module:
                _shard_parameter(sub, "weight", mesh, Shard(0))
                _shard_parameter(sub, "bias", mesh, Shard(0))

        return distribute_module(module, device_mesh, partition, input_fn=_replicated_input,
                                 output_fn=lambda mod, out, mesh: out.to_local())  # (..., out/K)


class RowwiseLinear(ParallelStyle):
    """Row-wise split of a Linear (weight sharded on dim 1; a bias replicated, added once)."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        def partition(name: str, sub: nn.Module, mesh: DeviceMesh) -> None:
            if sub is module:
                _shard_parameter(sub, "weight", mesh, Shard(1))
                _shard_parameter(sub, "bias", mesh, Replicate())

        def local_input(mod: nn.Module, inputs: tuple, mesh: DeviceMesh) -> tuple:
            x, *rest = inputs  # (..., in/K): this rank's features
            return (DTensor.from_local(x, mesh, [Shard(x.dim() - 1)], run_check=False), *rest)

        def summed_output(mod: nn.Module, out: DTensor, mesh: DeviceMesh) -> torch.Tensor:
            # partial sums -> one all-reduce (Megatron's g); the backward needs no communication
            return out.redistribute(mesh, [Replicate()]).to_local()  # (..., out)

        return distribute_module(module, device_mesh, partition, input_fn=local_input,
                                 output_fn=summed_output)


class ReplicatedInput(ParallelStyle):
    """A module's first input becomes one replicated DTensor, shared by the Linears it feeds."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        module.register_forward_pre_hook(lambda mod, inputs: _replicated_input(mod, inputs, device_mesh))
        return module


def tensor_parallel_plan(model: nn.Module) -> dict[str, ParallelStyle]:
    """{module path: style} for `parallelize_module`: per block, each TP_PLAN submodule's input
    replicated once, its Linears column- or row-wise."""
    plan: dict[str, ParallelStyle] = {}
    for i, block in enumerate(model.layers):
        for part, (columns, rows) in TP_PLAN.items():
            sub = getattr(block, part)
            plan[f"layers.{i}.{part}"] = ReplicatedInput()
            for names, style in ((columns, ColwiseLinear), (rows, RowwiseLinear)):
                plan.update({f"layers.{i}.{part}.{n}": style() for n in names if hasattr(sub, n)})
    return plan


def apply_tensor_parallel(model: nn.Module, tp_mesh: DeviceMesh) -> None:
    """Shard every block's attention and FFN projections over `tp_mesh` (in place)."""
    parallelize_module(model, tp_mesh, tensor_parallel_plan(model))


def apply_fsdp(model: nn.Module, dp_mesh: DeviceMesh, reshard_after_forward: bool) -> None:
    """FSDP2 groups: each TransformerBlock, then the root (embedding, final norm, LM head)."""
    from torch.distributed.fsdp import fully_shard

    for block in model.layers:
        fully_shard(block, mesh=dp_mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=dp_mesh, reshard_after_forward=reshard_after_forward)


def _ddp(model: nn.Module, group, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    kwargs = dict(process_group=group, gradient_as_bucket_view=True,
                  device_ids=[device.index] if device.type == "cuda" else None)
    # the RoPE buffers are equal on every rank: no broadcast before each forward
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        kwargs["forward_sync_buffers"] = False  # torch >= 2.13 (broadcast_buffers is deprecated)
    else:
        kwargs["broadcast_buffers"] = False
    return DistributedDataParallel(model, **kwargs)


def check_layout(layout: Layout, cfg) -> None:
    """UserError for a layout the trainer cannot run on `cfg` (before any process starts work)."""
    layout.check_model(cfg)
    layout.check_runnable()


def parallelize(model: nn.Module, layout: Layout, mesh: DeviceMesh | None,
                device: torch.device) -> nn.Module:
    """Apply `layout` to `model` in place; returns the module to call (a DDP wrapper or `model`).
    TP first, then FSDP over "dp" (FSDP2 shards the TP-local tensors: a 2-D layout)."""
    check_layout(layout, model.config)
    if layout.world_size == 1:
        return model
    if mesh is None:
        raise UserError("a parallel layout needs a device mesh")
    if layout.tensor_parallel > 1:
        apply_tensor_parallel(model, mesh["tp"])
    if layout.strategy in ("zero2", "zero3"):
        apply_fsdp(model, mesh["dp"], reshard_after_forward=layout.strategy == "zero3")
        return model
    if layout.data_parallel > 1:
        return _ddp(model, mesh["dp"].get_group(), device)
    return model


# ---- helpers for sharded parameters -------------------------------------------------------------
def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a tensor: a DTensor's local shard, a plain tensor itself."""
    return t.to_local() if isinstance(t, DTensor) else t


def replicas(t: torch.Tensor, world_size: int) -> int:
    """On how many ranks each element of `t` lives: a plain tensor on every rank; a DTensor on the
    ranks outside its mesh times the sizes of the mesh dimensions it is replicated over (FSDP's
    strided shards of a TP shard count as sharded)."""
    if not isinstance(t, DTensor):
        return world_size
    mesh = t.device_mesh
    return world_size // mesh.size() * math.prod(
        mesh.size(i) for i, p in enumerate(t.placements) if p.is_replicate())


@torch.no_grad()
def clip_gradients(parameters: Iterable[nn.Parameter], max_l2_norm: float, eps: float = 1e-6) -> float:
    """model.loss.clip_gradients for sharded (DTensor) gradients: the global L2 norm from each
    rank's local shards (an element held by r ranks counted 1/r times on each), summed with one
    all-reduce of a float32 scalar over the whole world; gradients scaled in place when the norm
    exceeds `max_l2_norm`. Returns the norm before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    world = dist.get_world_size() if dist.is_initialized() else 1
    device = local(grads[0]).device
    total = torch.zeros((), dtype=torch.float32, device=device)
    for g in grads:
        total += (local(g).float() ** 2).sum() / replicas(g, world)
    if world > 1:
        dist.all_reduce(total)
    norm = float(total.sqrt())
    if norm > max_l2_norm:
        scale = max_l2_norm / (norm + eps)
        for g in grads:
            g.mul_(scale)
    return norm
