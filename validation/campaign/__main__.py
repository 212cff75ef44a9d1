"""`python -m validation.campaign`: the GPU campaign's command line (see validation.campaign)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from accounting.cli_support import OneLineArgumentParser, run_cli
from accounting.atomic import check_writable
from accounting.errors import UserError
from validation.campaign import PROG
from validation.campaign.plan import DEFAULT_BUDGET_S, PLAN, select


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description="The GPU campaign: a fixed plan of measurements, "
                              "one JSON per measurement and summary.md in --out.")
    p.add_argument("--out", required=True, help="folder for the measurement JSONs and summary.md")
    p.add_argument("--dry-run", action="store_true",
                   help="the same plan at tiny sizes on the CPU (tests the campaign, not a GPU)")
    p.add_argument("--only", default=None, metavar="STEP[,STEP]",
                   help="run only these steps (the environment always runs): "
                        + ", ".join(f"{s.number}={s.key}" for s in PLAN) + "; 3 = all of 3a-3e")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help="stop scheduling new steps once this many seconds are spent (default %(default)s)")
    p.add_argument("--device", default="cuda", help="the CUDA device (default cuda; ignored with --dry-run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def _device(args):
    import torch

    if args.dry_run:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("CUDA is not available here; --dry-run runs the plan on the CPU at tiny sizes")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device: not a device: {args.device!r}") from None
    if device.type != "cuda":
        raise UserError(f"--device must be a CUDA device (use --dry-run for the CPU), got {args.device!r}")
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.budget_s > 0:
        raise UserError(f"--budget-s must be a positive number of seconds, got {args.budget_s}")
    specs = select(args.only)
    out = check_writable(args.out, folder=True)  # before any work: every measurement must land
    device = _device(args)
    from validation.campaign.runner import run_plan
    from validation.campaign.summary import brief

    command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    result = run_plan(specs, out, device=device, dry_run=args.dry_run, budget_s=args.budget_s,
                      command=command, progress=not args.no_progress)
    sys.stdout.write(brief(result.records, result.measurements, **result.head))
    sys.stdout.write(f"\nEvery row, the environment and the key numbers: {out / 'summary.md'}\n")
    return 1 if any(r.status == "failed" for r in result.records) else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog=PROG))
