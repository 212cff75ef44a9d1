"""`python -m accounting report|compare`: the accounting from the command line.

report:  --preset NAME plus an override flag per ModelConfig field (--d-model, --num-heads,
         --ffn silu, --tie-embeddings, --attention sdpa, ...), --batch-size, --context-length,
         --dtype float32|bfloat16, --gpu NAME or --peak-flops / --memory-budget, --mfu, --steps,
         --format table|markdown|json|latex, --out FILE (written atomically).
         Parallel layouts: --gpus N, --parallel ddp|zero1|zero2|zero3, --tensor-parallel K,
         --link NVLink-H100|PCIe-5|InfiniBand-NDR add the per-GPU memory, communication and time
         (--batch-size is then the global batch, split over the N / K data-parallel ranks).
compare: --presets a,b,c and/or --context-lengths 1024,4096: forward FLOP shares and the context
         length where attention overtakes the FFN.
Bad input: one line on stderr, exit code 2 (accounting.cli_support.run_cli).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from accounting.atomic import atomic_write_text
from accounting.cli_support import OneLineArgumentParser
from accounting.conventions import TRAINING_DTYPES
from accounting.errors import UserError
from accounting.flags import add_model_flags, flag_type, model_config_from_args
from accounting.format import parse_bytes
from accounting.hardware import DEFAULT_LINK, LINKS
from accounting.layout import STRATEGIES, Layout


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m accounting", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    rep = sub.add_parser("report", help="full accounting of one config")
    add_model_flags(rep)
    rep.add_argument("--batch-size", type=int, default=1)
    rep.add_argument("--dtype", choices=TRAINING_DTYPES, default="float32")
    rep.add_argument("--gpu", default=None, help="GPU name from the table (default H100-SXM)")
    rep.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s (overrides the GPU's)")
    rep.add_argument("--memory-budget", type=flag_type(parse_bytes), default=None,
                     help="bytes, or with a unit: 80GB, 80GiB (default: the GPU's memory)")
    rep.add_argument("--mfu", type=float, default=0.5)
    rep.add_argument("--steps", type=int, default=10_000)
    rep.add_argument("--format", choices=("table", "markdown", "json", "latex"), default="table")
    rep.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    par = rep.add_argument_group("parallel layout (adds the 'parallelism' section)")
    par.add_argument("--gpus", type=int, default=None, metavar="N",
                     help="GPUs (processes) of the layout; --batch-size is then the global batch")
    par.add_argument("--parallel", choices=STRATEGIES, default=None,
                     help="data-parallel strategy over N / K ranks (default ddp); zero1 is "
                          "accounted only")
    par.add_argument("--tensor-parallel", type=int, default=None, metavar="K",
                     help="tensor-parallel degree (default 1): must divide N, the heads, the "
                          "key/value heads and d_ff")
    par.add_argument("--link", choices=tuple(LINKS), default=None,
                     help=f"interconnect for the communication time (default {DEFAULT_LINK})")
    cmp_ = sub.add_parser("compare", help="FLOP shares across model sizes / context lengths")
    add_model_flags(cmp_)
    cmp_.add_argument("--presets", default=None, help="comma-separated preset names")
    cmp_.add_argument("--context-lengths", type=_int_list, default=None)
    cmp_.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    cmp_.add_argument("--out", default=None)
    return parser


def _layout(args: argparse.Namespace) -> Layout | None:
    """The layout the flags ask for, or None when none of --gpus/--parallel/--tensor-parallel/--link
    is given."""
    if all(getattr(args, k) is None for k in ("gpus", "parallel", "tensor_parallel", "link")):
        return None
    return Layout(args.gpus or 1, args.parallel or "ddp", args.tensor_parallel or 1)


def _emit(text: str, out: str | None) -> None:
    if out:
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        from accounting.render import render
        from accounting.report import build_report

        cfg = model_config_from_args(args)
        if args.steps <= 0:
            raise UserError(f"--steps must be positive, got {args.steps}")
        report = build_report(cfg, batch_size=args.batch_size, dtype=args.dtype, gpu=args.gpu,
                              mfu=args.mfu, steps=args.steps, memory_budget_bytes=args.memory_budget,
                              peak_flops_per_s=args.peak_flops, layout=_layout(args), link=args.link)
        _emit(render(report, args.format), args.out)
        return 0
    from accounting.compare_render import run_compare

    _emit(run_compare(args), args.out)
    return 0
