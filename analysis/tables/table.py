"""A table of strings, shared by the command line, the HTML report and the markdown summary.

Builders (:mod:`analysis.tables.results`) turn an analysis result into a
:class:`Table`; renderers draw it (rich on a terminal, HTML, markdown). Every
table carries a *legend*: one line explaining its columns.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.labels import clean_text, fmt_num, iter_series, series_name, varying_dims
from analysis.errors import InputError

__all__ = ["Table", "extra_columns", "flat", "labels", "select_rows"]


@dataclass(frozen=True)
class Table:
    """Rows of display strings.

    Attributes
    ----------
    title
        What the table shows.
    columns
        Column headers.
    rows
        One tuple of strings per row (as many as ``columns``).
    legend
        One line explaining the columns in plain words.
    flags
        Per row: ``""``, ``"slow"``, ``"fast"`` or ``"hit"`` (for highlighting).
    note
        What was left out (rows beyond the limit, uninteresting series).
    right
        Per column: right-aligned (numbers).
    key
        The columns a reader needs in every row (the label, where, how much, how sure): a narrow terminal
        leaves out the others, never these (:func:`analysis.cli.fit.fit`). Empty: the first three.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    legend: str
    flags: tuple[str, ...] = ()
    note: str = ""
    right: tuple[bool, ...] = field(default=())
    key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in self.key if k not in self.columns]
        if unknown:
            raise InputError(f"Table.key names {unknown!r}, which are not among the columns {self.columns!r}")

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key columns, the label first (the first three columns where none are declared)."""
        keys = self.key or self.columns[:3]
        return tuple(dict.fromkeys((self.columns[0], *keys))) if self.columns else ()

    def as_records(self) -> list[dict[str, str]]:
        """The rows as ``{column: value}`` dicts."""
        return [dict(zip(self.columns, r)) for r in self.rows]


def flat(result: xr.Dataset, name: Hashable, dims: Sequence[str]) -> np.ndarray:
    """``result[name]`` as a numpy array ``(n_series, *rest)`` with ``dims`` first, in C order.

    A dim of ``dims`` that the variable lacks is broadcast (its values repeat).
    """
    da = result[name]
    missing = {d: result.sizes[d] for d in dims if d not in da.dims}
    if missing:
        da = da.expand_dims(missing)
    rest = [d for d in da.dims if d not in dims]
    arr = np.asarray(da.transpose(*dims, *rest).values)
    n = int(np.prod([result.sizes[d] for d in dims], dtype=np.int64))
    return arr.reshape((n,) + arr.shape[len(dims):])


def labels(result: xr.Dataset, dims: Sequence[str]) -> list[str]:
    """The human name of every series over ``dims`` (see :func:`analysis.core.labels.series_name`)."""
    varying = varying_dims(result, dims)
    return [series_name(values, varying) for _, values in iter_series(result, dims)]


def extra_columns(result: xr.Dataset, dims: Sequence[str], known: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, long_name)`` of numeric or boolean variables over exactly ``dims`` that are not in ``known``.

    New variables that an analysis adds (e.g. a minimum detectable effect per
    series) are shown without any table having to know them.
    """
    out = []
    for name, da in result.data_vars.items():
        if str(name) in known or set(da.dims) != set(dims) or da.dtype.kind not in "biuf":
            continue
        out.append((str(name), clean_text(da.attrs.get("long_name", name))))
    return out


def select_rows(rows: Sequence[tuple[str, ...]], flags: list[str], interesting: list[bool], *, only_interesting: bool,
                max_rows: int | None, what: str, measured: Sequence[bool] | None = None,
                absent_what: str = "", absent_why: str = "no measurement", absent_count: int | None = None,
                ) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...], str]:
    """Interesting rows first (all rows unless ``only_interesting``), at most ``max_rows``; and a note on the rest.

    Rows whose ``measured`` is False (a series with no run of its own: a cell of a combined or sparse
    dataset nobody measured) are never listed; the note counts them: "N ``absent_what`` (default ``what``) with
    ``absent_why`` not listed" (``absent_count``: how many of them to count there, when only some are worth
    saying, e.g. the devices a measured model did not run on, not the model x device cells of no series).
    """
    kept = [True] * len(rows) if measured is None else [bool(m) for m in measured]
    order = [i for i in range(len(rows)) if interesting[i] and kept[i]]
    if not only_interesting:
        order += [i for i in range(len(rows)) if not interesting[i] and kept[i]]
    n_absent = len(rows) - sum(kept)
    hidden_boring = len(rows) - n_absent - len(order)
    cut = order if max_rows is None else order[:max_rows]
    notes = []
    said = n_absent if absent_count is None else absent_count
    if said:
        notes.append(f"{said} {absent_what or what} with {absent_why} not listed")
    if hidden_boring:
        notes.append(f"{hidden_boring} other {what} with nothing to report not listed")
    if len(cut) < len(order):
        notes.append(f"{len(order) - len(cut)} more rows not shown")
    return tuple(rows[i] for i in cut), tuple(flags[i] for i in cut), "; ".join(notes)


def num(x: Any, fmt: str = ".3g") -> str:
    """Alias of :func:`analysis.core.labels.fmt_num` for the builders."""
    return fmt_num(x, fmt)
