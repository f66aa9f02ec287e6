"""Are the p-values of null sweeps uniform? A QQ plot of the scan p-values against the uniform distribution."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from analysis.errors import InputError
from analysis.plot._figure import COLORS, finish

__all__ = ["BAND_GID", "POINTS_GID", "pvalue_qq", "pvalues_of"]

#: ``gid`` of the observed p-values.
POINTS_GID = "pvalues"
#: ``gid`` of the pointwise 95 % band of uniform order statistics.
BAND_GID = "uniform-band"

PValues = xr.Dataset | xr.DataArray | np.ndarray | Sequence[float] | Sequence[xr.Dataset]


def pvalues_of(p: PValues, var: str = "p_series") -> tuple[np.ndarray, bool]:
    """The finite p-values in ``p`` (a :func:`analysis.regimes` result, several, or the values) and whether
    any of the datasets is simulated.

    Raises
    ------
    InputError
        No finite p-value, or a value outside [0, 1] (quoted), or a dataset without ``var``.
    """
    items = list(p) if isinstance(p, Sequence) and p and isinstance(p[0], xr.Dataset) else [p]
    values: list[np.ndarray] = []
    simulated = False
    for item in items:
        if isinstance(item, xr.Dataset):
            if var not in item:
                raise InputError(f"pvalue_qq() needs the variable {var!r} (a regimes() result); the dataset has "
                                 f"{sorted(map(str, item.data_vars))}")
            simulated |= bool(int(item.attrs.get("simulated", 0) or 0))
            item = item[var]
        values.append(np.asarray(item, dtype=float).ravel())
    out = np.concatenate(values) if values else np.array([])
    out = out[np.isfinite(out)]
    if out.size == 0:
        raise InputError("pvalue_qq() got no finite p-value")
    bad = out[(out < 0) | (out > 1)]
    if bad.size:
        raise InputError(f"p-values must lie in [0, 1], got {bad[0]!r}")
    return out, simulated


def pvalue_qq(p: PValues, *, var: str = "p_series", title: str = "") -> Figure:
    """Observed p-values against uniform quantiles, on ``-log10`` axes, with a pointwise 95 % band.

    On null data (sweeps without a regime) a calibrated test gives points along the diagonal, inside the
    band; points above it at the right are p-values smaller than chance gives (a liberal test), points
    below it a conservative one.

    Parameters
    ----------
    p
        A :func:`analysis.regimes` result (its ``var``, by default ``p_series``: the scan p-value of "a step
        anywhere" in each series), a sequence of them, or the p-values themselves.
    var
        The p-value variable of the results.
    title
        Figure title (default: a count and the shares below 0.05 and 0.01).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the sorted p-values (``gid`` :data:`POINTS_GID`), the diagonal, and the 2.5-97.5 %
        quantiles of the uniform order statistics, ``Beta(i, n + 1 - i)`` (``gid`` :data:`BAND_GID`).
    """
    values, simulated = pvalues_of(p, var)
    n = values.size
    i = np.arange(1, n + 1)
    expected = -np.log10((i - 0.5) / n)
    observed = -np.log10(np.clip(np.sort(values), 1e-300, 1.0))
    lo, hi = stats.beta.ppf([[0.025], [0.975]], i, n + 1 - i)
    fig = Figure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(expected, -np.log10(hi), -np.log10(lo), color=COLORS["band"], alpha=0.15, lw=0, gid=BAND_GID,
                    label="95 % band of uniform p-values")
    top = float(max(expected.max(), observed.max())) * 1.05
    ax.plot([0, top], [0, top], color=COLORS["baseline"], lw=0.8, ls="--")
    ax.plot(expected, observed, ls="", marker="o", ms=3.5, color=COLORS["median"], gid=POINTS_GID)
    ax.set_xlabel("expected -log10 p (uniform)")
    ax.set_ylabel(f"observed -log10 {var}")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    share = f"{n} p-values: {np.mean(values < 0.05):.3f} below 0.05, {np.mean(values < 0.01):.3f} below 0.01"
    handles = [Line2D([], [], ls="", marker="o", color=COLORS["median"], label="observed"),
               ax.collections[0]]
    return finish(fig, title=title or share, simulated=simulated, handles=handles,
                  note="" if not title else share)
