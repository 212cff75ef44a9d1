"""Steps 1 and 2: what the machine is (GPU, memory, driver, torch, CUDA, the GPU-table entry, which
optional features work) and the dense matmul peak it reaches, beside the GPU table's.

Every probe is guarded: a missing feature is recorded as such, never raised.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import statistics
import subprocess
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from accounting.hardware import GPU, match_gpu
from validation.campaign.common import first_line, fused_available, sync, timed
from validation.campaign.targets import DENSE_PEAK
from validation.rows import ComparisonRow
from validation.timing import hardware


def driver_version() -> str | None:
    """The NVIDIA kernel driver's version: /proc/driver/nvidia/version, else nvidia-smi (10 s)."""
    try:
        for line in Path("/proc/driver/nvidia/version").read_text().splitlines():
            if "Kernel Module" in line:
                return line.split("Kernel Module", 1)[1].split()[0]
    except (OSError, IndexError):
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return out.strip().splitlines()[0] if out.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


class _AttentionOps(TorchDispatchMode):
    """Records the aten ops whose names mention attention (which sdpa kernel ran)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "attention" in str(func):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def sdpa_kernels(device: torch.device) -> dict[str, str]:
    """The aten kernel a causal sdpa forward + backward dispatches to, per dtype, at d_k=64."""
    out = {}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        try:
            q, k, v = (torch.randn(1, 2, 128, 64, device=device, dtype=dtype, requires_grad=True)
                       for _ in range(3))
            with _AttentionOps() as seen:
                torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
            out[name] = ", ".join(dict.fromkeys(seen.ops)) or "(no fused kernel: math decomposition)"
        except Exception as exc:  # recorded, not raised: the step goes on
            out[name] = f"failed: {first_line(exc)}"
    return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def compile_backend(device: torch.device, dry_run: bool) -> tuple[str | None, str]:
    """(torch.compile backend or None for eager, why): inductor on CUDA when triton is importable;
    the "eager" backend in --dry-run (dynamo's tracing, none of inductor's minutes on a CPU)."""
    if not hasattr(torch, "compile"):
        return None, "torch.compile missing"
    if dry_run:
        return "eager", "dry run: dynamo with the eager backend"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return None, "triton not importable: inductor cannot compile for CUDA"
    return "inductor", "inductor"


def environment(device: torch.device, dry_run: bool) -> tuple[dict, GPU | None]:
    """(facts, GPU-table entry). On CUDA the CUDA context is measured first, before any other work."""
    facts: dict = {}
    gpu = None
    if device.type == "cuda":
        from validation.cuda import context_bytes

        facts["cuda_context_bytes"] = context_bytes(device)  # first: nothing else allocated yet
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        gpu = match_gpu(props.name)
        facts.update(gpu_name=props.name, memory_total_bytes=int(total), memory_free_bytes=int(free),
                     compute_capability=f"{props.major}.{props.minor}",
                     multiprocessors=props.multi_processor_count, driver=driver_version(),
                     cudnn=torch.backends.cudnn.version(),
                     sdpa_enabled={k: getattr(torch.backends.cuda, f"{k}_sdp_enabled", lambda: None)()
                                   for k in ("flash", "mem_efficient", "cudnn", "math")})
    facts.update(hardware(str(device)))
    facts.update(triton=_version("triton"), fused_adamw=fused_available(),
                 float32_matmul_precision=torch.get_float32_matmul_precision(),
                 compile_backend=compile_backend(device, dry_run)[0],
                 compile_note=compile_backend(device, dry_run)[1],
                 sdpa_kernels=sdpa_kernels(device))
    if gpu is not None:
        facts.update(gpu_table_entry=gpu.name, gpu_table_memory_bytes=gpu.memory_bytes,
                     gpu_table_source=gpu.source,
                     gpu_table_peaks={k: float(v) for k, v in gpu.peak_flops_per_s.items()})
    else:
        facts["gpu_table_entry"] = None
    sync(device)
    return facts, gpu


# ---- step 2: the dense peak ---------------------------------------------------------------------
_MATMUL_KINDS = {"bfloat16": (torch.bfloat16, "highest"), "tfloat32": (torch.float32, "high"),
                 "float32": (torch.float32, "highest")}
"""kind -> (tensor dtype, torch.set_float32_matmul_precision: "high" allows TF32 on CUDA)."""


def matmul_peak(device: torch.device, kind: str, n: int, iters: int,
                deadline=None) -> tuple[float, float, int]:
    """(best, median, timed count) FLOP/s of n x n x n matmuls of `kind`, after 3 warm-ups;
    stops early (after at least 3) when `deadline` has under 2 s left."""
    dtype, precision = _MATMUL_KINDS[kind]
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(device)
        seconds = []
        for _ in range(iters):
            if len(seconds) >= 3 and deadline is not None and deadline.left() < 2:
                break
            seconds.append(timed(lambda: a @ b, device))
    finally:
        torch.set_float32_matmul_precision(previous)
    flops = 2 * n**3
    return flops / min(seconds), flops / statistics.median(seconds), len(seconds)


def dense_peak_rows(device: torch.device, gpu: GPU | None, dry_run: bool, deadline=None
                    ) -> tuple[list[ComparisonRow], dict[str, float]]:
    """Step 2: rows (symbolic = the table's dense peak, measured = the best matmul) and the best
    FLOP/s per kind. CUDA: 8192^3, bf16 / tf32 (30 timed) and fp32 (10 timed); dry run on CPU:
    256^3, bf16 and fp32 (no TF32 there)."""
    n = 256 if dry_run else 8192
    plan = (("bfloat16", 30), ("tfloat32", 30), ("float32", 10)) if device.type == "cuda" \
        else (("bfloat16", 5), ("float32", 5))
    rows, best = [], {}
    for kind, iters in plan:
        if deadline is not None:
            deadline.check(f"{kind} matmul")
        top, median, count = matmul_peak(device, kind, n, iters, deadline)
        best[kind] = top
        table = gpu.peak(kind) if gpu is not None else None
        rows.append(ComparisonRow(
            DENSE_PEAK, kind, "flop/s", table, top,
            f"measured: best of {count} {n}^3 {kind} matmuls (median {median / 1e12:.4g} TFLOP/s), "
            f"{'CUDA events' if device.type == 'cuda' else 'perf_counter'}; symbolic: "
            + (f"{gpu.name} dense datasheet peak ({gpu.source})" if gpu else "no GPU-table entry"),
            "the datasheet's dense peak is a boost-clock upper bound no kernel reaches"
            if table is not None and top != table else ""))
    return rows, best
