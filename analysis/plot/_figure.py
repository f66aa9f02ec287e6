"""Figures without pyplot: a grid of small multiples, the simulated-data label, the legend.

Every figure of :mod:`analysis.plot` is a :class:`matplotlib.figure.Figure`
made here, never through ``pyplot``, so nothing global changes and the
figures render headless (Agg) and in notebooks alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

__all__ = [
    "COLORS",
    "SIMULATED_GID",
    "finish",
    "fit_columns",
    "grid",
    "log_axis",
    "median_line",
    "plain_log_labels",
    "tex_safe",
]

#: One palette for every figure.
COLORS: dict[str, str] = {
    "trial": "#8c8c8c",
    "median": "#1f4e9c",
    "baseline": "#444444",
    "slow": "#d62728",
    "fast": "#17a2b8",
    "confounded": "#ff7f0e",
    "band": "#1f4e9c",
    "a": "#6a3d9a",
    "b": "#2ca02c",
    "normal": "#8c8c8c",
}
#: ``gid`` of the text that marks a figure of simulated data.
SIMULATED_GID = "simulated-label"


def tex_safe(text: Any) -> str:
    """Text for a matplotlib label: ``$`` escaped so that strings from files are never read as math."""
    return str(text).replace("$", r"\$")


def fit_columns(n_panels: int, ncols: int = 3) -> int:
    """The number of columns for ``n_panels`` panels: ``ncols`` or one either side (at least 2), whichever fills
    the last row best (ties: ``ncols``, then the squarer grid), so the last row is never almost empty.

    7 panels: 4 columns (4 + 3), not 3 (a last row of one); 10: 2 columns; 12: 3.
    """
    n = max(int(n_panels), 1)
    options = [c for c in (ncols, ncols - 1, ncols + 1) if 2 <= c <= n] or [min(max(ncols, 1), n)]

    def last_row_fill(c: int) -> float:
        return (n - (math.ceil(n / c) - 1) * c) / c

    return min(options, key=lambda c: (-last_row_fill(c), c != ncols, abs(math.ceil(n / c) - c), c))


def grid(n_panels: int, *, ncols: int = 3, panel: tuple[float, float] = (4.2, 3.0),
         sharex: bool = False, nrows_per_panel: int = 1) -> tuple[Figure, list[list[Axes]]]:
    """A figure with one cell per panel (``nrows_per_panel`` stacked axes each) in a grid of about ``ncols``
    columns (:func:`fit_columns`: the last row as full as one column more or less allows).

    Returns
    -------
    fig, cells
        ``cells[i]`` is the list of axes of panel ``i`` (top to bottom); unused grid slots are hidden.
    """
    n = max(int(n_panels), 1)
    ncols = fit_columns(n, ncols)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(panel[0] * ncols, 7.5), panel[1] * nrows * (1 + 0.45 * (nrows_per_panel - 1)) + 1.0),
                 layout="constrained")
    axes = fig.subplots(nrows * nrows_per_panel, ncols, squeeze=False, sharex="col" if sharex else False)
    cells: list[list[Axes]] = []
    for i in range(nrows * ncols):
        r, c = divmod(i, ncols)
        stack = [axes[r * nrows_per_panel + k][c] for k in range(nrows_per_panel)]
        if i < n:
            cells.append(stack)
        else:
            for ax in stack:
                ax.set_visible(False)
    return fig, cells


def finish(fig: Figure, *, title: str, simulated: bool, handles: Sequence[Artist | None] = (), note: str = "") -> Figure:
    """Title (with ``[SIMULATED DATA]`` for simulated data), the legend below the panels and an optional note in it."""
    suffix = "  [SIMULATED DATA]" if simulated else ""
    fig.suptitle(tex_safe(title) + suffix, fontsize=12, color="#b00000" if simulated else "black",
                 gid=SIMULATED_GID if simulated else "title")
    shown = [h for h in handles if h is not None]
    if note:
        shown.append(Line2D([], [], ls="", label=tex_safe(note)))
    if shown:
        longest = max(len(str(h.get_label())) for h in shown)
        fit = int(fig.get_figwidth() // (0.075 * longest + 0.7))
        fig.legend(handles=shown, loc="outside lower center", ncols=max(1, min(len(shown), 4, fit)), fontsize=8,
                   frameon=False)
    return fig


def median_line(ax: Axes, budgets: np.ndarray, med: np.ndarray, *, gid: str, color: str = COLORS["median"]) -> int:
    """The median over trials: solid between budgets next to each other on the dataset's budget axis, dotted
    across budgets the series did not measure (so no straight line pretends to be measured). Returns the number
    of dotted gaps drawn."""
    fin = np.flatnonzero(np.isfinite(med))
    x, y = budgets[fin], med[fin]
    apart = np.diff(fin) > 1  # a measured budget of the dataset lies between them, unmeasured here
    solid_x, solid_y = x.copy(), y.copy()
    if apart.any():
        cut = np.flatnonzero(apart) + 1
        solid_x = np.insert(solid_x, cut, np.nan)
        solid_y = np.insert(solid_y, cut, np.nan)
        gx = np.ravel([[x[i], x[i + 1], np.nan] for i in np.flatnonzero(apart)])
        gy = np.ravel([[y[i], y[i + 1], np.nan] for i in np.flatnonzero(apart)])
        ax.plot(gx, gy, color=color, lw=0.8, ls=":", gid=f"{gid}-gap")
    ax.plot(solid_x, solid_y, color=color, lw=1.5, marker=".", ms=4, gid=gid)
    return int(apart.sum())


class _PlainLog(LogFormatter):
    """Log-axis labels as plain numbers (``0.5``, ``2``, ``20``), never ``2x10^0``."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:.3g}"


def plain_log_labels(axis: Any) -> None:
    """Plain-number labels on the major and minor ticks of a logarithmic ``axis`` (an XAxis or YAxis)."""
    axis.set_major_formatter(_PlainLog(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLog(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def log_axis(ax: Axes, which: str = "y") -> None:
    """Make ``which`` axis logarithmic with plain-number labels on its major and minor ticks."""
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    plain_log_labels(ax.yaxis if which == "y" else ax.xaxis)
