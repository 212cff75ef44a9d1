"""`python -m tokenizer {train,encode,stats} ...` (see tokenizer.cli)."""

import sys

from tokenizer.cli import main

sys.exit(main())
