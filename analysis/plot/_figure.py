"""Figures without pyplot: a grid of small multiples, the simulated-data label, the legend.

Every figure of :mod:`analysis.plot` is a :class:`matplotlib.figure.Figure`
made here, never through ``pyplot``, so nothing global changes and the
figures render headless (Agg) and in notebooks alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

__all__ = [
    "COLORS",
    "SIMULATED_GID",
    "finish",
    "grid",
    "log_axis",
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


def grid(n_panels: int, *, ncols: int = 3, panel: tuple[float, float] = (4.2, 3.0),
         sharex: bool = False, nrows_per_panel: int = 1) -> tuple[Figure, list[list[Axes]]]:
    """A figure with one cell per panel (``nrows_per_panel`` stacked axes each) in a grid of ``ncols`` columns.

    Returns
    -------
    fig, cells
        ``cells[i]`` is the list of axes of panel ``i`` (top to bottom); unused grid slots are hidden.
    """
    n = max(int(n_panels), 1)
    ncols = max(1, min(ncols, n))
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
