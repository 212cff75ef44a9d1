"""Checkpoints: model + optimizer state, iteration, the ModelConfig, and any extra picklable-safe data.

The file is a `torch.save` dict with keys "model", "optimizer" (or None), "iteration",
"model_config" (ModelConfig.to_dict() when the model has a `.config`), "extra" and "checksum":
a CRC-32 over every tensor of the model and optimizer state (their names, dtypes, shapes and
bytes, in order), checked on load, so a file whose tensor bytes were damaged is refused instead of
loading garbage (a file saved before checksums existed loads unchecked). It is loaded with
`weights_only=True`, so extras must be tensors, numbers, strings, lists, tuples or dicts. Paths
are written atomically: a failure part-way leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

import torch

from accounting.atomic import atomic_output
from accounting.config import ModelConfig
from accounting.errors import MissingFileError, UserError

PathOrFile = str | os.PathLike[str] | BinaryIO | IO[bytes]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module under DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _tensors(obj: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts / lists, with its path, in a deterministic order."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from _tensors(obj[key], f"{path}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{path}/{i}")


def state_checksum(*states: Any) -> int:
    """CRC-32 of the tensors in `states` (names, dtypes, shapes and raw bytes)."""
    crc = 0
    for name, tensor in _tensors(list(states)):
        crc = zlib.crc32(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode(), crc)
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        crc = zlib.crc32(flat.view(torch.uint8).numpy(), crc)  # the bytes, no copy
    return crc


def save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    iteration: int, out: PathOrFile, **extra: Any) -> None:
    """Serialize model/optimizer state and `iteration` to a path (atomically) or a binary file.

    The model's ModelConfig is taken from `model.config`, or from a `model_config=` keyword.
    """
    bare = _unwrap(model)
    config = extra.pop("model_config", None) or getattr(bare, "config", None)
    payload = {
        "model": bare.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "iteration": int(iteration),
        "model_config": config.to_dict() if isinstance(config, ModelConfig) else None,
        "extra": extra,
    }
    payload["checksum"] = state_checksum(payload["model"], payload["optimizer"])
    if isinstance(out, (str, os.PathLike)):
        with atomic_output(out) as tmp:
            torch.save(payload, tmp)
    else:
        torch.save(payload, out)


def read_checkpoint(src: PathOrFile, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (weights_only load); clear errors for a missing or foreign file.
    A sharded run's DCP folder (model.dcp_checkpoint) reads as the same dict, its full weights
    gathered in this process and "optimizer" None."""
    if isinstance(src, (str, os.PathLike)) and os.path.isdir(src):
        from model.dcp_checkpoint import is_sharded_checkpoint, read_sharded

        if is_sharded_checkpoint(src):
            return read_sharded(src, map_location)
    if isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
        raise MissingFileError(f"checkpoint not found: {os.fspath(src)}")
    try:
        payload = torch.load(src, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:  # torch reports a corrupt zip as RuntimeError
        raise UserError(f"not a readable checkpoint: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001  (unpickling errors of foreign files vary by type)
        raise UserError(f"not a readable checkpoint: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or "model" not in payload or "iteration" not in payload:
        raise UserError("not a checkpoint written by model.save_checkpoint (missing keys)")
    stored = payload.get("checksum")
    if stored is not None and stored != state_checksum(payload["model"], payload.get("optimizer")):
        raise UserError("checkpoint is corrupt: its tensors do not match the checksum stored with them")
    return payload


def load_checkpoint(src: PathOrFile, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> int:
    """Restore model (and optimizer) state from `src`; return the saved iteration."""
    payload = read_checkpoint(src)
    _unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise UserError("checkpoint holds no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    return int(payload["iteration"])


def checkpoint_model_config(payload: dict[str, Any]) -> ModelConfig:
    """The ModelConfig stored in a checkpoint dict (from read_checkpoint)."""
    if not payload.get("model_config"):
        raise UserError("checkpoint stores no model config; cannot rebuild the model")
    return ModelConfig.from_dict(payload["model_config"])
