"""CUDA-only measurements: the allocator at each phase of a step, the CUDA context, the cuBLAS
workspace.

Phases of a fresh model's first step (bytes from torch.cuda.memory_allocated, relative to the
baseline taken before the model is built): after weights, after forward (+ loss), after backward,
after the AdamW step. The peak is taken over a SECOND step, when the AdamW state exists, with the
gradients kept allocated (zero_grad(set_to_none=False)): weights, gradients, AdamW state and
activations are then all alive at the end of the forward, as the accounting's peak assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.loss import cross_entropy
from model.optim import AdamW

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
    peak: int                   # max allocated over the second step, above the baseline
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


def memory_phases(build_model, x: torch.Tensor, y: torch.Tensor, context: int, workspace: int) -> CudaMemory:
    """Allocator bytes at each phase; `build_model()` builds the model on x's device. `context` and
    `workspace` come from context_bytes / cublas_workspace_bytes, taken before any other CUDA work
    of the process (the workspace is allocated once, on the first matmul)."""
    device = x.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    alloc = lambda: torch.cuda.memory_allocated(device) - base  # noqa: E731
    model = build_model()
    after_weights = alloc()
    optimizer = AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    loss = cross_entropy(model(x), y)
    after_forward = alloc()
    loss.backward()
    del loss
    after_backward = alloc()
    optimizer.step()
    after_step = alloc()
    optimizer.zero_grad(set_to_none=False)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    cross_entropy(model(x), y).backward()
    optimizer.step()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    reserved = torch.cuda.max_memory_reserved(device)
    del model, optimizer
    torch.cuda.empty_cache()
    return CudaMemory(context, workspace, after_weights, after_forward - after_weights,
                      after_backward - after_weights, after_step - after_backward, peak, reserved)
