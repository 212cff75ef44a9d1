"""`python -m model.experiments {lr-sweep,batch-size,ablations,sgd-toy}`: reproducible sweeps.

Each subcommand writes into --out (default runs/experiments/<subcommand>; the committed results
in experiments/results/<subcommand> are rewritten only when --out names them): runs/<run>.jsonl
(every step's event), summary.json (see model.experiments.summary) and plotly HTML charts.
Defaults fit a 2-core CPU in a few minutes (the tiny model of model.experiments.settings on the
stdlib-docs corpus, BPE-tokenized at vocab 1,024 and cached in --cache-dir);
`--preset tinystories --device cuda --corpus FILE` scales it up. Bad input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from accounting.atomic import check_writable
from accounting.cli_support import OneLineArgumentParser
from accounting.errors import UserError
from accounting.flags import (
    add_dataclass_flags, add_model_flags, base_config, flag_type, given, model_config_from_args,
)
from accounting.format import parse_bytes
from model.experiments.settings import EXPERIMENT_TRAINING
from model.train_config import TrainConfig

PROG = "python -m model.experiments"
_TRAINING_FLAGS = ("device", "dtype", "steps", "batch_size", "eval_interval", "eval_batches", "threads")
"""TrainConfig fields the LM subcommands take as flags (over EXPERIMENT_TRAINING; --seed is common)."""
_TRAINING_DEFAULTS = ", ".join(f"{f} {'auto' if getattr(EXPERIMENT_TRAINING, f) is None else getattr(EXPERIMENT_TRAINING, f)}"
                               for f in _TRAINING_FLAGS)
RESULTS = Path("runs") / "experiments"
"""Default output folder (git-ignored). The committed results are regenerated only on request:
--out experiments/results/<subcommand>."""
DEFAULT_LR = 1e-2  # used by batch-size and ablations unless --lr or --lr-from says otherwise


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _rate_grid(text: str) -> list[float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError("the learning-rate grid is empty")
    return [_positive_float(p) for p in parts]


def _common(p: argparse.ArgumentParser, name: str, lm: bool = True, fixed_steps: bool = True) -> None:
    p.add_argument("--out", default=str(RESULTS / name), help=f"output directory (default {RESULTS / name})")
    p.add_argument("--seed", type=int, default=0, help="seed of init and data order (default 0)")
    p.add_argument("--plotly-js", choices=("shared", "inline", "cdn"), default="shared",
                   help="plotly.js: one shared copy in the parent of --out (default), inline, or cdn")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm bars")
    p.add_argument("--divergence-factor", type=_positive_float, default=1.5,
                   help="diverged when loss > this x the first loss (default 1.5)")
    if not lm:
        return
    g = p.add_argument_group("model and data")
    add_model_flags(g, helps={
        "vocab_size": "BPE vocab size and the model's (default: the preset's, else 1024)"})
    g.add_argument("--corpus", help="UTF-8 text file to BPE-train and tokenize (default: stdlib docs)")
    g.add_argument("--tokens", help="already tokenized .npy/.bin ids (instead of --corpus)")
    g.add_argument("--max-corpus-bytes", type=_positive_int, help="use only the first N bytes of text")
    g.add_argument("--cache-dir", help="tokenizer + token cache (default ~/.cache/lm-accounting/experiments)")
    t = p.add_argument_group(f"training (defaults: {_TRAINING_DEFAULTS})")
    helps = {} if fixed_steps else {"batch_size": "the reference batch, at which --lr applies"}
    add_dataclass_flags(t, TrainConfig, include=_TRAINING_FLAGS if fixed_steps else
                        [f for f in _TRAINING_FLAGS if f != "steps"], helps=helps)


def _lr_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr", type=_positive_float, help=f"the baseline's peak lr (default {DEFAULT_LR:g})")
    p.add_argument("--lr-from", help="take the baseline lr from an lr-sweep summary.json (its best_lr)")


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{lr-sweep,batch-size,ablations,sgd-toy}")
    p = sub.add_parser("lr-sweep", help="learning rates on a log grid, past divergence")
    _common(p, "lr-sweep")
    p.add_argument("--lrs", type=_rate_grid, help="comma-separated peak rates (default 1e-4 ... 1)")
    p = sub.add_parser("batch-size", help="batch 1 up to the largest that fits, fixed token budget",
                       description="steps per run = --token-budget / (batch x context)")
    _common(p, "batch-size", fixed_steps=False)
    _lr_flags(p)
    p.add_argument("--token-budget", type=_positive_int, default=1 << 18,
                   help="training tokens per run (default 262144)")
    p.add_argument("--lr-rule", choices=("sqrt", "linear", "constant"), default="sqrt",
                   help="lr(B) = lr x sqrt(B / --batch-size) (default), x B / --batch-size, or constant")
    p.add_argument("--memory-budget", type=flag_type(parse_bytes), help="bytes the batch must fit in, e.g. 2GiB "
                   "(default: free CUDA memory, or available host memory on CPU)")
    p.add_argument("--min-steps", type=_positive_int, default=8,
                   help="fewest steps a run may get (default 8)")
    p.add_argument("--max-batch", type=_positive_int, help="cap the largest batch")
    p = sub.add_parser("ablations", help="baseline vs no RMSNorm, post-norm, no RoPE, SiLU FFN")
    _common(p, "ablations")
    _lr_flags(p)
    p.add_argument("--low-lr-factor", type=_positive_float, default=0.1,
                   help="no-RMSNorm's second run uses lr x this (default 0.1)")
    p = sub.add_parser("sgd-toy", help="SGD with lr/sqrt(t+1) on a random 10x10 parameter")
    _common(p, "sgd-toy", lm=False)
    p.add_argument("--lrs", type=_rate_grid, default=[1e1, 1e2, 1e3], help="rates (default 1e1,1e2,1e3)")
    p.add_argument("--steps", type=_positive_int, default=10, help="SGD steps (default 10)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_writable(args.out, folder=True)  # before the token cache and the runs
    if args.command == "sgd-toy":
        from model.experiments.settings import Settings, tiny_config
        from model.experiments.sgd_toy import run_sgd_toy

        settings = Settings(tiny_config(), EXPERIMENT_TRAINING.replace(seed=args.seed),
                            divergence_factor=args.divergence_factor, progress=not args.no_progress,
                            plotly_js=args.plotly_js)
        summary = run_sgd_toy(settings, args.out, args.lrs, args.steps)
    else:
        summary = _run_lm(args)
    print(f"{PROG} {args.command}: {len(summary.runs)} runs -> {Path(args.out) / 'summary.json'}")
    for key, value in summary.findings.items():
        if not isinstance(value, dict):
            print(f"  {key}: {value}")
    return 0


def _run_lm(args: argparse.Namespace):
    # every check that needs no data comes before the corpus is tokenized and cached
    lr, source = _base_lr(args) if args.command != "lr-sweep" else (None, "")
    if args.command == "ablations" and not args.low_lr_factor < 1:
        raise UserError(f"--low-lr-factor must be below 1, got {args.low_lr_factor:g}")
    settings, corpus = _settings_and_corpus(args)
    if args.command == "lr-sweep":
        from model.experiments.lr_sweep import DEFAULT_LRS, run_lr_sweep

        return run_lr_sweep(settings, corpus, args.out, args.lrs or DEFAULT_LRS)
    if args.command == "batch-size":
        from model.experiments.batch_size import run_batch_size

        return run_batch_size(settings, corpus, args.out, lr=lr, token_budget=args.token_budget,
                              lr_rule=args.lr_rule, ref_batch=settings.training.batch_size,
                              memory_budget_bytes=args.memory_budget, min_steps=args.min_steps,
                              max_batch=args.max_batch, lr_source=source)
    from model.experiments.ablations import run_ablations

    return run_ablations(settings, corpus, args.out, lr=lr, low_lr_factor=args.low_lr_factor,
                         lr_source=source)


def _base_lr(args: argparse.Namespace) -> tuple[float, str]:
    if args.lr is not None and args.lr_from:
        raise UserError("give --lr or --lr-from, not both")
    if args.lr is not None:
        return args.lr, "--lr"
    if args.lr_from:
        from model.experiments.summary import load_summary

        best = load_summary(args.lr_from).findings.get("best_lr")
        if not best:
            raise UserError(f"{args.lr_from} has no best_lr (not an lr-sweep summary?)")
        return float(best), f"best_lr of {args.lr_from}"
    return DEFAULT_LR, "default"


def _settings_and_corpus(args: argparse.Namespace):
    from model.experiments.data import DEFAULT_CACHE, prepare_corpus
    from model.experiments.settings import DEFAULT_VOCAB, Settings, tiny_config

    if args.corpus and args.tokens:
        raise UserError("give --corpus or --tokens, not both")
    training = EXPERIMENT_TRAINING.replace(**given(args, TrainConfig))  # --seed is one of them
    from model.data import resolve_device

    resolve_device(training.device)  # a bad or absent device fails before any work
    base = base_config(args) if (args.preset or args.hf_config) else None
    vocab = args.vocab_size or (base.vocab_size if base else DEFAULT_VOCAB)
    corpus = prepare_corpus(vocab, corpus=args.corpus, tokens=args.tokens, max_bytes=args.max_corpus_bytes,
                            cache_dir=args.cache_dir or DEFAULT_CACHE, progress=not args.no_progress)
    cfg = model_config_from_args(args, base=base or tiny_config(corpus.vocab_size))
    if cfg.vocab_size < corpus.vocab_size:
        raise UserError(f"the data has {corpus.vocab_size} token ids but the model's vocab_size is "
                        f"{cfg.vocab_size}; pass --vocab-size {cfg.vocab_size} or less")
    settings = Settings(cfg, training, divergence_factor=args.divergence_factor,
                        progress=not args.no_progress, plotly_js=args.plotly_js)
    return settings, corpus
