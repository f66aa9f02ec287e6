"""How large a regime each series could have shown: its simulated power curve and its minimum detectable ratios."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.core.labels import iter_series, series_name, varying_dims
from analysis.errors import InputError
from analysis.plot import _data
from analysis.plot._figure import COLORS, finish, tex_safe

__all__ = ["CURVE_GID", "MDE_GID", "power"]

#: ``gid`` prefix of each series' power curve (``power-curve-<k>``).
CURVE_GID = "power-curve"
#: ``gid`` prefix of each series' ``mde`` marker on the 80 % line (``power-mde-<k>``).
MDE_GID = "power-mde"


def power(ds: xr.Dataset, *, reg: xr.Dataset | None = None, var: str = "latency", max_panels: int = 12) -> Figure:
    """The share of one-budget regimes each series would have found, against the regime's ratio.

    The curve is :func:`analysis.regimes`' ``power`` over ``power_ratio``: steps of that ratio planted at
    interior budgets into the series' own noise and put through the whole decision rule (at the level a
    regime alone among its origin's series faces). Where it crosses the dashed 80 % line is the series'
    ``mde``; a smaller regime is found less often, not never.

    Parameters
    ----------
    ds
        The analysed dataset (with ``var``).
    reg
        :func:`analysis.regimes` of ``ds[var]`` (computed when None).
    var
        The analysed variable.
    max_panels
        Most series drawn: those with the smallest ``mde`` first (the rest are counted in the legend).

    Returns
    -------
    matplotlib.figure.Figure
        One axes, log ratio on x: per series its power curve (``gid`` ``power-curve-<k>``) and its ``mde`` on
        the 80 % line (``power-mde-<k>``; absent where no finite ``mde`` is stated).

    Raises
    ------
    InputError
        ``reg`` has no power curve, or no series has a finite one.
    """
    ds = _data.check(ds, "power", (var,))
    reg = _data.get_regimes(ds, reg, var)
    if reg is None or "power" not in reg or "power_ratio" not in reg["power"].dims:
        raise InputError(f"plot.power(): no power curve for {var!r} (a regimes() result states it per series)")
    curve = reg["power"]
    dims = [str(d) for d in curve.dims if d != "power_ratio"]
    ratios = np.asarray(reg["power_ratio"].values, dtype=float)
    varying = varying_dims(reg, dims)
    rows = []
    for index, values in iter_series(curve, dims):
        y = np.asarray(curve.isel(index).values, dtype=float)
        if not np.isfinite(y).any():
            continue
        mde = float(reg["mde"].isel(index)) if "mde" in reg else float("nan")
        rows.append((mde if np.isfinite(mde) else np.inf, series_name(values, varying), y, mde))
    if not rows:
        raise InputError("plot.power(): no series has a power curve (too few budgets, or no noise to simulate)")
    rows.sort(key=lambda r: r[0])
    drawn = rows[: max(1, int(max_panels))]
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.subplots()
    colors = [f"C{k % 10}" for k in range(len(drawn))]
    handles: list[Line2D] = []
    for k, ((_, name, y, mde), color) in enumerate(zip(drawn, colors)):
        ok = np.isfinite(y)
        label = (f"{name}: mde x{mde:.2f}" if np.isfinite(mde) else
                 f"{name}: {'not found even at x1000' if mde == np.inf else 'no mde stated'}")
        (line,) = ax.plot(ratios[ok], y[ok], marker="o", ms=3.5, lw=1.3, color=color, gid=f"{CURVE_GID}-{k}",
                          label=tex_safe(label))
        handles.append(line)
        if np.isfinite(mde) and ratios[0] <= mde <= ratios[-1]:
            ax.plot([mde], [0.8], marker="x", ms=7, mew=1.6, color=color, ls="", gid=f"{MDE_GID}-{k}")
    ax.axhline(0.8, color=COLORS["baseline"], lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(ratios, labels=[f"{r:g}" for r in ratios])
    ax.minorticks_off()
    ax.set_xlim(ratios[0] / 1.05, ratios[-1] * 1.05)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("ratio of a one-budget regime (x its baseline)")
    ax.set_ylabel("share found")
    ax.grid(alpha=0.25, lw=0.5)
    note = f"{len(rows) - len(drawn)} more series not drawn" if len(rows) > len(drawn) else ""
    title = f"Power: one-budget regimes found, by ratio ({len(rows)} series; x: each series' mde)"
    return finish(fig, title=title, simulated=_data.simulated(ds), handles=handles, note=note)
