"""`python -m accounting report|compare` (see accounting.cli)."""

import sys

from accounting.cli import main
from accounting.cli_support import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m accounting"))
