"""Rendering of `python -m accounting compare`: FLOP shares per preset / context length."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accounting.compare import GROUPS, ShareRow, attention_crossover, attention_crossover_formula, flop_shares
from accounting.config import DEFAULT_PRESET, GPT2_PRESETS
from accounting.errors import UserError
from accounting.flags import model_config_from_args
from accounting.format import fmt_flops, fmt_share
from accounting.render import tables_to_markdown, tables_to_text
from accounting.tables import Table


def compare_rows(args: argparse.Namespace) -> tuple[list[ShareRow], dict[str, tuple[float, str]]]:
    """Share rows for every (preset, context length) asked for, and each preset's crossover T
    (with its FFN kind, which the crossover formula depends on)."""
    if args.presets is not None:
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
        if not presets:
            raise UserError(f"--presets names no preset: {args.presets!r}")
    else:
        presets = [None] if args.context_lengths else list(GPT2_PRESETS)
    rows, crossover = [], {}
    for name in presets:
        cfg = model_config_from_args(args, preset=name)
        name = name or args.preset or (Path(args.hf_config).stem if args.hf_config else DEFAULT_PRESET)
        crossover[name] = (attention_crossover(cfg), cfg.ffn)
        for t in args.context_lengths or [cfg.context_length]:
            if t <= 0:
                raise UserError(f"context lengths must be positive, got {t}")
            rows.append(flop_shares(cfg, t, label=name))
    return rows, crossover


def run_compare(args: argparse.Namespace) -> str:
    rows, crossover = compare_rows(args)
    if args.format == "json":
        return json.dumps({
            "rows": [{"preset": r.label, "context_length": r.context_length,
                      "forward_flops_per_sequence": r.forward_flops, "shares": r.shares} for r in rows],
            "attention_overtakes_ffn_at_context_length": {n: t for n, (t, _) in crossover.items()},
        }, indent=2) + "\n"
    share_table = Table("Forward FLOP shares (per sequence)",
                        ("preset", "T", "forward FLOPs", *GROUPS),
                        [(r.label, f"{r.context_length:,}", fmt_flops(r.forward_flops),
                          *(fmt_share(r.shares[g]) for g in GROUPS)) for r in rows])
    cross = Table("Context length where the attention core (QK^T + PV) overtakes the FFN",
                  ("preset", "solved T", "formula"),
                  [(name, f"{t:,.0f}", attention_crossover_formula(ffn))
                   for name, (t, ffn) in crossover.items()])
    render = tables_to_markdown if args.format == "markdown" else tables_to_text
    return render([share_table, cross])
