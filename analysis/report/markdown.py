"""The report's markdown summary: headline, each section's summary and tables, links to the PNG figures."""

from __future__ import annotations

from collections.abc import Sequence

from analysis.report.parts import Section
from analysis.tables.table import Table

__all__ = ["markdown"]


def _cell(text: str) -> str:
    """One line of markdown text: table pipes escaped, and HTML (which renderers may run) as entities."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> str:
    if not t.rows:
        return f"*{_cell(t.title)}: nothing to list.*\n"
    right = t.right or tuple(False for _ in t.columns)
    lines = [f"**{_cell(t.title)}**", "", "| " + " | ".join(_cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"({_cell(t.note)})"]
    lines += ["", f"*Columns:* {_cell(t.legend)}", ""]
    return "\n".join(lines)


def markdown(*, title: str, simulated: bool, environment: Sequence[tuple[str, str]], sections: Sequence[Section],
             generated: str, glance: Sequence[tuple[str, str]] = (), headline: Sequence[str] = ()) -> str:
    """The markdown summary of a report: the headline (one sentence per finding) first."""
    out = [f"# {_cell(title)}", ""]
    if simulated:
        out += ["**SIMULATED DATA**: drawn from the package's latency model, not measured.", ""]
    for i, sentence in enumerate(headline):
        out += [f"**{_cell(sentence)}**" if i == 0 else _cell(sentence), ""]
    if glance:
        out += ["## The other analyses at a glance", ""] + [f"- **{_cell(t)}.** {_cell(line)}" for t, line in glance]
        out += [""]
    out += [_cell(generated), ""]
    out += ["## Environment", ""] + [f"- {_cell(k)}: {_cell(v)}" for k, v in environment] + [""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.unavailable:
            out += [f"Not available for this dataset: {_cell(s.unavailable)}", ""]
        if s.summary:
            out += ["```", s.summary.replace("```", "'''"), "```", ""]
        out += [f"{_cell(n)}" for n in s.notes] + ([""] if s.notes else [])
        out += [_table(t) for t in s.tables]
        out += [f"![{_cell(f.caption)}]({f.png_path})" for f in s.figures] + ([""] if s.figures else [])
    out.append("See index.html for the full report with every figure and the glossary.")
    return "\n".join(out) + "\n"
