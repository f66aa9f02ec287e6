"""The report as one self-contained HTML page (inline SVG figures, inline CSS, no script, no network)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from analysis.report.parts import Section, inline_svg
from analysis.tables.table import Table

__all__ = ["page"]

_CSS = """
:root { --fg: #1b1b1b; --muted: #5c5c5c; --line: #d8d8d8; --slow: #b3261e; --fast: #0b7285; --accent: #1f4e9c; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1200px; padding: 1.2rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.3rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.3rem; }
p.intro { color: var(--muted); margin: 0.2rem 0 0.8rem; font-style: italic; }
.banner { background: #fdecea; color: var(--slow); border: 1px solid #f5c2bd; padding: 0.5rem 0.8rem;
          border-radius: 4px; font-weight: 600; margin: 0.6rem 0; }
nav { font-size: 0.9rem; margin: 0.6rem 0 1rem; }
nav a { margin-right: 0.9rem; color: var(--accent); text-decoration: none; white-space: nowrap; }
pre.summary { background: #f6f8fa; border: 1px solid var(--line); padding: 0.6rem 0.8rem; border-radius: 4px;
              white-space: pre-wrap; word-break: break-word; font-size: 0.85rem; }
.tablewrap { overflow-x: auto; margin: 0.4rem 0; }
table { border-collapse: collapse; font-size: 0.85rem; }
caption { text-align: left; font-weight: 600; padding: 0.2rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f2f4f7; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.slow td:first-child { border-left: 3px solid var(--slow); }
tr.fast td:first-child { border-left: 3px solid var(--fast); }
tr.hit td:first-child { border-left: 3px solid var(--accent); }
p.legend { color: var(--muted); font-size: 0.8rem; margin: 0.2rem 0 0.8rem; }
p.note { color: var(--muted); font-size: 0.8rem; margin: 0.1rem 0; }
p.unavailable { color: var(--muted); }
figure { margin: 1rem 0 1.6rem; }
figure .svg svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.2rem; }
figcaption a { color: var(--accent); }
dl.glossary dt { font-weight: 600; margin-top: 0.6rem; }
dl.glossary dd { margin: 0.1rem 0 0 1.2rem; }
table.kv th { background: none; font-weight: 600; }
details { margin: 0.4rem 0; }
.glance { border: 1px solid var(--line); border-radius: 4px; padding: 0.3rem 1rem; margin: 0.8rem 0; }
.glance h3 { margin: 0.4rem 0 0.2rem; }
.glance ul { margin: 0.2rem 0 0.5rem; padding-left: 1.2rem; }
.glance li { margin: 0.15rem 0; }
p.headline { font-size: 1.05rem; margin: 0.3rem 0; }
p.headline.first { font-weight: 600; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(t: Table) -> str:
    right = t.right or tuple(False for _ in t.columns)
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    flags = t.flags or tuple("" for _ in t.rows)
    body = []
    for row, flag in zip(t.rows, flags):
        cells = "".join(f'<td class="num">{_e(c)}</td>' if r else f"<td>{_e(c)}</td>" for c, r in zip(row, right))
        body.append(f'<tr class="{_e(flag)}">{cells}</tr>' if flag else f"<tr>{cells}</tr>")
    out = []
    if t.rows:
        out.append(f'<div class="tablewrap"><table><caption>{_e(t.title)}</caption><thead><tr>{head}</tr></thead>'
                   f"<tbody>{''.join(body)}</tbody></table></div>")
    else:
        out.append(f'<p class="note">{_e(t.title)}: nothing to list.</p>')
    if t.note:
        out.append(f'<p class="note">({_e(t.note)})</p>')
    out.append(f'<p class="legend"><b>Columns.</b> {_e(t.legend)}</p>')
    return "\n".join(out)


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<div class="tablewrap"><table class="kv"><tbody>{body}</tbody></table></div>'


def _glance(items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    rows = "".join(f"<li><b>{_e(t)}.</b> {_e(line)}</li>" for t, line in items)
    return f'<div class="glance"><h3>The other analyses at a glance</h3><ul>{rows}</ul></div>'


def _headline(sentences: Sequence[str]) -> str:
    """The findings, one paragraph each, the strongest first (and in bold)."""
    return "\n".join(f'<p class="headline{" first" if i == 0 else ""}">{_e(s)}</p>' for i, s in enumerate(sentences))


def _section(s: Section, n_fig: list[int]) -> str:
    parts = [f'<section id="{_e(s.key)}">', f"<h2>{_e(s.title)}</h2>"]
    if s.intro:
        parts.append(f'<p class="intro">{_e(s.intro)}</p>')
    if s.unavailable:
        parts.append(f'<p class="unavailable">Not available for this dataset: {_e(s.unavailable)}</p>')
    if s.summary:
        parts.append(f'<pre class="summary">{_e(s.summary)}</pre>')
    for note in s.notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.extend(_table(t) for t in s.tables)
    for f in s.figures:
        n_fig[0] += 1
        parts.append(
            f'<figure id="fig-{_e(f.name)}"><div class="svg">{inline_svg(f.svg, f"f{n_fig[0]}")}</div>'
            f"<figcaption>Figure {n_fig[0]}. {_e(f.caption)} "
            f'(<a href="{_e(f.png_path)}">PNG</a>, <a href="{_e(f.svg_path)}">SVG</a>)</figcaption></figure>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def page(*, title: str, simulated: bool, environment: Sequence[tuple[str, str]], protocol: Sequence[tuple[str, str]],
         sweep: str, sections: Sequence[Section], glossary: Sequence[tuple[str, str]], generated: str,
         glance: Sequence[tuple[str, str]] = (), headline: Sequence[str] = ()) -> str:
    """The whole report page: the headline (one sentence per finding), the other analyses at a glance,
    environment and protocol, one section per analysis, glossary."""
    nav = "\n".join(f'<a href="#{_e(s.key)}">{_e(s.title)}</a>' for s in sections)
    n_fig = [0]
    banner = ('<div class="banner">SIMULATED DATA: drawn from the package\'s latency model, not measured. '
              "Every figure and number below describes the simulation.</div>") if simulated else ""
    sweep_html = (f"<details><summary>sweep specification</summary><pre class=\"summary\">{_e(sweep)}</pre></details>"
                  if sweep else "")
    glossary_html = "".join(f"<dt>{_e(t)}</dt><dd>{_e(d)}</dd>" for t, d in glossary)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        banner,
        _headline(headline),
        _glance(glance),
        f'<p class="note">{_e(generated)}</p>',
        f'<nav><a href="#environment">Environment and protocol</a>\n{nav}\n<a href="#glossary">Glossary</a></nav>',
        '<section id="environment"><h2>Environment and protocol</h2>',
        '<div style="display:flex;flex-wrap:wrap;gap:2rem">',
        f"<div><h3>Machine and software</h3>{_kv_table(environment)}</div>",
        f"<div><h3>Protocol and grid</h3>{_kv_table(protocol)}</div></div>",
        sweep_html,
        "</section>",
        *(_section(s, n_fig) for s in sections),
        '<section id="glossary"><h2>Glossary</h2>',
        f'<dl class="glossary">{glossary_html}</dl></section>',
        "</body></html>",
    ])
