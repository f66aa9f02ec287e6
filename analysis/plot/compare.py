"""The compare plot: B/A per budget with its CI, the series ratio, and the regimes of A and of B."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.core.labels import iter_series, series_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, grid, log_axis, tex_safe

__all__ = ["compare"]


def compare(result: xr.Dataset, *, max_panels: int = 12) -> Figure:
    """One panel per series of an :func:`analysis.compare` result.

    Parameters
    ----------
    result
        The Dataset returned by :func:`analysis.compare`.
    max_panels
        Most series drawn (changed ones first).

    Returns
    -------
    matplotlib.figure.Figure
        Per series: the ratio B/A of each shared budget (points, log
        scale) with its CI (bars; red where significant), 1 (no change,
        dashed), the series ratio outside regimes with its CI (band), and
        the regimes of A and of B shaded from their first to their last
        budget (``gid`` ``regime-a-...`` / ``regime-b-...``). The verdict is
        the panel's title.
    """
    if not isinstance(result, xr.Dataset) or "series_ratio" not in result or "ratio" not in result:
        raise InputError("plot.compare() needs the Dataset returned by analysis.compare()")
    dims = series_dims(result, "series_ratio")
    every = list(iter_series(result, dims))
    changed = [bool(np.asarray(result["series_changed"].isel(i).values)) for i, _ in every]
    order = sorted(range(len(every)), key=lambda i: (not changed[i], i))[:max_panels]
    budgets = np.asarray(result["budget"].values, dtype=float)
    fig, cells = grid(len(order), ncols=2, panel=(5.2, 3.2))
    la, lb = result.attrs.get("label_a", "A"), result.attrs.get("label_b", "B")
    for k, ((ax,), i) in enumerate(zip(cells, order)):
        index, coords = every[i]
        one = result.isel(index)
        r = np.ravel(one["ratio"].values).astype(float)
        lo = np.ravel(one["ratio_lo"].values).astype(float)
        hi = np.ravel(one["ratio_hi"].values).astype(float)
        sig = np.ravel(one["cell_changed"].values).astype(bool)
        for mask, color, gid in ((~sig, COLORS["median"], "cells"), (sig, COLORS["slow"], "cells-changed")):
            ok = mask & np.isfinite(r)
            if ok.any():
                ax.errorbar(budgets[ok], r[ok], yerr=[r[ok] - lo[ok], hi[ok] - r[ok]], ls="", marker="o", ms=3,
                            color=color, elinewidth=1, capsize=2, gid=f"{gid}-{k}")
        ax.axhline(1.0, color=COLORS["baseline"], ls="--", lw=1)
        s_r, s_lo, s_hi = (float(one[v].values) for v in ("series_ratio", "series_ratio_lo", "series_ratio_hi"))
        if math.isfinite(s_r):
            ax.axhspan(s_lo, s_hi, color=COLORS["b"], alpha=0.15, lw=0, gid=f"series-ci-{k}")
            ax.axhline(s_r, color=COLORS["b"], lw=1.2, gid=f"series-ratio-{k}")
        kinds = np.ravel(one["change_kind"].values).astype(str)
        for side, color in (("a", COLORS["a"]), ("b", COLORS["b"])):
            st = np.ravel(one[f"{side}_start"].values).astype(float)
            en = np.ravel(one[f"{side}_end"].values).astype(float)
            for j in np.flatnonzero((kinds != "") & np.isfinite(st)):
                ax.axvspan(st[j], en[j], facecolor=color, alpha=0.15, edgecolor=color, lw=1.2,
                           hatch="\\\\" if side == "a" else "//", gid=f"regime-{side}-{k}-{j}", zorder=0)
        log_axis(ax)
        ax.set_title(tex_safe(_data.title(str(one["verdict"].values), 70)), fontsize=8)
        ax.set_ylabel(tex_safe(f"{lb} / {la}"), fontsize=8)
        _data.budget_axis(ax, budgets, r)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5, which="both")
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=COLORS["median"], label="cell ratio (median B / median A), CI"),
        Line2D([], [], ls="", marker="o", ms=4, color=COLORS["slow"], label="cell changed (q < alpha)"),
        Patch(facecolor=COLORS["b"], alpha=0.3, label="series ratio outside regimes, CI"),
        Patch(facecolor=COLORS["a"], alpha=0.25, hatch="\\\\", label=tex_safe(f"regime in {la}")),
        Patch(facecolor=COLORS["b"], alpha=0.25, hatch="//", label=tex_safe(f"regime in {lb}")),
    ]
    simulated = bool(result.attrs.get("simulated_a", 0)) or bool(result.attrs.get("simulated_b", 0))
    note = f"showing {len(order)} of {len(every)} series (changed first)" if len(every) > len(order) else ""
    return finish(fig, title=f"{lb} vs {la}: {result.attrs.get('var', '')}", simulated=simulated,
                  handles=handles, note=note)

