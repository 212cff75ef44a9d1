"""`python -m accounting report|compare|inference`: the accounting from the command line.

report:  --preset NAME plus an override flag per ModelConfig field (--d-model, --num-heads,
         --ffn silu, --tie-embeddings, --attention sdpa, ...), --batch-size, --context-length,
         --dtype float32|bfloat16, --gpu NAME or --peak-flops / --memory-budget, --mfu, --steps,
         --format table|markdown|json|latex, --out FILE (written atomically).
         Parallel layouts: --gpus N, --parallel ddp|zero1|zero2|zero3, --tensor-parallel K,
         --link NVLink-H100|PCIe-5|InfiniBand-NDR add the per-GPU memory, communication and time
         (--batch-size is then the global batch, split over the N / K data-parallel ranks).
compare: --presets a,b,c and/or --context-lengths 1024,4096: forward FLOP shares and the context
         length where attention overtakes the FFN.
conventions: the published answers to CS336's accounting problem, each from the convention that
         yields it, beside this project's answer and what the real model measures.
inference: --preset NAME plus the override flags, --batch-size B, --prompt-tokens P, --new-tokens G,
         --dtype float32|bfloat16|float16|int8|int4, --gpu NAME (or --peak-flops, --hbm-bandwidth,
         --memory-budget), --format, --out: KV cache, prefill / decode FLOPs and bytes, the roofline
         bounds (time to first token, time per output token, tokens/s), the largest batch and context.
Bad input: one line on stderr, exit code 2 (accounting.cli_support.run_cli).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser, emit
from accounting.conventions import ACTIVATION_CONVENTIONS, OPTIMIZERS, TRAINING_DTYPES
from accounting.errors import UserError
from accounting.flags import add_model_flags, flag_type, model_config_from_args
from accounting.format import parse_bytes
from accounting.published import SEEDS_PRESET
from accounting.hardware import DEFAULT_LINK, LINKS
from accounting.layout import STRATEGIES, Layout


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m accounting", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    rep = sub.add_parser("report", help="full accounting of one config")
    add_model_flags(rep)
    rep.add_argument("--batch-size", type=int, default=1)
    rep.add_argument("--dtype", choices=TRAINING_DTYPES, default="float32")
    rep.add_argument("--optimizer", choices=OPTIMIZERS, default="reference",
                     help="the AdamW implementation whose temporaries the memory timeline replays")
    rep.add_argument("--activation-checkpointing", action="store_true",
                     help="per-block checkpointing in the memory timeline")
    rep.add_argument("--activations", choices=ACTIVATION_CONVENTIONS, default="implementation",
                     help="convention of the peak and largest batch: implementation (the step's "
                          "timeline) or textbook (CS336's list, summed)")
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
    conv = sub.add_parser("conventions", help="the published CS336 answers, each from its convention, "
                          "beside this project's and the real model's")
    add_model_flags(conv, helps={"context_length": f"T (default the config's; the published answers "
                                                   f"are for {SEEDS_PRESET} at 1,024)"})
    conv.add_argument("--measured", default=None, metavar="MEASUREMENT_JSON",
                      help="a `python -m validation.measure --format json` result of this config "
                           "(default: the committed one, if there is)")
    conv.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    conv.add_argument("--out", default=None)
    cmp_ = sub.add_parser("compare", help="FLOP shares across model sizes / context lengths")
    add_model_flags(cmp_)
    cmp_.add_argument("--presets", default=None, help="comma-separated preset names")
    cmp_.add_argument("--context-lengths", type=_int_list, default=None)
    cmp_.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    cmp_.add_argument("--out", default=None)
    _add_inference(sub)
    return parser


def _add_inference(sub) -> None:
    from accounting.inference import SERVING_DTYPES

    inf = sub.add_parser("inference", help="serving: KV cache, prefill / decode, roofline, capacity")
    add_model_flags(inf)
    inf.add_argument("--batch-size", type=int, default=1, help="B: sequences decoded together")
    inf.add_argument("--prompt-tokens", type=int, default=None,
                     help="P: prompt tokens per sequence (default: context_length - new tokens + 1)")
    inf.add_argument("--new-tokens", type=int, default=256, help="G: tokens generated per sequence")
    inf.add_argument("--dtype", choices=tuple(SERVING_DTYPES), default="bfloat16",
                     help="weights' dtype (int8 / int4: weight-only what-ifs, compute in bfloat16)")
    inf.add_argument("--gpu", default=None, help="GPU name from the table (default H100-SXM)")
    inf.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s (overrides the GPU's)")
    inf.add_argument("--hbm-bandwidth", type=flag_type(parse_bytes), default=None,
                     help="HBM bytes/s, or with a unit: 3.35TB (per second; overrides the GPU's)")
    inf.add_argument("--memory-budget", type=flag_type(parse_bytes), default=None,
                     help="bytes, or with a unit: 80GB, 80GiB (default: the GPU's memory)")
    inf.add_argument("--format", choices=("table", "markdown", "json", "latex"), default="table")
    inf.add_argument("--out", default=None, help="write here (atomically) instead of stdout")


def _inference(args: argparse.Namespace) -> str:
    from accounting.inference_render import render_inference
    from accounting.inference_report import build_inference_report

    cfg = model_config_from_args(args)
    prompt = args.prompt_tokens
    if prompt is None:  # the longest prompt the context holds beside G new tokens
        prompt = max(cfg.context_length - args.new_tokens + 1, 1)
    report = build_inference_report(
        cfg, batch_size=args.batch_size, prompt_tokens=prompt, new_tokens=args.new_tokens,
        dtype=args.dtype, gpu=args.gpu, peak_flops_per_s=args.peak_flops,
        hbm_bytes_per_s=args.hbm_bandwidth, memory_budget_bytes=args.memory_budget)
    return render_inference(report, args.format)


def _layout(args: argparse.Namespace) -> Layout | None:
    """The layout the flags ask for, or None when none of --gpus/--parallel/--tensor-parallel/--link
    is given."""
    if all(getattr(args, k) is None for k in ("gpus", "parallel", "tensor_parallel", "link")):
        return None
    return Layout(args.gpus or 1, args.parallel or "ddp", args.tensor_parallel or 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out:
        check_writable(args.out)
    if args.command == "report":
        from accounting.render import render
        from accounting.report import build_report

        cfg = model_config_from_args(args)
        if args.steps <= 0:
            raise UserError(f"--steps must be positive, got {args.steps}")
        report = build_report(cfg, batch_size=args.batch_size, dtype=args.dtype, gpu=args.gpu,
                              mfu=args.mfu, steps=args.steps, memory_budget_bytes=args.memory_budget,
                              peak_flops_per_s=args.peak_flops, optimizer=args.optimizer,
                              checkpointing=args.activation_checkpointing,
                              activations=args.activations, layout=_layout(args), link=args.link)
        emit(render(report, args.format), args.out)
        return 0
    if args.command == "conventions":
        from accounting.published_render import run_conventions

        emit(run_conventions(args), args.out)
        return 0
    if args.command == "inference":
        emit(_inference(args), args.out)
        return 0
    from accounting.compare_render import run_compare

    emit(run_compare(args), args.out)
    return 0
