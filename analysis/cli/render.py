"""Drawing results on a terminal: rich tables with a legend line, summaries, and JSON (one writer).

Every string that came from a file (coordinate values, attrs, summaries) is
printed with control characters shown as escapes (``\\x1b``) and rich markup
escaped (:mod:`collector.shared.safetext`), so a dataset cannot restyle or scramble
the terminal.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
import xarray as xr
from rich.console import Console
from rich.table import Table as RichTable

from analysis.cli.fit import fit
from analysis.tables.table import Table
from collector.shared.safetext import for_rich, visible

__all__ = ["FORMAT", "PIPED_WIDTH", "console", "dataset_payload", "escape", "json_ready", "print_summary", "render", "write_json"]

_STYLE = {"slow": "bold red", "fast": "bold cyan", "hit": "bold"}


def escape(text: Any) -> str:
    """``text`` safe for rich: control characters shown as escapes, markup escaped."""
    return for_rich(text)


#: The width of a console whose output is piped or redirected, unless ``COLUMNS`` says otherwise: wide enough
#: that no table loses a column and no cell is folded (a file or ``less -S`` has no width to fit).
PIPED_WIDTH = 1000


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout): the terminal's width; when piped, ``COLUMNS`` if set, else
    :data:`PIPED_WIDTH`."""
    stream = stream or sys.stdout
    if stream.isatty():
        return Console(file=stream, highlight=False)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPED_WIDTH
    return Console(file=stream, width=width, highlight=False)


def render(table: Table, out: Console) -> None:
    """Print ``table`` (or a line saying it is empty), its note and its legend line.

    The table fits ``out``'s width (:func:`analysis.cli.fit.fit`): its key columns always, the others while
    there is room (a note names those left out); the series label wraps at spaces, every other cell is
    drawn whole.
    """
    note = table.note
    if table.rows:
        layout = fit(table, out.width)
        rt = RichTable(title=escape(table.title), title_justify="left", show_lines=False)
        right = table.right or tuple(False for _ in table.columns)
        for j, need in zip(layout.keep, layout.min_width):
            if j == 0:  # the label: wraps at spaces, takes what the others leave
                rt.add_column(escape(table.columns[j]), justify="left", overflow="fold", min_width=need)
            else:  # exactly as wide as its widest cell: never folded, never cut
                rt.add_column(escape(table.columns[j]), justify="right" if right[j] else "left", width=need,
                              overflow="fold")
        flags = table.flags or tuple("" for _ in table.rows)
        for row, flag in zip(table.rows, flags):
            rt.add_row(*(escape(row[j]) for j in layout.keep), style=_STYLE.get(flag, ""))
        out.print(rt)
        if layout.dropped:
            left_out = f"columns left out at {out.width} characters: {', '.join(layout.dropped)} (a wider " \
                       "terminal, or --json, shows them)"
            note = f"{note}; {left_out}" if note else left_out
    else:
        out.print(f"{escape(table.title)}: nothing to list")
    if note:
        out.print(f"[dim]({escape(note)})[/dim]")
    out.print(f"[dim]legend: {escape(table.legend)}[/dim]", soft_wrap=False)


def print_summary(text: Any, out: Console) -> None:
    """Print a result's summary text verbatim (no markup; control characters but line breaks shown as escapes)."""
    out.print(visible(text, keep_newlines=True), markup=False, highlight=False, soft_wrap=True)


def json_ready(v: Any) -> Any:
    """Plain JSON data from numpy/xarray values: NaN and infinities become None, times ISO strings."""
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_ready(v.tolist())
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (_dt.datetime, _dt.date, _dt.timedelta)):
        return str(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


#: The ``format`` of every JSON document ``python -m analysis`` prints (docs/cli.md, "JSON output"); the
#: number changes when a key is renamed or removed, not when one is added.
FORMAT = "decode-regimes/1"


def dataset_payload(result: xr.Dataset) -> dict[str, Any]:
    """A result in xarray's ``to_dict`` layout: ``{"summary", "attrs", "dims", "coords", "data_vars"}``."""
    d = result.to_dict(data="list")
    payload = {"summary": str(result.attrs.get("summary", "")), "attrs": d["attrs"], "dims": d["dims"],
               "coords": d["coords"], "data_vars": d["data_vars"]}
    payload["attrs"].pop("summary", None)
    return payload


def write_json(command: str, result: xr.Dataset | Mapping[str, Any], stream: TextIO | None = None) -> None:
    """Print a command's result as one JSON document: ``{"format", "command", ...}`` then the result's keys.

    A Dataset is written in :func:`dataset_payload`'s layout; a mapping (a
    command's own layout, e.g. the regimes' series and segments) as it is.
    NaN and infinities are ``null``.
    """
    payload = dataset_payload(result) if isinstance(result, xr.Dataset) else dict(result)
    envelope = {"format": FORMAT, "command": command, **payload}
    stream = stream or sys.stdout
    json.dump(json_ready(envelope), stream, indent=1, allow_nan=False)
    stream.write("\n")
