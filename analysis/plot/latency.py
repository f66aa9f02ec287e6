"""Latency (or decode time per token) against budget, one panel per series."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from analysis.core.labels import series_dims, series_name, varying_dims
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, grid, log_axis, median_line, tex_safe
from analysis.plot._regimes import analysed, choose_series, legend_handles, not_drawn_note, pick, shade, spans

__all__ = ["decode_per_token", "latency"]


def latency(ds: xr.Dataset, *, reg: xr.Dataset | None = None, var: str = "latency", log: bool = False,
            max_panels: int = 12) -> Figure:
    """``var`` against budget per series: trials as points, their median, the baseline, the regimes shaded.

    Parameters
    ----------
    ds
        A dataset with ``var`` over ``budget`` (and ``trial``).
    reg
        The :func:`analysis.regimes` result of ``ds[var]`` (computed when None).
    var
        The variable to draw (default ``latency``).
    log
        Logarithmic y axis.
    max_panels
        Most series drawn; those with the strongest regimes first.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per series: trials (grey points), median over trials
        (line), the expected-scaling baseline (dashed), each anomalous
        regime shaded from its first to its last budget with the 95 %
        intervals of both boundaries as bars along the top.
    """
    ds = _data.check(ds, "latency", (var,))
    reg = _data.get_regimes(ds, reg, var)
    return _budget_panels(ds, _data.ok(ds, var), reg, title=f"{var} vs budget", baseline=True, log=log,
                          max_panels=max_panels, ylabel=_ylabel(ds[var]))


def decode_per_token(ds: xr.Dataset, *, reg: xr.Dataset | None = None, log: bool = False,
                     max_panels: int = 12) -> Figure:
    """Decode time per decoded token against budget per series, with the latency regimes shaded.

    The decode phase produces ``budget - 1`` tokens (the prefill yields the
    first), so the value is ``decode_time / max(budget - 1, 1)``: flat for a
    cache that works, rising for full recomputation, and a step inside a regime.

    Parameters
    ----------
    ds
        A dataset with ``decode_time`` over ``budget``.
    reg
        :func:`analysis.regimes` of ``ds.latency`` (computed when None).
    log
        Logarithmic y axis.
    max_panels
        Most series drawn; those with the strongest regimes first.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per series: per-token decode time of each trial, its
        median, and the latency regimes shaded as in :func:`latency`.
    """
    ds = _data.check(ds, "decode_per_token", ("decode_time",))
    reg = _data.get_regimes(ds, reg, "latency") if "latency" in ds else reg
    tokens = np.maximum(ds["budget"] - 1, 1)
    per_token = (_data.ok(ds, "decode_time") / tokens) * 1e3
    return _budget_panels(ds, per_token, reg, title="decode time per token vs budget", baseline=False, log=log,
                          max_panels=max_panels, ylabel="decode time per token (ms)")


def _ylabel(da: xr.DataArray) -> str:
    units = da.attrs.get("units", "")
    return f"{da.name} ({units})" if units else str(da.name)


def _budget_panels(ds: xr.Dataset, values: xr.DataArray, reg: xr.Dataset | None, *, title: str, baseline: bool,
                   log: bool, max_panels: int, ylabel: str) -> Figure:
    dims = [d for d in series_dims(values) if d in values.dims]
    chosen, total = choose_series(values, dims, reg, max_panels)
    one_budget = _one_budget_series(values, dims, reg) if chosen and analysed(reg, *chosen[0]) else 0
    varying = varying_dims(values, dims)
    fig, cells = grid(len(chosen))
    budgets = np.asarray(values["budget"].values, dtype=float)
    n_bars = n_spans = n_gaps = 0
    drew_baseline = False
    for k, ((index, coords), (ax,)) in enumerate(zip(chosen, cells)):
        one = values.isel(index)
        y = np.asarray(one.transpose("budget", ...).values, dtype=float).reshape(budgets.size, -1)
        xs = np.repeat(budgets, y.shape[1])
        ax.plot(xs, y.ravel(), ls="", marker="o", ms=2.5, color=COLORS["trial"], alpha=0.55, gid=f"trials-{k}")
        med = _data.nanmedian(y)
        n_gaps += median_line(ax, budgets, med, gid=f"median-{k}")
        if reg is not None:
            try:
                one_reg = pick(reg, index, coords)
                if baseline and "baseline" in one_reg:
                    ax.plot(np.asarray(one_reg["budget"].values, dtype=float), np.ravel(one_reg["baseline"].values),
                            color=COLORS["baseline"], lw=1.2, ls="--", gid=f"baseline-{k}")
                    drew_baseline = True
                same_axis = np.array_equal(np.asarray(reg["budget"].values, dtype=float), budgets)
                regimes = spans(reg, index, coords, measured=np.isfinite(med) if same_axis else None)
                n_spans += len(regimes)
                n_bars += shade(ax, regimes, panel=k)
            except (KeyError, IndexError):
                pass
        if log:
            log_axis(ax)
        ax.set_title(tex_safe(_data.title(series_name(coords, varying))), fontsize=9)
        ax.set_ylabel(tex_safe(ylabel), fontsize=8)
        _data.budget_axis(ax, budgets, y)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
    note = not_drawn_note(total, len(chosen), one_budget)
    return finish(fig, title=title, simulated=_data.simulated(ds),
                  handles=legend_handles(baseline=drew_baseline, regimes=n_spans > 0, intervals=n_bars > 0,
                                         gaps=n_gaps > 0), note=note)


def _one_budget_series(values: xr.DataArray, dims: list[str], reg: xr.Dataset | None) -> int:
    """How many series with data the regimes analysis did not apply to (one budget)."""
    from analysis.core.labels import iter_series

    has = values.notnull()
    inner = [d for d in values.dims if d not in dims]
    if inner:
        has = has.any(inner)
    flags = np.asarray(has.transpose(*dims).values, dtype=bool).ravel() if dims else np.array([bool(has)])
    return sum(1 for e, h in zip(iter_series(values, dims), flags) if h and not analysed(reg, *e))
