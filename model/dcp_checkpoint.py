"""Checkpoints that move between layouts: torch.distributed.checkpoint (DCP).

A sharded run (zero2, zero3, tensor parallelism) saves `OUT/ckpt.dcp/`: every rank writes its own
shards of the model and AdamW state ({"model": ..., "optim": ...}, torch's state_dict API, keyed by
parameter name), and rank 0 adds `trainer.pt` (iteration, model and train configs, RNG states,
events: what ckpt.pt's "extra" holds). It is written to `ckpt.dcp.tmp/` and renamed when complete.

`load_training_state(model, optimizer, path)` restores either kind of checkpoint into a model of
any layout: a DCP folder is read resharded to the model's current placements (one process, DDP,
FSDP2, TP, 2-D); a single-file ckpt.pt (model.checkpoint) goes in as a full state dict. So a run
saved under one layout resumes under another. `read_sharded(path)` gives a DCP folder as the
payload dict model.checkpoint.read_checkpoint returns (full model weights, no optimizer), so the
sampling CLI reads both kinds.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from accounting.errors import MissingFileError, UserError

DCP_NAME = "ckpt.dcp"
META_NAME = "trainer.pt"


def is_sharded_checkpoint(path: str | os.PathLike[str]) -> bool:
    """A DCP folder (it holds DCP's `.metadata`)."""
    return Path(path).is_dir() and (Path(path) / ".metadata").is_file()


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path,
                 meta: dict[str, Any]) -> None:
    """Collective: every rank calls it with the same `path`; rank 0's `meta` is written."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    tmp = path.with_name(path.name + ".tmp")
    if _rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    if _rank() == 0:
        torch.save(meta, tmp / META_NAME)
        old = path.with_name(path.name + ".old")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    _barrier()


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A DCP folder's trainer.pt: {"iteration", "model_config", "extra"}."""
    meta = Path(path) / META_NAME
    if not meta.is_file():
        raise MissingFileError(f"{path} is not a checkpoint written by model.train (no {META_NAME})")
    try:
        payload = torch.load(meta, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (a foreign or corrupt file)
        raise UserError(f"not a readable checkpoint: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or "iteration" not in payload:
        raise UserError(f"{meta} is not a model.train checkpoint (missing keys)")
    return payload


def read_sharded(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                 ) -> dict[str, Any]:
    """The payload of model.checkpoint.read_checkpoint for a DCP folder: its meta plus "model",
    the full weights (read in this one process), and "optimizer": None."""
    import torch.distributed.checkpoint as dcp

    from model.checkpoint import checkpoint_model_config
    from model.transformer import TransformerLM

    payload = read_meta(path)
    model = TransformerLM(checkpoint_model_config(payload), device="meta")
    model.to_empty(device=map_location)
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load(state, checkpoint_id=str(path))
    return {**payload, "model": state["model"], "optimizer": None}


def load_training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        path: str | os.PathLike[str], payload: dict[str, Any] | None = None) -> None:
    """Restore model and optimizer (any layout) from a DCP folder or a ckpt.pt `payload`."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_state_dict, set_state_dict,
    )

    if is_sharded_checkpoint(path):
        import torch.distributed.checkpoint as dcp

        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"])
        return
    if payload is None or payload.get("optimizer") is None:
        raise UserError(f"{path} holds no optimizer state to resume from")
    names = [name for name, _ in model.named_parameters()]
    set_state_dict(model, optimizer, model_state_dict=payload["model"],
                   optim_state_dict=_keyed_by_name(payload["optimizer"], names),
                   options=StateDictOptions(full_state_dict=True))


def _keyed_by_name(optim_sd: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """torch's optimizer state dict (parameters numbered in model.parameters() order, one group)
    keyed by parameter name instead, as torch.distributed.checkpoint's state_dict API wants."""
    state = {names[i]: value for i, value in optim_sd["state"].items()}
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in optim_sd["param_groups"]]
    return {"state": state, "param_groups": groups}
