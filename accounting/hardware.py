"""Accelerator table: dense peak FLOP/s per dtype, memory and HBM bandwidth, with sources;
user-given values too.

Peak FLOP/s are DENSE (no 2:4 sparsity), from NVIDIA's datasheets:
  - A100 (SXM4, 40 GB and 80 GB): NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5 TFLOPS,
    TF32 156, BF16 312, FP16 312 (the 312/624 pairs there are dense/sparse).
  - H100 SXM5 and H100 PCIe: NVIDIA H100 Tensor Core GPU datasheet (2023, "with sparsity" figures
    halved): SXM FP32 67 TFLOPS, TF32 494.7, BF16/FP16 989.4; PCIe FP32 51, TF32 378, BF16/FP16 756.
  - H200 SXM: NVIDIA H200 product page / datasheet (2024): same compute as H100 SXM, 141 GB HBM3e.
Memory is the datasheet capacity: "80GB" HBM is 80 GiB of physical memory (binary HBM stacks);
H200's "141GB" is taken as 141 GiB. The CUDA context and ECC take some of it: torch reports a
little less (e.g. ~79.1 GiB on an H100 80GB).

HBM bandwidth (bytes/s, TB/s = 10^12 bytes/s; the datasheets' peak, not a sustained figure:
a streaming kernel reaches roughly 80-90% of it), `hbm_bytes_per_s` with `bandwidth_source`:
  - A100 40GB SXM4: 1,555 GB/s; A100 80GB SXM4: 2,039 GB/s (NVIDIA A100 datasheet, 2021).
  - H100 SXM5: 3.35 TB/s; H100 PCIe: 2.0 TB/s (NVIDIA H100 datasheet, 2023).
  - H200 SXM: 4.8 TB/s (NVIDIA H200 datasheet, 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from accounting.errors import UserError

_T = 10**12
_GB = 10**9  # bytes
_GiB = 2**30


@dataclass(frozen=True)
class GPU:
    """An accelerator: dense peak FLOP/s per dtype (`peak_flops_per_s`), `memory_bytes` and the
    HBM bandwidth `hbm_bytes_per_s` (None when unknown), each with its source."""

    name: str
    memory_bytes: int
    peak_flops_per_s: MappingProxyType
    source: str = ""
    hbm_bytes_per_s: float | None = None
    bandwidth_source: str = ""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for `dtype` (float32, tfloat32, bfloat16, float16)."""
        try:
            return self.peak_flops_per_s[dtype]
        except KeyError:
            raise UserError(f"no peak FLOP/s for dtype {dtype!r} on {self.name}; "
                             f"known: {', '.join(self.peak_flops_per_s)}") from None

    def bandwidth(self) -> float:
        """HBM bytes/s; a UserError when the table has none (a custom GPU without one)."""
        if self.hbm_bytes_per_s is None:
            raise UserError(f"no HBM bandwidth known for {self.name}; give one (--hbm-bandwidth)")
        return self.hbm_bytes_per_s


def _gpu(name: str, gib: int, fp32: float, tf32: float, bf16: float, source: str,
         hbm_gb_per_s: int, bandwidth_source: str) -> GPU:
    peaks = {"float32": fp32 * _T, "tfloat32": tf32 * _T, "bfloat16": bf16 * _T, "float16": bf16 * _T}
    return GPU(name, gib * _GiB, MappingProxyType(peaks), source, float(hbm_gb_per_s * _GB),
               bandwidth_source)


_A100_SRC = "NVIDIA A100 datasheet (dense)"
_H100_SRC = "NVIDIA H100 datasheet (dense = sparse / 2)"
_A100_BW = "NVIDIA A100 datasheet (2021): GPU memory bandwidth"
_H100_BW = "NVIDIA H100 datasheet (2023): GPU memory bandwidth"
GPUS: MappingProxyType = MappingProxyType({g.name: g for g in (
    _gpu("A100-40GB", 40, 19.5, 156, 312, _A100_SRC, 1_555, _A100_BW + " 1,555 GB/s (40GB SXM4)"),
    _gpu("A100-80GB", 80, 19.5, 156, 312, _A100_SRC, 2_039, _A100_BW + " 2,039 GB/s (80GB SXM4)"),
    _gpu("H100-SXM", 80, 67, 494.7, 989.4, _H100_SRC, 3_350, _H100_BW + " 3.35 TB/s (SXM5)"),
    _gpu("H100-PCIe", 80, 51, 378, 756, _H100_SRC, 2_000, _H100_BW + " 2 TB/s (PCIe)"),
    _gpu("H200", 141, 67, 494.7, 989.4, "NVIDIA H200 datasheet (dense)", 4_800,
         "NVIDIA H200 datasheet (2024): GPU memory bandwidth 4.8 TB/s (SXM)"),
)})
"""Known GPUs by name."""


def get_gpu(name: str) -> GPU:
    """The GPU called `name` (case-insensitive); unknown names raise ValueError listing known ones."""
    for key, gpu in GPUS.items():
        if key.lower() == name.lower():
            return gpu
    raise UserError(f"unknown GPU {name!r}; choose one of: {', '.join(GPUS)}")


def custom_gpu(peak_flops_per_s: float, memory_bytes: int, name: str = "custom",
               hbm_bytes_per_s: float | None = None) -> GPU:
    """A user-given accelerator with one peak for every dtype (and optionally an HBM bandwidth)."""
    if not 0 < peak_flops_per_s < math.inf:
        raise UserError(f"peak FLOP/s must be a positive finite number, got {peak_flops_per_s}")
    if not 0 < memory_bytes < math.inf:
        raise UserError(f"memory budget must be a positive finite number, got {memory_bytes}")
    if hbm_bytes_per_s is not None and not 0 < hbm_bytes_per_s < math.inf:
        raise UserError(f"HBM bandwidth must be a positive finite number, got {hbm_bytes_per_s}")
    peaks = {k: float(peak_flops_per_s) for k in ("float32", "tfloat32", "bfloat16", "float16")}
    return GPU(name, int(memory_bytes), MappingProxyType(peaks), "user-given",
               None if hbm_bytes_per_s is None else float(hbm_bytes_per_s),
               "user-given" if hbm_bytes_per_s is not None else "")


_DEVICE_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("h200", "H200"), ("h100 pcie", "H100-PCIe"), ("h100", "H100-SXM"),
    ("a100-sxm4-40gb", "A100-40GB"), ("a100", "A100-80GB"),
)
"""(substring of a CUDA device name, lower case) -> GPUS entry; the first match wins."""


def match_gpu(device_name: str) -> GPU | None:
    """The table's entry for a CUDA device name (as torch.cuda.get_device_name gives it, e.g.
    "NVIDIA H100 80GB HBM3"), or None for a device the table does not know."""
    lowered = device_name.lower()
    return next((GPUS[key] for pattern, key in _DEVICE_NAME_PATTERNS if pattern in lowered), None)


def matmul_dtype(dtype: str, allow_tf32: bool) -> str:
    """The dtype whose peak a run's matmuls reach: "bfloat16" for a bf16 run, else "tfloat32" when
    TF32 matmuls are allowed (torch.backends.cuda.matmul.allow_tf32), else "float32"."""
    if dtype.startswith("bfloat16"):  # autocast or a pure-bf16 model
        return "bfloat16"
    return "tfloat32" if allow_tf32 else "float32"


# ---- interconnects (for the communication time of parallel layouts, accounting.communication) ----
@dataclass(frozen=True)
class Link:
    """An interconnect between GPUs: `bytes_per_s` is what one GPU sends (and, at once, receives)
    per direction: the `bw` of the ring formulas (nccl-tests' "bus bandwidth")."""

    name: str
    bytes_per_s: float
    source: str = ""


LINKS: MappingProxyType = MappingProxyType({link.name: link for link in (
    Link("NVLink-H100", 450e9, "NVIDIA H100 SXM datasheet: NVLink 900 GB/s per GPU, both "
         "directions together: 450 GB/s each way"),
    Link("PCIe-5", 64e9, "PCIe 5.0 x16 (PCI-SIG: 32 GT/s x 16 lanes, 128b/130b = 63 GB/s each "
         "way; NVIDIA H100 PCIe datasheet: 128 GB/s both ways): 64 GB/s each way"),
    Link("InfiniBand-NDR", 50e9, "NVIDIA Quantum-2 / ConnectX-7: NDR 400 Gb/s per port = 50 GB/s "
         "each way, one port per GPU"),
)})
"""Known links by name. One link serves every collective of a layout (a simplification: real
clusters run tensor parallelism over NVLink inside a node and data parallelism over InfiniBand)."""

DEFAULT_LINK = "NVLink-H100"


def get_link(name: str) -> Link:
    """The link called `name` (case-insensitive); an unknown name raises UserError listing them."""
    for key, link in LINKS.items():
        if key.lower() == name.lower():
            return link
    raise UserError(f"unknown link {name!r}; choose one of: {', '.join(LINKS)}")
