"""Drawing results on a terminal: rich tables with a legend line, summaries, and JSON (one writer).

Every string that came from a file (coordinate values, attrs, summaries) is
printed with control characters shown as escapes (``\\x1b``) and rich markup
escaped (:mod:`collector.safetext`), so a dataset cannot restyle or scramble
the terminal.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
import xarray as xr
from rich.console import Console
from rich.table import Table as RichTable

from analysis.tables.table import Table
from collector.safetext import for_rich, visible

__all__ = ["FORMAT", "console", "dataset_payload", "escape", "json_ready", "print_summary", "render", "write_json"]

_STYLE = {"slow": "bold red", "fast": "bold cyan", "hit": "bold"}


def escape(text: Any) -> str:
    """``text`` safe for rich: control characters shown as escapes, markup escaped."""
    return for_rich(text)


def console(stream: TextIO | None = None) -> Console:
    """A console on stdout: the terminal's width, or 200 columns when piped."""
    stream = stream or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 200, highlight=False)


def render(table: Table, out: Console) -> None:
    """Print ``table`` (or a line saying it is empty), its note and its legend line."""
    if table.rows:
        rt = RichTable(title=escape(table.title), title_justify="left", show_lines=False)
        right = table.right or tuple(False for _ in table.columns)
        for col, r in zip(table.columns, right):
            rt.add_column(escape(col), justify="right" if r else "left", overflow="fold")
        flags = table.flags or tuple("" for _ in table.rows)
        for row, flag in zip(table.rows, flags):
            rt.add_row(*(escape(c) for c in row), style=_STYLE.get(flag, ""))
        out.print(rt)
    else:
        out.print(f"{escape(table.title)}: nothing to list")
    if table.note:
        out.print(f"[dim]({escape(table.note)})[/dim]")
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
