"""Token data: loading id arrays from disk and sampling (input, target) language-model batches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from accounting.errors import MissingFileError, NotAFileError, UserError

_BIN_DTYPES = {"uint16": np.uint16, "uint32": np.uint32, "int32": np.int32, "int64": np.int64}


def load_tokens(path: str | os.PathLike[str], dtype: str | None = None) -> npt.NDArray:
    """A 1-D array of token ids from `path`, memory-mapped where the format allows.

    - `.npy`: np.load(mmap_mode="r"); must be 1-D integer.
    - `.bin`: raw ids, np.memmap of `dtype` (default uint16; a name ending `.uint32.bin` etc. or the
      `dtype` argument says otherwise).
    - anything else: text read as raw UTF-8 bytes, one id per byte (vocab 256), so a tiny model
      can train before a BPE tokenizer exists.
    Raises FileNotFoundError / ValueError with a one-line message for missing, empty or bad files.
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"token file not found: {p}")
    if p.is_dir():
        raise NotAFileError(f"token path is a directory, not a file: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"token file is empty: {p}")
    if p.suffix == ".npy":
        return _load_npy(p)
    if p.suffix == ".bin":
        return _load_bin(p, dtype)
    return np.frombuffer(p.read_bytes(), dtype=np.uint8)


def _load_npy(p: Path) -> npt.NDArray:
    try:
        arr = np.load(p, mmap_mode="r")
    except ValueError as exc:
        raise UserError(f"not a valid .npy file: {p} ({exc})") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{p} must hold a 1-D integer array, got shape {arr.shape} {arr.dtype}")
    if arr.size == 0:
        raise UserError(f"token file is empty: {p}")
    return arr


def _load_bin(p: Path, dtype: str | None) -> npt.NDArray:
    if dtype is None:
        inner = Path(p.stem).suffix.lstrip(".")  # "x.uint32.bin" -> "uint32"
        dtype = inner if inner in _BIN_DTYPES else "uint16"
    if dtype not in _BIN_DTYPES:
        raise UserError(f"dtype must be one of {', '.join(_BIN_DTYPES)}, got {dtype!r}")
    itemsize = np.dtype(_BIN_DTYPES[dtype]).itemsize
    if p.stat().st_size % itemsize:
        raise UserError(f"{p} size is not a multiple of {itemsize} bytes ({dtype})")
    return np.memmap(p, dtype=_BIN_DTYPES[dtype], mode="r")


def check_length(data: npt.NDArray, context_length: int, name: str = "data") -> None:
    """Raise ValueError unless `data` holds at least context_length + 1 tokens (one example)."""
    if len(data) < context_length + 1:
        raise UserError(
            f"{name} has {len(data)} tokens; need at least context_length + 1 = {context_length + 1}"
        )


class DeviceError(UserError, RuntimeError):
    """A device that is not there (bad name, no CUDA, no such CUDA index). A UserError for the
    CLIs, and a RuntimeError as torch raises for an unavailable device (which CS336's
    `test_get_batch` expects for device="cuda:99")."""


def resolve_device(device: str | torch.device) -> torch.device:
    """`torch.device(device)`, with a clear DeviceError for a bad string or an absent device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"bad device {device!r}: {str(exc).splitlines()[0]}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} requested but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r} requested but MPS is not available")
    return dev


def get_batch(data: npt.NDArray, batch_size: int, context_length: int,
              device: str | torch.device = "cpu",
              generator: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample B windows of T+1 consecutive tokens; return (x, y), int64 tensors (B, T) on `device`.

    Starts are uniform over [0, len(data) - T) (numpy's global RNG unless a `generator` is given);
    y[b, t] = data[start_b + t + 1], the next token after x[b, t]. x and y are two separate
    contiguous tensors (the batch accounting.timeline counts: 2 * 8*B*T bytes; a view of the
    shifted window would make the loss copy the targets).
    """
    dev = resolve_device(device)
    check_length(data, context_length)
    rng = generator if generator is not None else np.random
    starts = rng.integers(0, len(data) - context_length, size=batch_size) if generator is not None \
        else rng.randint(0, len(data) - context_length, size=batch_size)
    offsets = np.arange(context_length + 1)
    windows = np.asarray(data[starts[:, None] + offsets[None, :]], dtype=np.int64)  # (B, T+1)
    pair = []
    for part in (windows[:, :-1], windows[:, 1:]):  # (B, T) each
        tokens = torch.from_numpy(np.ascontiguousarray(part))
        pair.append(tokens.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else tokens.to(dev))
    return pair[0], pair[1]
