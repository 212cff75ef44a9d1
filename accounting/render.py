"""Renderers: a report (or any list of `Table`s) as a plain-text table, Markdown, LaTeX or JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from accounting.render_json import latex, render_json
from accounting.report import Report
from accounting.tables import Table, report_tables

FORMATS = ("table", "markdown", "json", "latex")


def _text(cell: object) -> str:
    return str(cell) if isinstance(cell, (sp.Basic, int)) else str(cell)


def tables_to_text(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        cells = [list(t.headers)] + [[_text(c) for c in row] for row in t.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(t.headers))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        out += [t.title, "=" * len(t.title), line(cells[0]), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in cells[1:]] + [""]
    return "\n".join(out)


def tables_to_markdown(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        out += [f"### {t.title}", "", "| " + " | ".join(t.headers) + " |",
                "|" + "|".join("---" for _ in t.headers) + "|"]
        out += ["| " + " | ".join(f"`{c}`" if isinstance(c, sp.Basic) else _text(c).replace("|", "\\|")
                                  for c in row) + " |" for row in t.rows]
        out.append("")
    return "\n".join(out)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}")):
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\0")
    return s.replace("\0", r"\textbackslash{}")


def tables_to_latex(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        out += [r"\begin{table}[h]", r"\centering", rf"\caption{{{_tex_escape(t.title)}}}",
                r"\begin{tabular}{" + "l" * len(t.headers) + "}", r"\hline",
                " & ".join(_tex_escape(h) for h in t.headers) + r" \\", r"\hline"]
        out += [" & ".join(f"${latex(c)}$" if isinstance(c, sp.Basic) else _tex_escape(_text(c))
                           for c in row) + r" \\" for row in t.rows]
        out += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def render(report: Report, fmt: str = "table") -> str:
    """The report in `fmt` (table | markdown | json | latex)."""
    return render_as(fmt, lambda: report_tables(report), lambda: render_json(report))


def render_as(fmt: str, tables: Callable[[], list[Table]], as_json: Callable[[], str]) -> str:
    """`tables()` as text, Markdown or LaTeX, or `as_json()` for "json" (FORMATS)."""
    if fmt == "json":
        return as_json()
    renderers = {"table": tables_to_text, "markdown": tables_to_markdown, "latex": tables_to_latex}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return renderers[fmt](tables())
