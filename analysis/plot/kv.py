"""KV-cache speedup against budget with its confidence band and the collapse shaded."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.core.common import quiet
from analysis.core.labels import iter_series, series_dims, series_name, varying_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, grid, log_axis, median_line, tex_safe
from analysis.plot._regimes import shade_mask

__all__ = ["COLLAPSE_GID", "kv_speedup"]

#: ``gid`` prefix of the shaded collapse spans.
COLLAPSE_GID = "regime-collapse"


def kv_speedup(ds: xr.Dataset, *, kv: xr.Dataset | None = None, reg: xr.Dataset | None = None,
               max_panels: int = 12, log: bool = False) -> Figure:
    """The cache-off / cache-on latency ratio per budget, its CI band, the expected trend and the collapse.

    Parameters
    ----------
    ds
        A dataset with ``latency`` and a ``cache`` dim holding both values (for the labels and ``kv`` when None).
    kv
        The :func:`analysis.kv_speedup` result of ``ds`` (computed when None).
    reg
        :func:`analysis.regimes` of ``ds.latency``, reused when ``kv`` is computed.
    max_panels
        Most series drawn (collapsed ones first).
    log
        Logarithmic y axis.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per series (every dim but cache): the speedup (line), its
        bootstrap CI (band), the expected speedup (dashed), and each
        collapse shaded from its first to its last collapsed budget.
    """
    ds = _data.check(ds, "kv_speedup", ("latency",))
    if kv is None:
        from analysis.questions.kv import kv_speedup as compute

        with quiet():
            kv = compute(ds, reg=reg)
    if not isinstance(kv, xr.Dataset) or "speedup" not in kv or "collapse" not in kv:
        raise InputError("kv must be the Dataset returned by analysis.kv_speedup(), it lacks 'speedup'/'collapse'")
    dims = series_dims(kv, "speedup")
    has = np.asarray(kv["speedup"].notnull().any("budget").transpose(*dims).values, dtype=bool).ravel()
    every = [e for e, h in zip(iter_series(kv, dims), has) if h]
    if not every:
        raise InputError("plot.kv_speedup(): no budget has both caches measured")
    n_coll = [int(np.asarray(kv["collapse"].isel(i).values, dtype=bool).sum()) for i, _ in every]
    order = sorted(range(len(every)), key=lambda i: (-min(n_coll[i], 1), i))[:max_panels]
    varying = varying_dims(kv, dims)
    fig, cells = grid(len(order))
    budgets = np.asarray(kv["budget"].values, dtype=float)
    drew = {"band": False, "expected": False, "collapse": False, "gaps": False}
    for k, ((ax,), i) in enumerate(zip(cells, order)):
        index, coords = every[i]
        one = kv.isel(index)
        sp = np.ravel(one["speedup"].values).astype(float)
        lo = np.ravel(one["speedup_lo"].values).astype(float) if "speedup_lo" in one else None
        hi = np.ravel(one["speedup_hi"].values).astype(float) if "speedup_hi" in one else None
        if lo is not None and hi is not None and (np.isfinite(lo) & np.isfinite(hi)).any():  # none with 1 trial
            ax.fill_between(budgets, lo, hi, color=COLORS["band"], alpha=0.18, lw=0, gid=f"ci-{k}")
            drew["band"] = True
        drew["gaps"] |= median_line(ax, budgets, sp, gid=f"speedup-{k}") > 0
        if "expected" in one and np.isfinite(np.ravel(one["expected"].values).astype(float)).any():
            ax.plot(budgets, np.ravel(one["expected"].values), color=COLORS["baseline"], ls="--", lw=1.2,
                    gid=f"expected-{k}")
            drew["expected"] = True
        collapse = np.ravel(one["collapse"].values).astype(bool)
        shade_mask(ax, budgets, collapse, gid=f"{COLLAPSE_GID}-{k}", color=COLORS["slow"])
        drew["collapse"] |= bool(collapse.any())
        if log:
            log_axis(ax)
        ax.set_title(tex_safe(_data.title(series_name(coords, varying))), fontsize=9)
        ax.set_ylabel("speedup (cache off / on)", fontsize=8)
        _data.budget_axis(ax, budgets, sp)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
    handles = [  # only what is drawn
        Line2D([], [], color=COLORS["median"], lw=1.5, marker=".", label="speedup (trial means)"),
        Line2D([], [], color=COLORS["median"], lw=0.8, ls=":", label="budgets between not measured")
        if drew["gaps"] else None,
        Patch(facecolor=COLORS["band"], alpha=0.25, label="95% bootstrap CI") if drew["band"] else None,
        Line2D([], [], color=COLORS["baseline"], ls="--", label="expected speedup") if drew["expected"] else None,
        Patch(facecolor=COLORS["slow"], alpha=0.25, edgecolor=COLORS["slow"], label="collapse")
        if drew["collapse"] else None,
    ]
    note = f"showing {len(order)} of {len(every)} series (collapses first)" if len(every) > len(order) else ""
    return finish(fig, title="KV-cache speedup vs budget", simulated=_data.simulated(ds), handles=handles, note=note)
