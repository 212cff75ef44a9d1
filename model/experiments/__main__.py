"""`python -m model.experiments`: see model.experiments.cli."""

from accounting.cli_support import run_cli
from model.experiments.cli import PROG, main

raise SystemExit(run_cli(main, prog=PROG))
