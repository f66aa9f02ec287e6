"""The regime map: a budget x step heat map of per-step time (where inside a generation the slowdown lives)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.core.labels import series_dims, series_name, varying_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, grid, plain_log_labels, tex_safe
from analysis.plot._regimes import choose_series, spans

__all__ = ["regime_map"]


def _edges(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def regime_map(ds: xr.Dataset, *, reg: xr.Dataset | None = None, max_panels: int = 6,
               include_prefill: bool = False) -> Figure:
    """Median per-step time over trials as a heat map over budget (x) and decode step (y).

    Parameters
    ----------
    ds
        A dataset with ``step_time`` (per-step timing on).
    reg
        :func:`analysis.regimes` of ``ds.latency`` (computed when None).
    max_panels
        Most series drawn (strongest regimes first).
    include_prefill
        Also draw step 0 (the prefill), usually much longer than a decode step.

    Returns
    -------
    matplotlib.figure.Figure
        One heat map per series (log colour scale, ms); steps past a
        budget are blank. Each anomalous regime is a bar above the map from
        its first to its last budget: a slow column band means every step
        is slow, a band that starts part-way up means runs enter a slow mode.
    """
    ds = _data.check(ds, "regime_map", ("step_time",))
    reg = _data.get_regimes(ds, reg, "latency") if "latency" in ds else reg
    st = _data.ok(ds, "step_time")
    if not include_prefill:
        st = st.sel(step=st["step"] > 0)
    dims = series_dims(st)
    varying = varying_dims(st, dims)
    chosen, total = choose_series(st, dims, reg, max_panels)
    budgets = np.asarray(ds["budget"].values, dtype=float)
    steps = np.asarray(st["step"].values, dtype=float)
    maps = []
    for index, _ in chosen:
        one = st.isel(index).transpose("budget", "step", ...)
        arr = np.asarray(one.values, dtype=float).reshape(budgets.size, steps.size, -1)
        maps.append(_data.nanmedian(np.moveaxis(arr, -1, 0), axis=0) * 1e3)
    finite = np.concatenate([m[np.isfinite(m) & (m > 0)] for m in maps]) if maps else np.array([])
    if not finite.size:  # e.g. every step time overflowed: nothing to map (was a NaN-to-int crash)
        raise InputError(f"plot.regime_map(): 'step_time' has no positive finite value in the {len(chosen)} series shown")
    norm = LogNorm(vmin=float(np.percentile(finite, 1)), vmax=float(np.percentile(finite, 99.5)))
    last = int(np.nanmax(np.where(np.isfinite(np.stack(maps)).any(axis=(0, 1)), steps, np.nan)))
    fig, cells = grid(len(chosen), ncols=2, panel=(5.0, 3.4))
    mesh = None
    for k, ((index, coords), (ax,), m) in enumerate(zip(chosen, cells, maps)):
        mesh = ax.pcolormesh(_edges(budgets), _edges(steps), np.ma.masked_invalid(m.T), norm=norm, cmap="viridis",
                             shading="flat", gid=f"map-{k}", rasterized=True)
        if reg is not None:
            try:
                for j, s in enumerate(spans(reg, index, coords)):
                    color = COLORS["fast"] if s.kind == "fast" else COLORS["slow"]
                    ax.plot([s.start, s.end], [1.012, 1.012], color=color, lw=4, solid_capstyle="butt",
                            transform=ax.get_xaxis_transform(), clip_on=False, gid=f"regime-{k}-{j}")
            except (KeyError, IndexError):
                pass
        ax.set_ylim(0.5 if not include_prefill else -0.5, last + 0.5)
        ax.set_title(tex_safe(_data.title(series_name(coords, varying), 56)), fontsize=9, pad=12)
        cols = np.isfinite(m).any(axis=1)
        if cols.any():
            edges = _edges(budgets)
            ax.set_xlim(edges[np.flatnonzero(cols)[0]], edges[np.flatnonzero(cols)[-1] + 1])
        ax.set_ylabel("decode step", fontsize=8)
        ax.set_xlabel("budget (new tokens)")
        ax.tick_params(labelsize=7)
    if mesh is not None:
        bar = fig.colorbar(mesh, ax=[c[0] for c in cells], label="step time (ms, median over trials)", shrink=0.9)
        plain_log_labels(bar.ax.yaxis)
    handles = [Line2D([], [], color=COLORS["slow"], lw=4, label="anomalous regime (latency)")] if reg is not None \
        else []
    note = f"showing {len(chosen)} of {total} series (strongest regimes first)" if total > len(chosen) else ""
    return finish(fig, title="regime map: per-step time by budget and step", simulated=_data.simulated(ds),
                  handles=handles, note=note)
