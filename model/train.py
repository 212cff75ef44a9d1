"""`python -m model.train`: train a TransformerLM on a token file, logging JSON lines.

Model shape: `--preset NAME` (default: ModelConfig defaults) plus one flag per ModelConfig field
(`--d-model 128 --ffn silu ...`). Training settings: `--config train.json` and/or one flag per
TrainConfig field (flags win). With `--resume CKPT` the model and training configs stored in the
checkpoint are the base; flags that contradict the stored model config are an error.

Writes `OUT/ckpt.pt` (every --checkpoint-interval steps and at the end, atomically) and
`OUT/log.jsonl` (the events up to the last checkpoint); every event is also printed to stdout
as one JSON line, and a tqdm bar runs on stderr.

Distributed: under `torchrun --nproc-per-node N` (RANK / WORLD_SIZE / LOCAL_RANK in the
environment; nccl on CUDA, gloo on CPU) it trains in the layout `--parallel ddp|zero2|zero3`
(DDP, or FSDP2 with reshard_after_forward False / True) over N / K data-parallel ranks x
`--tensor-parallel K` (Megatron's split of the attention and FFN projections; model/parallelize.py).
`--batch-size` is PER DATA-PARALLEL RANK: the global batch is batch_size x N / K sequences (the
start-up line says so). Rank 0 logs; DDP checkpoints to OUT/ckpt.pt, sharded layouts to the
DCP folder OUT/ckpt.dcp/; `--resume` takes either, under any layout.

MFU (the `mfu` of step events): accounting.train_step_flops (matmul FLOPs, 2mnp, forward +
backward) per step x steps/s over a peak FLOP/s: `--peak-flops` when given (any device), else on
CUDA the GPU's dense peak from accounting's GPU table; each step event names its `peak_source`.
Fast paths: `--optimizer foreach|fused`, `--activation-checkpointing`, `--compile`,
`--dtype bfloat16`, `--attention sdpa`. Memory guard: when the predicted peak of one step
(accounting.timeline) exceeds the device's free memory it refuses to start, one line and exit 2,
naming both and the largest batch that fits; `--force` runs anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser, run_cli
from accounting.config import ModelConfig
from accounting.errors import UserError
from accounting.flags import add_dataclass_flags, add_model_flags, given, model_config_from_args
from model.train_config import TrainConfig

PROG = "python -m model.train"


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="training config JSON (TrainConfig fields)")
    parser.add_argument("--train-data", required=True, help=".npy / .bin token ids, or text (bytes)")
    parser.add_argument("--val-data", help="validation tokens (default: tail val_fraction of train)")
    parser.add_argument("--data-dtype", choices=("uint16", "uint32", "int32", "int64"),
                        help="element type of .bin files (default uint16, or from name.uint32.bin)")
    parser.add_argument("--out", help="output directory (default: the --resume checkpoint's)")
    parser.add_argument("--resume", help="checkpoint to continue from")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--peak-flops", type=float, metavar="FLOP/S",
                        help="device peak FLOP/s for the logged MFU (default: CUDA GPU table)")
    parser.add_argument("--force", action="store_true",
                        help="run even when the predicted peak memory exceeds the device's free memory")
    add_model_flags(parser.add_argument_group("model config"))
    add_dataclass_flags(parser.add_argument_group("training config"), TrainConfig)
    return parser


def resolve_configs(args: argparse.Namespace, stored: dict[str, Any] | None
                    ) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs from preset/--config/flags, on top of a checkpoint's if resuming."""
    if stored is not None:
        saved = ModelConfig.from_dict(stored["model_config"])
        model_cfg = model_config_from_args(args, base=None if args.preset or args.hf_config else saved)
        if model_cfg != saved:
            diff = [f"{k}={v!r}" for k, v in saved.to_dict().items() if getattr(model_cfg, k) != v]
            raise UserError(f"--resume checkpoint was trained with {', '.join(diff)}")
        train_cfg = TrainConfig.from_dict(stored.get("train_config") or {})
    else:
        model_cfg = model_config_from_args(args)
        train_cfg = TrainConfig()
    if args.config:
        train_cfg = train_cfg.replace(**TrainConfig.load(args.config).to_dict())
    return model_cfg, train_cfg.replace(**given(args, TrainConfig))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError:
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 alone says it
            raise SystemExit(2) from None
        raise


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    stored = None
    if args.resume:
        from model.checkpoint import read_checkpoint
        from model.dcp_checkpoint import is_sharded_checkpoint, read_meta

        payload = read_meta(args.resume) if is_sharded_checkpoint(args.resume) \
            else read_checkpoint(args.resume)
        extra = payload.get("extra") or {}
        stored = {"model_config": payload.get("model_config"), "train_config": extra.get("train_config")}
        if not stored["model_config"]:
            raise UserError(f"{args.resume} stores no model config")
    if args.peak_flops is not None and not (0 < args.peak_flops < float("inf")):
        raise UserError(f"--peak-flops must be a positive number, got {args.peak_flops}")
    model_cfg, train_cfg = resolve_configs(args, stored)
    from model.trainer import run_layout

    layout = run_layout(model_cfg, train_cfg, int(os.environ.get("WORLD_SIZE", "1")))
    out = args.out or (str(Path(args.resume).parent) if args.resume else None)
    if out is None:
        raise UserError("--out DIR is required (checkpoints and log.jsonl go there)")
    check_writable(out, folder=True)  # before any step: the checkpoint at the end must land
    from model.data import load_tokens

    train_data = load_tokens(args.train_data, args.data_dtype)
    val_data = load_tokens(args.val_data, args.data_dtype) if args.val_data else None
    return _run(model_cfg, train_cfg, train_data, val_data, out, args, layout)


def layout_line(layout, batch_size: int, context_length: int) -> str:
    """The start-up line: the layout and the global batch (per-rank batch x data-parallel ranks)."""
    dp, tokens = layout.data_parallel, batch_size * layout.data_parallel * context_length
    if layout.world_size == 1:
        return f"layout: one process; batch {batch_size} sequences ({tokens:,} tokens per step)"
    return (f"layout: {layout.describe()}; global batch {batch_size * dp} sequences = "
            f"{batch_size} per data-parallel rank (--batch-size) x {dp} data-parallel rank"
            f"{'s' if dp != 1 else ''} ({tokens:,} tokens per step)")


def _run(model_cfg, train_cfg, train_data, val_data, out, args, layout) -> int:
    from model.trainer import train

    world = layout.world_size
    if world > 1:
        train_cfg = _init_distributed(train_cfg)
    rank = int(os.environ.get("RANK", "0"))

    def on_start(layout, global_batch: int) -> None:
        sys.stderr.write(f"{PROG}: {layout_line(layout, train_cfg.batch_size, model_cfg.context_length)}\n")

    said = []

    def on_event(event: dict) -> None:
        if event["type"] == "step" and not said:
            said.append(True)
            sys.stderr.write(f"{PROG}: {_mfu_basis(event)}\n")
        print(json.dumps(event), flush=True)

    stop = _stop_on_signals()
    if world > 1:
        import torch.distributed as dist
    try:
        result = train(model_cfg, train_cfg, train_data, val_data, out_dir=out,
                       resume_from=args.resume, on_event=on_event, stop_event=stop,
                       progress=not args.no_progress, peak_flops_per_s=args.peak_flops,
                       check_memory=not args.force, on_start=on_start)
        if world > 1:  # rank 0 may still be writing the checkpoint: leave the group together
            dist.barrier()  # (a rank that tears down first can make its gloo peer abort)
    finally:
        if world > 1:
            dist.destroy_process_group()
    if rank == 0:
        sys.stderr.write(f"{PROG}: {result.message}; checkpoint {result.checkpoint}\n")
    return 1 if result.diverged else 130 if result.reason == "stopped" else 0


def _mfu_basis(event: dict) -> str:
    if event.get("peak_flops_per_s") is None:
        return "MFU not logged (no known peak FLOP/s on this device; pass --peak-flops)"
    return (f"MFU = accounting.train_step_flops (matmul FLOPs, 2mnp) per step x steps/s over "
            f"{event['peak_flops_per_s']:.4g} FLOP/s ({event['peak_source']})")


def _stop_on_signals() -> threading.Event | None:
    """First Ctrl-C / SIGTERM: finish the current step, checkpoint, exit 130. A second: abort.

    Single-process only: under torchrun the launcher forwards signals to every rank, and ranks
    stopping at different steps would hang in a collective, so the default handling is kept.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or threading.current_thread() is not threading.main_thread():
        return None
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()
        sys.stderr.write(f"\n{PROG}: stopping after this step (again to abort)\n")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _init_distributed(train_cfg: TrainConfig) -> TrainConfig:
    """Join the torchrun process group; on CUDA, pin this process to cuda:LOCAL_RANK."""
    import torch
    import torch.distributed as dist

    if train_cfg.device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return train_cfg.replace(device=f"cuda:{local}")
    dist.init_process_group("gloo")
    return train_cfg


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog=PROG))
