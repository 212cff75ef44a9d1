"""Rendering of `python -m accounting conventions`: the published answers beside ours and the
measured ones (accounting.published)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accounting.config import get_preset
from accounting.flags import model_config_from_args
from accounting.json_io import read_json_file
from accounting.published import SEEDS_PRESET, measured_answers, published_answers
from accounting.render import tables_to_markdown, tables_to_text
from accounting.tables import Table

RESULTS = Path(__file__).resolve().parents[1] / "validation" / "results"
"""The committed measurements (read as JSON data; accounting imports no validation code)."""


def _measurement(args: argparse.Namespace, seeds: bool) -> tuple[dict, str]:
    if args.measured:
        return read_json_file(args.measured, "measurement"), args.measured
    committed = RESULTS / f"{SEEDS_PRESET}_meta_float32_B1_T1024_naive.json"
    if seeds and committed.is_file():
        return read_json_file(committed, "measurement"), str(committed.relative_to(RESULTS.parents[1]))
    return {}, ""


def run_conventions(args: argparse.Namespace) -> str:
    """The published answers for --preset (default cs336-gpt2-xl, the config they are for) and
    its overrides; the published values are shown only for that config itself."""
    cfg = model_config_from_args(args, base=None if (args.preset or args.hf_config)
                                 else get_preset(SEEDS_PRESET))
    seeds = cfg == get_preset(SEEDS_PRESET)
    answers = published_answers(cfg, published=seeds)
    args.preset = args.preset or SEEDS_PRESET
    measurement, source = _measurement(args, seeds)
    measured = measured_answers(measurement)
    if args.format == "json":
        return json.dumps({
            "preset": args.preset, "measured_from": source or None,
            "answers": [{"question": a.question, "convention": a.convention, "value": a.value,
                         "answer": a.answer, "published": a.published,
                         "reproduces_published": a.reproduces, "this_project": a.ours} for a in answers],
            "measured": measured}, indent=2) + "\n"
    rows = []
    for a in answers:
        shown = f"{a.answer:,g}" if a.answer == a.value else f"{a.answer:,g} (from {a.value:,.2f})"
        published = "—" if a.published is None else f"{a.published:,}" + (
            " (reproduced)" if a.reproduces else " (not reproduced exactly)")
        rows.append((a.question, ("this project: " if a.ours else "") + a.convention.removeprefix(
            "this project: "), shown, published, measured.get(a.question, "") if a.ours else ""))
    note = (f"measured: {source}" if source else "measured: none given (python -m validation.measure "
            f"--device meta --preset {args.preset} --format json --out F, then --measured F)")
    table = Table(f"Published answers for {args.preset} by convention, beside this project's ({note})",
                  ("question", "convention", "value", "published", "the real model"), rows)
    render = tables_to_markdown if args.format == "markdown" else tables_to_text
    return render([table])
