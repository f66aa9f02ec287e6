"""Drift and host episodes: each run's latency over its baseline against its place in the execution order."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.core.labels import series_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, log_axis

__all__ = ["REGIME_RUNS_GID", "drift", "run_table"]

#: ``gid`` of the points of runs whose budget lies in an anomalous regime.
REGIME_RUNS_GID = "regime-runs"


def _time(ds: xr.Dataset, like: xr.DataArray) -> tuple[xr.DataArray, str]:
    """Each run's place in time: ``order`` where it holds run numbers, else ``started_at`` where it holds times
    (a negative order and NaT are placeholders: files that did not record them, like a published study's)."""
    if "order" in ds:
        order = ds["order"].astype(float)
        order = order.where(order >= 0)
        if bool(np.isfinite(order.values).any()):
            return order.broadcast_like(like), "execution order (run number)"
    if "started_at" in ds and np.issubdtype(ds["started_at"].dtype, np.datetime64) \
            and not bool(np.isnat(ds["started_at"].values).all()):
        t = ds["started_at"].broadcast_like(like)
        t0 = t.min()
        return ((t - t0) / np.timedelta64(1, "s")).astype(float), "time since the first run (s)"
    held = [v for v in ("order", "started_at") if v in ds]
    why = (f"{' and '.join(repr(v) for v in held)} hold{'s' if len(held) == 1 else ''} only placeholders "
           "(-1 / NaT: not recorded)") if held else "the dataset has neither"
    raise InputError(f"plot.drift() needs 'order' or 'started_at' to place runs in time; {why}")


def run_table(ds: xr.Dataset, reg: xr.Dataset, var: str = "latency") -> dict[str, np.ndarray]:
    """Every run as flat arrays: ``time``, ``ratio`` (value / baseline), ``budget``, ``anomalous``, ``confounded``.

    ``anomalous``: the run's budget lies in an anomalous regime of its series;
    ``confounded``: it lies in a step that passed the test but is confounded with execution time (not a
    regime: budget and time cannot be separated). Runs
    without data are dropped. Also ``time_label`` (str, 0-d array).
    """
    val = _data.ok(ds, var)
    time, label = _time(ds, val)
    dims = series_dims(val)
    base = reg["baseline"].broadcast_like(val)
    anom = reg["anomalous"].broadcast_like(val).fillna(False).astype(bool)
    seg = np.asarray(reg["confounded"].values, dtype=bool)
    conf_seg = xr.DataArray(seg, dims=reg["confounded"].dims, coords=reg["confounded"].coords)
    regime = reg["regime"].where(reg["regime"] >= 0, 0)
    conf_budget = conf_seg.isel(segment=regime.astype(int)) & (reg["regime"] >= 0)
    conf = conf_budget.broadcast_like(val).fillna(False).astype(bool)
    order = [*dims, "budget", *[d for d in val.dims if d not in dims and d != "budget"]]
    out = {
        "time": time.transpose(*order).values.ravel(),
        "ratio": (val / base).transpose(*order).values.ravel(),
        "budget": val["budget"].broadcast_like(val).transpose(*order).values.ravel().astype(float),
        "anomalous": anom.transpose(*order).values.ravel(),
        "confounded": conf.transpose(*order).values.ravel(),
    }
    keep = np.isfinite(out["ratio"]) & np.isfinite(out["time"])
    table = {k: v[keep] for k, v in out.items()}
    table["time_label"] = np.array(label)
    return table


def _rolling_median(x: np.ndarray, y: np.ndarray, n_bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    if x.size < 10:
        return np.array([]), np.array([])
    edges = np.unique(np.quantile(x, np.linspace(0, 1, min(n_bins, x.size // 5) + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    mids, meds = [], []
    for b in range(edges.size - 1):
        sel = idx == b
        if sel.sum() >= 3:
            mids.append(np.median(x[sel]))
            meds.append(np.median(y[sel]))
    return np.asarray(mids), np.asarray(meds)


def drift(ds: xr.Dataset, *, reg: xr.Dataset | None = None, var: str = "latency") -> Figure:
    """What ``confounded`` means, made visible: runs over their baseline and their budgets in execution order.

    Parameters
    ----------
    ds
        A dataset with ``var`` and ``order`` (or ``started_at``).
    reg
        :func:`analysis.regimes` of ``ds[var]`` (computed when None).
    var
        The analysed variable.

    Returns
    -------
    matplotlib.figure.Figure
        Left: every run's ``var`` / baseline (log scale) against its place
        in the execution order, all series pooled, with a running median of
        the runs outside regimes (a host drift or slow episode shows as a
        bump shared by all budgets). Right: each run's budget against its
        place in the order. Runs inside regimes are red (orange when the
        regime is confounded); a regime whose runs form one block in time
        on the right cannot be told apart from a slow host period.
    """
    ds = _data.check(ds, "drift", (var,))
    reg = _data.get_regimes(ds, reg, var)
    if reg is None:
        raise InputError(f"plot.drift(): regimes cannot be computed for {var!r}")
    t = run_table(ds, reg, var)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    normal = ~t["anomalous"] & ~t["confounded"]
    inside = t["anomalous"] & ~t["confounded"]
    conf = t["confounded"]
    kw = {"ls": "", "marker": "o", "ms": 2.5, "rasterized": t["time"].size > 5000}
    ax.plot(t["time"][normal], t["ratio"][normal], color=COLORS["normal"], alpha=0.45, gid="normal-runs", **kw)
    ax.plot(t["time"][inside], t["ratio"][inside], color=COLORS["slow"], alpha=0.8, gid=REGIME_RUNS_GID, **kw)
    ax.plot(t["time"][conf], t["ratio"][conf], color=COLORS["confounded"], alpha=0.8,
            gid=REGIME_RUNS_GID + "-confounded", **kw)
    mx, my = _rolling_median(t["time"][normal], t["ratio"][normal])
    ax.plot(mx, my, color=COLORS["median"], lw=1.6, gid="running-median")
    ax.axhline(1.0, color=COLORS["baseline"], ls="--", lw=1)
    log_axis(ax)
    ax.set_xlabel(str(t["time_label"]))
    ax.set_ylabel(f"{var} / expected (baseline)")
    ax.set_title("every run against its place in the execution order", fontsize=9)
    ax2.plot(t["time"][normal], t["budget"][normal], color=COLORS["normal"], alpha=0.45, **kw)
    ax2.plot(t["time"][inside], t["budget"][inside], color=COLORS["slow"], alpha=0.8, **kw)
    ax2.plot(t["time"][conf], t["budget"][conf], color=COLORS["confounded"], alpha=0.8, **kw)
    ax2.set_xlabel(str(t["time_label"]))
    ax2.set_ylabel("budget (new tokens)")
    ax2.set_title("which budget ran when (a staircase: sequential sweep)", fontsize=9)
    for a in (ax, ax2):
        a.tick_params(labelsize=7)
        a.grid(alpha=0.25, lw=0.5)
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=COLORS["normal"], label="run outside regimes"),
        Line2D([], [], ls="", marker="o", ms=4, color=COLORS["slow"], label="run in an anomalous regime")
        if inside.any() else None,
        Line2D([], [], ls="", marker="o", ms=4, color=COLORS["confounded"],
               label="in a regime confounded with time") if conf.any() else None,
        Line2D([], [], color=COLORS["median"], lw=1.6, label="running median outside regimes"),
    ]
    return finish(fig, title="drift and host episodes", simulated=_data.simulated(ds), handles=handles)
