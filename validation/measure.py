"""`python -m validation.measure`: measure one training step of the real model beside the accounting.

(The function behind it is `validation.core.measure`.)

--device meta|cpu|cuda (default: cuda if available, else cpu), --preset NAME plus the accounting
CLI's override flags (--d-model, --ffn silu, --attention sdpa, --tie-embeddings, ...),
--batch-size, --context-length (tokens per sequence; also the config's context_length),
--dtype float32|bfloat16|bfloat16-pure (bfloat16: the trainer's autocast), --optimizer
reference|foreach|fused and --activation-checkpointing (the training path of the memory timeline and
the timed steps), --steps (timed steps on cpu / cuda), --format table|markdown|json, --out FILE
(written atomically), --tokenizer [TEXT_FILE] (also measure a BPE trained on that text, default the
project's stdlib corpus). Progress on stderr (tqdm). Bad input: one line, exit code 2. On cpu / cuda
it refuses to start (one line, exit 2) when the step's predicted peak memory exceeds the memory the
device has free, naming both and the largest batch that fits; --force runs anyway.

Parallel layouts: --parallel ddp|zero2|zero3 [--tensor-parallel K] [--world-size N] (default 2)
spawns N ranks itself (gloo on CPU, NCCL with --device cuda) and puts each rank's parameter,
gradient, AdamW-state and activation bytes and every collective of the steady-state step beside
accounting.parallel / accounting.communication (validation.distributed). --batch-size is then the
global batch (default: one sequence per data-parallel rank); float32, the reference AdamW, no
checkpointing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser, emit, run_cli
from accounting.conventions import ACTIVATION_DTYPES, OPTIMIZERS
from accounting.errors import UserError
from accounting.flags import add_model_flags, model_config_from_args
from accounting.layout import RUNNABLE_STRATEGIES, Layout


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_model_flags(p)
    p.add_argument("--device", default=None,
                   help="meta | cpu | cuda[:n] (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="sequences per step (default 1); with --parallel the global batch, split "
                        "over the data-parallel ranks (default: one per rank)")
    p.add_argument("--dtype", choices=ACTIVATION_DTYPES, default="float32",
                   help="bfloat16: the trainer's autocast; bfloat16-pure: a model whose weights are bf16")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="reference")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--force", action="store_true", help="run even when the predicted peak exceeds free memory")
    p.add_argument("--steps", type=int, default=3, help="timed training steps after a warm-up (cpu, cuda)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    p.add_argument("--tokenizer", nargs="?", const="", default=None, metavar="TEXT_FILE",
                   help="also measure the tokenizer (a BPE trained on TEXT_FILE, default the stdlib corpus)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    par = p.add_argument_group("parallel layout (spawns the ranks itself)")
    par.add_argument("--parallel", choices=RUNNABLE_STRATEGIES, default=None,
                     help="measure this data-parallel strategy on --world-size ranks")
    par.add_argument("--tensor-parallel", type=int, default=None, metavar="K",
                     help="tensor-parallel degree (default 1); must divide the world size")
    par.add_argument("--world-size", type=int, default=None, metavar="N",
                     help="ranks to spawn (default 2)")
    return p


def _progress_bar(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=100, file=sys.stderr, desc="measure",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def update(phase: str, done: float) -> None:
        bar.set_description(phase)
        bar.update(max(0, round(100 * done) - bar.n))

    return update, bar.close


def _with_tokenizer(result, path: str):
    import dataclasses
    from pathlib import Path

    from validation.tokenizer_check import measure_tokenizer

    text = Path(path).read_text(encoding="utf-8") if path else None
    return dataclasses.replace(result, rows=result.rows + measure_tokenizer(text).rows)


def _layout(args) -> Layout | None:
    """The layout of --parallel / --tensor-parallel / --world-size, None when none is given."""
    if args.parallel is None and args.tensor_parallel is None and args.world_size is None:
        return None
    return Layout(2 if args.world_size is None else args.world_size, args.parallel or "ddp",
                  args.tensor_parallel or 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out:
        check_writable(args.out)  # before the measurement, not after it
    from validation.core import measure
    from validation.render import render

    cfg = model_config_from_args(args)
    layout = _layout(args)
    if layout is not None:
        from validation.distributed import check_world

        device = args.device or "cpu"
        check_world(layout, device)
        if args.dtype != "float32":
            raise UserError("the distributed measurement runs float32 (--dtype bfloat16 is not measured)")
        if args.optimizer != "reference" or args.activation_checkpointing:
            raise UserError("the distributed measurement runs the reference AdamW without checkpointing")
        if args.tokenizer is not None:
            raise UserError("--tokenizer is not measured with --parallel")
        layout.check_model(cfg)
        layout.per_rank_batch(layout.data_parallel if args.batch_size is None else args.batch_size)
    else:
        from validation.core import measurable_device

        device = args.device or _default_device()
        measurable_device(device)  # a bad device is one line before the progress bar starts
        batch_size = 1 if args.batch_size is None else args.batch_size
        if not args.force:  # before anything is allocated; pure bf16 guarded as float32 (an upper bound)
            from model.guard import guard_step

            guard_step(cfg, batch_size, device, dtype="float32" if args.dtype == "bfloat16-pure" else args.dtype,
                       optimizer=args.optimizer, checkpointing=args.activation_checkpointing,
                       context_length=args.context_length)
    progress, close = _progress_bar(not args.no_progress)
    try:
        if layout is not None:
            from validation.distributed import measure as measure_layout

            result = measure_layout(cfg, layout=layout, batch_size=args.batch_size,
                                    context_length=args.context_length, device=device,
                                    progress=progress)
        else:
            result = measure(cfg, device=device, batch_size=batch_size,
                             context_length=args.context_length, dtype=args.dtype, steps=args.steps,
                             optimizer=args.optimizer, checkpointing=args.activation_checkpointing,
                             progress=progress)
    finally:
        close()
    if args.tokenizer is not None:
        result = _with_tokenizer(result, args.tokenizer)
    text = render(result, args.format)
    emit(text, args.out)
    return 0


PROG = "python -m validation.measure"

if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog=PROG))
