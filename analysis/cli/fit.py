"""Which columns of a table fit a terminal's width, and how wide each must be to keep its cells whole.

A table's *key* columns (:attr:`analysis.tables.table.Table.key`) are always shown; the others are added
in their order while the table still fits, and those left out are named in a note. Every column but the
first (the series label, which wraps at spaces) is at least as wide as its widest cell, so no number is
ever folded or cut; the reason of an ``n/a (reason)`` cell is words, and wraps at spaces too. Used by
:func:`analysis.cli.render.render`.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.tables.table import Table

__all__ = ["LABEL_MIN", "NA_PREFIX", "Layout", "fit"]

#: How a missing value's cell starts (:func:`analysis.core.labels.na`): its reason is words, and wraps.
NA_PREFIX = "n/a ("

#: The narrowest the label column is made, in characters (its longest word, if shorter, is the floor).
LABEL_MIN = 16
#: The label is never made narrower than this, whatever the terminal (it then folds inside words).
_LABEL_FLOOR = 8
#: Characters a column costs beyond its content in a boxed table with one space of padding each side.
_PER_COLUMN = 3


@dataclass(frozen=True)
class Layout:
    """The columns to draw and their minimum widths.

    Attributes
    ----------
    keep
        Indices of the columns drawn, in table order.
    min_width
        Per kept column, the width below which a cell would be folded (the label: its longest word).
    dropped
        Names of the columns left out for lack of width.
    """

    keep: tuple[int, ...]
    min_width: tuple[int, ...]
    dropped: tuple[str, ...]


def _text_width(cell: str) -> int:
    """The width a cell needs to stay whole: all of it, but the longest word of an ``n/a (reason)`` (words)."""
    return max(len(w) for w in cell.split()) if cell.startswith(NA_PREFIX) else len(cell)


def _cell_width(table: Table, j: int) -> int:
    """Widest cell of column ``j``, or the longest word of its header if wider (the header wraps at spaces)."""
    return max([_text_width(r[j]) for r in table.rows] + [len(w) for w in table.columns[j].split()] + [1])


def _label_width(table: Table) -> int:
    """The label column's floor: its longest word, at least :data:`LABEL_MIN` unless every label is shorter."""
    longest_word = max([len(w) for r in table.rows for w in r[0].split()] + [1])
    widest = _cell_width(table, 0)
    return min(widest, max(longest_word, LABEL_MIN))


def fit(table: Table, width: int | None) -> Layout:
    """The columns of ``table`` that fit ``width`` characters (None: all), key columns first.

    Where every cell fits on one line (always with ``width`` None: piped output), every column is as wide as
    its widest cell.
    Key columns are kept even when the label then has to fold inside a word (a terminal too narrow for its
    longest word); the other columns are added, in order, only while the label keeps its longest word (or
    :data:`LABEL_MIN` characters). A header wider than its cells wraps at spaces: only its longest word
    counts.
    """
    n = len(table.columns)
    full = [max([len(r[j]) for r in table.rows] + [len(table.columns[j]), 1]) for j in range(n)]
    if width is None or sum(w + _PER_COLUMN for w in full) + 1 <= width:  # everything fits on one line a row
        return Layout(tuple(range(n)), tuple(full), ())
    need = [_label_width(table) if j == 0 else _cell_width(table, j) for j in range(n)]
    key = {table.columns.index(k) for k in table.key_columns}
    chosen = set(key)
    used = sum(need[j] + _PER_COLUMN for j in chosen) + 1
    for j in range(n):
        if j not in chosen and used + need[j] + _PER_COLUMN <= width:
            chosen.add(j)
            used += need[j] + _PER_COLUMN
    others = sum(need[j] + _PER_COLUMN for j in chosen if j != 0) + _PER_COLUMN + 1
    need[0] = max(_LABEL_FLOOR, min(need[0], width - others))  # too narrow: the label folds
    keep = tuple(sorted(chosen))
    return Layout(keep, tuple(need[j] for j in keep), tuple(table.columns[j] for j in range(n) if j not in chosen))
