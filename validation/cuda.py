"""CUDA-only measurements: the allocator at each phase of a step, the CUDA context, the cuBLAS
workspace.

Phases of a fresh model's first step (bytes from torch.cuda.memory_allocated, relative to the
baseline taken after the batch exists and before the model is built): after weights, after forward
(+ loss), after backward, after the AdamW step. The peak (torch.cuda.max_memory_allocated) is taken
over a SECOND step, model.trainer.training_step, the steady-state step accounting.timeline replays
(the AdamW state exists, zero_grad(set_to_none=True) ends each step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import contextlib
from collections.abc import Callable

from model.loss import clip_gradients, cross_entropy
from model.trainer import training_step

_context_bytes: int | None = None


@dataclass(frozen=True)
class CudaMemory:
    """Allocator bytes; deltas are between consecutive phases of the first step."""

    context_bytes: int          # device memory in use minus torch's reservation, after init
    cublas_workspace_bytes: int
    weights: int                # after building the model
    activations: int            # after forward - after weights
    gradients: int              # after backward - after weights (activations freed by then)
    optimizer_state: int        # after the AdamW step - after backward
    peak: int                   # max allocated over the second (steady-state) step, above the baseline
    reserved: int               # max reserved over the second step


def context_bytes(device: torch.device) -> int:
    """The CUDA context's footprint, measured once per process: device memory in use (cudaMemGetInfo)
    minus what torch's allocator reserved. On a shared GPU it includes other processes' memory."""
    global _context_bytes
    if _context_bytes is None:
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info(device)
        _context_bytes = total - free - torch.cuda.memory_reserved(device)
    return _context_bytes


def cublas_workspace_bytes(device: torch.device) -> int:
    """Allocator growth across one tiny matmul: the cuBLAS workspace torch allocates on first use
    (0 if it was already allocated in this process)."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    a = torch.ones(8, 8, device=device)
    _ = a @ a
    torch.cuda.synchronize(device)
    grown = torch.cuda.memory_allocated(device) - before
    del a, _
    return max(grown - 2 * 512, 0)  # minus the two 8x8 float32 tensors' 512-byte blocks


def memory_phases(build_model, x: torch.Tensor, y: torch.Tensor, context: int, workspace: int, *,
                  autocast: Callable = contextlib.nullcontext, optimizer: str = "reference",
                  max_norm: float = 1.0) -> CudaMemory:
    """Allocator bytes at each phase; `build_model()` builds the model on x's device. `context` and
    `workspace` come from context_bytes / cublas_workspace_bytes, taken before any other CUDA work
    of the process (the workspace is allocated once, on the first matmul)."""
    from validation.memtrack import make_optimizer

    device = x.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    alloc = lambda: torch.cuda.memory_allocated(device) - base  # noqa: E731
    model = build_model()
    after_weights = alloc()
    opt = make_optimizer(model, optimizer)
    with autocast():
        logits = model(x)
    loss = cross_entropy(logits, y)
    del logits
    after_forward = alloc()
    loss.backward()
    del loss
    after_backward = alloc()
    clip_gradients(model.parameters(), max_norm)
    opt.step()
    after_step = alloc()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    loss, _ = training_step(model, opt, x, y, autocast=autocast, max_norm=max_norm)
    del loss
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    reserved = torch.cuda.max_memory_reserved(device)
    del model, opt
    torch.cuda.empty_cache()
    return CudaMemory(context, workspace, after_weights, after_forward - after_weights,
                      after_backward - after_weights, after_step - after_backward, peak, reserved)
