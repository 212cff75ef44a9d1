"""Rendering of `python -m accounting compare`: FLOP shares per preset / context length."""

from __future__ import annotations

import argparse
import json

from accounting.compare import GROUPS, ShareRow, attention_crossover, attention_crossover_formula, flop_shares
from accounting.config import GPT2_PRESETS
from accounting.errors import UserError
from accounting.flags import model_config_from_args
from accounting.format import fmt_flops, fmt_share
from accounting.render import tables_to_markdown, tables_to_text
from accounting.tables import Table


def compare_rows(args: argparse.Namespace) -> tuple[list[ShareRow], dict[str, float]]:
    """Share rows for every (preset, context length) asked for, and each preset's crossover T."""
    presets = [p.strip() for p in args.presets.split(",")] if args.presets else (
        [args.preset] if args.context_lengths else list(GPT2_PRESETS))
    rows, crossover = [], {}
    for name in presets:
        cfg = model_config_from_args(args, preset=name)
        crossover[name] = attention_crossover(cfg)
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
            "attention_overtakes_ffn_at_context_length": crossover,
        }, indent=2) + "\n"
    share_table = Table("Forward FLOP shares (per sequence)",
                        ("preset", "T", "forward FLOPs", *GROUPS),
                        [(r.label, f"{r.context_length:,}", fmt_flops(r.forward_flops),
                          *(fmt_share(r.shares[g]) for g in GROUPS)) for r in rows])
    cross = Table("Context length where the attention core (QK^T + PV) overtakes the FFN",
                  ("preset", "solved T", "formula"),
                  [(name, f"{t:,.0f}", attention_crossover_formula(
                      model_config_from_args(args, preset=name).ffn)) for name, t in crossover.items()])
    render = tables_to_markdown if args.format == "markdown" else tables_to_text
    return render([share_table, cross])
