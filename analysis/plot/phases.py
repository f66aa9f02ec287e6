"""Prefill against decode time around each regime: which phase carries the excess."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from analysis.core.labels import fmt_fixed, series_dims, series_name, varying_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, grid, tex_safe
from analysis.plot._regimes import choose_series, legend_handles, shade, spans

__all__ = ["phases"]

_PHASES = (("decode_time", "decode (s)"), ("prefill_time", "prefill (s)"))


def phases(ds: xr.Dataset, *, reg: xr.Dataset | None = None, max_panels: int = 6, context: float = 1.0,
           result: xr.Dataset | None = None) -> Figure:
    """Decode and prefill time around each anomalous regime, one column per regime.

    Parameters
    ----------
    ds
        A dataset with ``prefill_time``, ``decode_time`` (and ``latency`` when ``reg`` is None).
    reg
        :func:`analysis.regimes` of ``ds.latency`` (computed when None).
    max_panels
        Most regimes drawn (strongest series first).
    context
        Budgets shown on each side of a regime, as a multiple of its width
        (at least three budget steps).
    result
        The :func:`analysis.phases` result of ``ds``: when given, only the regimes whose excess it could split
        between the phases are drawn (:class:`~analysis.errors.InputError` saying why when there is none).

    Returns
    -------
    matplotlib.figure.Figure
        Per regime two stacked panels sharing the budget axis, decode time
        above and prefill time below (trials as points, median line), the
        regime shaded in both. Without any regime, the first series over
        the whole budget range.
    """
    ds = _data.check(ds, "phases", ("prefill_time", "decode_time"))
    reg = _data.get_regimes(ds, reg, "latency") if "latency" in ds else reg
    dec = _data.ok(ds, "decode_time")
    pre = _data.ok(ds, "prefill_time")
    dims = [d for d in series_dims(dec)]
    varying = varying_dims(dec, dims)
    budgets = np.asarray(ds["budget"].values, dtype=float)
    chosen, total = choose_series(dec, dims, reg, max_panels)
    panels: list[tuple[Any, Any, Any]] = []
    for index, coords in chosen:
        found = spans(reg, index, coords) if reg is not None else []
        panels.extend((index, coords, s) for s in found)
    if result is not None and panels:
        panels = [p for p in panels if _split(result, p[1], p[2])]
        if not panels:
            raise InputError("plot.phases(): the phases analysis split no regime's excess between prefill and decode "
                             f"({_why(result)}), so there is nothing to show around a regime")
    panels = panels[:max_panels]
    if not panels:
        panels = [(index, coords, None) for index, coords in chosen[:1]]
    n_bars = 0
    fig, cells = grid(len(panels), ncols=3, panel=(4.0, 2.6), sharex=True, nrows_per_panel=2)
    step = float(np.min(np.diff(np.sort(budgets)))) if budgets.size > 1 else 1.0
    for k, ((index, coords, span), axes) in enumerate(zip(panels, cells)):
        if span is not None:
            width = max(span.end - span.start, 3 * step) * context
            window = (budgets >= span.start - width) & (budgets <= span.end + width)
        else:
            window = np.ones(budgets.size, dtype=bool)
        b = budgets[window]
        for ax, (name, ylabel), da in zip(axes, _PHASES, (dec, pre)):
            y = np.asarray(da.isel(index).transpose("budget", ...).values, dtype=float).reshape(budgets.size, -1)
            y = y[window]
            ax.plot(np.repeat(b, y.shape[1]), y.ravel(), ls="", marker="o", ms=2.5, color=COLORS["trial"],
                    alpha=0.55, gid=f"trials-{name}-{k}")
            med = _data.nanmedian(y)
            fin = np.isfinite(med)
            ax.plot(b[fin], med[fin], color=COLORS["median"], lw=1.5, marker=".", ms=4, gid=f"median-{name}-{k}")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25, lw=0.5)
            if span is not None:
                n_bars += shade(ax, [span], panel=f"{k}-{name}", intervals=name == "decode_time")
            _data.budget_axis(ax, b, y if np.isfinite(y).any() else None)
            if span is not None:  # the whole regime stays in view even where this phase has no data
                lo, hi = ax.get_xlim()
                pad = 0.02 * max(span.end - span.start, step)
                ax.set_xlim(min(lo, span.start - pad), max(hi, span.end + pad))
            ax.set_xlabel("")
        axes[-1].set_xlabel("budget (new tokens)")
        label = series_name(coords, varying)
        if span is not None:
            label += f": {span.kind} x{fmt_fixed(span.effect)} at {span.start:g}-{span.end:g}"
        axes[0].set_title(tex_safe(_data.title(label, 60)), fontsize=9)
    note = "" if panels[0][2] is not None else "no anomalous regime: the whole budget range of one series"
    if panels[0][2] is not None and total > len(chosen):
        note = f"regimes of the {len(chosen)} strongest of {total} series"
    return finish(fig, title="prefill and decode time around each regime", simulated=_data.simulated(ds),
                  handles=legend_handles(baseline=False, regimes=panels[0][2] is not None, intervals=n_bars > 0),
                  note=note)


def _split(result: xr.Dataset, coords: dict[str, Any], span: Any) -> bool:
    """Whether :func:`analysis.phases` estimated the decode excess of the regime starting at ``span.start``."""
    if "excess_decode" not in result or "regime_start" not in result:
        return True
    sel = {d: v for d, v in coords.items() if d in result.dims}
    try:
        one = result.sel(sel)
    except (KeyError, ValueError):
        return False
    starts = np.ravel(one["regime_start"].values).astype(float)
    ends = np.ravel(one["regime_end"].values).astype(float) if "regime_end" in one else starts
    excess = np.ravel(one["excess_decode"].values).astype(float)
    inside = (starts <= span.start) & (span.start <= ends)  # a span may be one measured piece of the regime
    return bool(np.isfinite(excess[inside]).any())


def _why(result: xr.Dataset) -> str:
    """The phases summary's reason, shortly: no phase times, or too few budgets outside the regimes."""
    if "n_split_runs" in result and int(np.nansum(result["n_split_runs"].values)) == 0:
        return "no run has both prefill and decode times"
    return "too few budgets with both phase times outside each regime to fit the trend"
