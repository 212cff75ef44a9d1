"""summary.md: the targets met or missed with their numbers, the plan's steps, the environment, every
measurement's rows (generically: whatever quantities they hold) and the key numbers. Imports no
torch; all number formatting comes from validation.render / accounting.format."""

from __future__ import annotations

import json
from collections.abc import Sequence

from validation.campaign import targets as tg
from validation.campaign.plan import NAMES_NOTE, StepRecord
from validation.reasons import UNEXPLAINED
from validation.render import fmt_value, to_markdown
from validation.rows import ComparisonRow, Measurement

Named = tg.Named


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def _rel(row: ComparisonRow | None) -> str:
    if row is None or row.rel_diff is None:
        return "-"
    return "equal" if row.equal else f"{row.rel_diff:+.2%}"


def _get(m: Measurement, quantity: str, component: str) -> ComparisonRow | None:
    return next((r for r in m.rows if r.quantity == quantity and r.component == component), None)


def _measured(m: Measurement, quantity: str, component: str) -> str:
    row = _get(m, quantity, component)
    return "-" if row is None else fmt_value(row.measured, row.unit)


def targets_section(measurements: Named) -> list[str]:
    found = tg.evaluate(measurements)
    lines = ["## Targets (fixed before the run: met or missed, never tuned after it)", "",
             *_table(("target", "goal", "measured", "result"),
                     [(t.name, t.goal, t.measured, f"**{t.verdict}**") for t in found]), ""]
    lines += [f"- {t.name}: {t.detail}" for t in found if t.detail]
    return lines + [""]


def plan_section(records: Sequence[StepRecord]) -> list[str]:
    rows = [(r.spec.number, r.spec.key, r.spec.title, r.status, f"{r.seconds:.1f}", f"{r.budget_s:.0f}",
             f"{r.spec.estimate_s:.0f}", ", ".join(r.files) or "-", r.error or "") for r in records]
    return ["## Plan", "", *_table(("step", "key", "what", "status", "seconds", "budget s",
                                    "est. H100 s", "files", "error"), rows), ""]


def environment_section(facts: dict) -> list[str]:
    rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in facts.items()]
    return ["## Environment", "", *_table(("what", "value"), rows), ""]


def overview(m: Measurement) -> list[str]:
    """Per quantity: rows, equal, named differences, unexplained, measured-only, largest |rel diff|."""
    by: dict[str, list[ComparisonRow]] = {}
    for r in m.rows:
        by.setdefault(r.quantity, []).append(r)
    rows = []
    for q, rs in by.items():
        diffs = [abs(r.rel_diff) for r in rs if r.rel_diff is not None]
        rows.append((q, len(rs), sum(r.equal for r in rs),
                     sum(not r.equal and r.reason not in ("", UNEXPLAINED) and r.symbolic is not None
                         for r in rs),
                     sum(r.reason == UNEXPLAINED for r in rs), sum(r.symbolic is None for r in rs),
                     f"{max(diffs):.3%}" if diffs else "-"))
    return _table(("quantity", "rows", "equal", "named difference", "unexplained", "measured only",
                   "largest abs. rel. diff"), rows)


def measurements_section(measurements: Named) -> list[str]:
    lines = ["## Measurements (every row each one holds, by quantity)", ""]
    for name, m in measurements:
        lines += [f"### {tg.label(name, m)} (`{name}`)", "", *overview(m), ""]
        lines += [f"- note: {n}" for n in m.notes] + ([""] if m.notes else [])
    return lines


def key_numbers(measurements: Named) -> list[str]:
    lines = []
    peak = [(tg.label(n, m), m) for n, m in measurements if _get(m, tg.STEP_MEMORY, tg.PEAK)]
    if peak:
        lines += ["## Training-step memory (the probe: float32 master weights, bf16 autocast where bf16)", "",
                  *_table(("run", "predicted peak", "max allocated", "cuBLAS workspaces",
                           "allocator rounding", "transient after the forward", "raw error",
                           "error after residuals"),
                          [(lab, fmt_value(_get(m, tg.STEP_MEMORY, tg.PEAK).symbolic, "bytes"),
                            _measured(m, tg.STEP_MEMORY, tg.PEAK),
                            _measured(m, tg.STEP_MEMORY, "cuBLAS workspaces"),
                            _measured(m, tg.STEP_MEMORY, "allocator rounding at the peak"),
                            _measured(m, tg.STEP_MEMORY, "transient above the end of the forward"),
                            _rel(_get(m, tg.STEP_MEMORY, tg.PEAK)),
                            _rel(_get(m, tg.STEP_MEMORY, tg.PEAK_AFTER_RESIDUALS))) for lab, m in peak]), ""]
    timed = [(tg.label(n, m), m) for n, m in measurements if _get(m, tg.STEP_TIME, "median step")]
    if timed:
        lines += ["## Training-step time (the probe)", "",
                  *_table(("run", "median step", "tokens/s", "MFU vs the table's peak"),
                          [(lab, _measured(m, tg.STEP_TIME, "median step"),
                            _measured(m, tg.STEP_TIME, "tokens/s"),
                            _measured(m, tg.STEP_TIME, "MFU vs the table's dense peak"))
                           for lab, m in timed]), ""]
    for title, quantity in (("Dense matmul peak", tg.DENSE_PEAK), ("Largest batch", tg.LARGEST),
                            ("Training throughput", tg.THROUGHPUT)):
        rows = [r for _, m in measurements for r in m.rows if r.quantity == quantity]
        if rows:
            lines += [f"## {title}", "", *_table(
                ("component", "symbolic", "measured", "rel. diff", "reason"),
                [(r.component, fmt_value(r.symbolic, r.unit), fmt_value(r.measured, r.unit), _rel(r),
                  r.reason) for r in rows]), ""]
    return lines


def header(*, gpu: str, dry_run: bool, started: str, elapsed_s: float, budget_s: float,
           command: str) -> list[str]:
    lines = [f"# GPU campaign: {gpu}", "",
             f"`{command}`, started {started}, {elapsed_s:.0f} s of the plan's {budget_s:.0f} s budget.", ""]
    if dry_run:
        lines += ["**Dry run**: the plan at tiny sizes on the CPU. These numbers test the campaign's code, "
                  "not a GPU; the targets' verdicts below mean nothing here.", ""]
    return lines + [f"Names: {NAMES_NOTE}.", ""]


def render(records: Sequence[StepRecord], measurements: Named, facts: dict, **head) -> str:
    """The whole summary.md (head: gpu, dry_run, started, elapsed_s, budget_s, command)."""
    lines = header(**head) + targets_section(measurements) + plan_section(records) \
        + key_numbers(measurements) + environment_section(facts) + measurements_section(measurements)
    lines += ["## All rows", ""]
    for name, m in measurements:
        lines += [f"### {tg.label(name, m)} (`{name}`)", "", to_markdown(m)]
    return "\n".join(lines).rstrip("\n") + "\n"


def brief(records: Sequence[StepRecord], measurements: Named, **head) -> str:
    """What the CLI prints: the head, the targets and the plan (summary.md has the rest)."""
    lines = header(**head) + targets_section(measurements) + plan_section(records)
    return "\n".join(lines).rstrip("\n") + "\n"
