"""Memory covariates against budget, with the latency regimes' boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.core.labels import series_dims, series_name, varying_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import finish, grid, median_line, tex_safe
from analysis.plot._regimes import choose_series, legend_handles, shade, spans

__all__ = ["MEMORY_VARS", "memory"]

#: The memory covariates of the schema, drawn when present and finite.
MEMORY_VARS: tuple[str, ...] = ("mem_device_peak", "mem_device_driver", "mem_rss_peak", "mem_sys_available_min",
                                "swap_used")
_STYLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")


def memory(ds: xr.Dataset, *, reg: xr.Dataset | None = None, covariates: Sequence[str] | None = None,
           max_panels: int = 6) -> Figure:
    """Each memory covariate (median over trials) against budget, as a change from the smallest budget.

    Parameters
    ----------
    ds
        A dataset with memory covariates (and ``latency`` when ``reg`` is None).
    reg
        :func:`analysis.regimes` of ``ds.latency`` (computed when None).
    covariates
        Variables to draw (default: those of :data:`MEMORY_VARS` with a finite value).
    max_panels
        Most series drawn (strongest regimes first).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per series, one line per covariate: its median over
        trials as a percentage change from its value at the smallest budget
        (covariates of very different size stay readable; the legend gives
        each one's range in MiB), and the latency regimes shaded from their
        first to their last budget.

    Raises
    ------
    InputError
        When no covariate is present with a finite value, or one named is missing.
    """
    ds = _data.check(ds, "memory")
    if covariates is None:
        covariates = [v for v in MEMORY_VARS if v in ds and bool(np.isfinite(ds[v].values).any())]
    else:
        missing = [v for v in covariates if v not in ds]
        if missing:
            raise InputError(f"plot.memory(): covariate {missing[0]!r} not in the dataset")
    if not covariates:
        raise InputError(f"plot.memory(): no memory covariate with data; looked for {list(MEMORY_VARS)!r}")
    reg = _data.get_regimes(ds, reg, "latency") if "latency" in ds else reg
    first = ds[covariates[0]]
    dims = series_dims(first)
    varying = varying_dims(first, dims)
    chosen, total = choose_series(first, dims, reg, max_panels)
    budgets = np.asarray(ds["budget"].values, dtype=float)
    fig, cells = grid(len(chosen))
    n_bars = n_spans = n_gaps = 0
    ranges: dict[str, list[float]] = {name: [] for name in covariates}
    for k, ((index, coords), (ax,)) in enumerate(zip(chosen, cells)):
        for c, name in enumerate(covariates):
            y = np.asarray(ds[name].isel(index).transpose("budget", ...).values, dtype=float).reshape(budgets.size, -1)
            med = _data.nanmedian(y)
            ok = np.isfinite(med)
            if ok.any() and med[ok][0] != 0:
                rel = 100.0 * (med / med[ok][0] - 1.0)  # NaN where not measured: dotted across, not solid
                n_gaps += median_line(ax, budgets, rel, gid=f"{name}-{k}", color=_STYLE[c % len(_STYLE)])
                ranges[name].extend([float(np.nanmin(med)), float(np.nanmax(med))])
        ax.axhline(0, color="#999999", lw=0.6)
        if reg is not None:
            try:
                regimes = spans(reg, index, coords)
                n_spans += len(regimes)
                n_bars += shade(ax, regimes, panel=k)
            except (KeyError, IndexError):
                pass
        ax.set_title(tex_safe(_data.title(series_name(coords, varying))), fontsize=9)
        ax.set_ylabel("change from smallest budget (%)", fontsize=8)
        _data.budget_axis(ax, budgets, ds[covariates[0]].isel(index).transpose("budget", ...).values)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
    handles = [Line2D([], [], color=_STYLE[c % len(_STYLE)], lw=1.4, label=_range_label(name, ranges[name]))
               for c, name in enumerate(covariates) if ranges[name]]
    if n_gaps:
        handles.append(Line2D([], [], color="#555555", lw=0.8, ls=":", label="budgets between not measured"))
    handles += legend_handles(trials=False, median=False, baseline=False, regimes=n_spans > 0,
                              intervals=n_bars > 0)
    note = f"showing {len(chosen)} of {total} series (strongest regimes first)" if total > len(chosen) else ""
    return finish(fig, title="memory vs budget", simulated=_data.simulated(ds), handles=handles, note=note)


def _range_label(name: str, values: list[float]) -> str:
    lo, hi = min(values) / 2**20, max(values) / 2**20
    return f"{name} ({lo:,.0f}-{hi:,.0f} MiB)" if hi >= 100 else f"{name} ({lo:.3g}-{hi:.3g} MiB)"
