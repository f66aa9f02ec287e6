"""Inputs of the figures: checked variables, ok-only values, regimes computed when not given."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import ok_values as ok
from analysis.core.common import quiet
from analysis.core.labels import is_simulated
from analysis.errors import InputError

__all__ = ["budget_axis", "check", "get_regimes", "nanmedian", "ok", "simulated", "title"]


def check(ds: Any, fn: str, variables: tuple[str, ...] = ()) -> xr.Dataset:
    """``ds`` if it is a Dataset with a ``budget`` dim and ``variables``; else :class:`InputError`."""
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"plot.{fn}() needs an xarray.Dataset, got {type(ds).__name__!r}")
    if "budget" not in ds.dims:
        raise InputError(f"plot.{fn}() needs a 'budget' dim; the dataset has dims {list(map(str, ds.dims))!r}")
    for v in variables:
        if v not in ds.data_vars:
            raise InputError(f"plot.{fn}() needs variable {v!r}; the dataset has {sorted(map(str, ds.data_vars))!r}")
    return ds


def get_regimes(ds: xr.Dataset, reg: xr.Dataset | None, var: str = "latency") -> xr.Dataset | None:
    """``reg``, or :func:`analysis.regimes` of ``ds[var]`` (None when it cannot be computed)."""
    if reg is not None:
        if not isinstance(reg, xr.Dataset) or "segment_anomalous" not in reg:
            raise InputError(f"reg must be the Dataset returned by analysis.regimes(), got {type(reg).__name__!r}")
        return reg
    from analysis.regimes import regimes

    try:
        with quiet():
            return regimes(ds, var)
    except InputError:
        return None


def simulated(ds: xr.Dataset) -> bool:
    """Whether ``ds`` is simulated (attrs ``simulated``)."""
    return is_simulated(ds.attrs)


def budget_axis(ax: Any, budgets: np.ndarray, values: np.ndarray | None = None) -> None:
    """Label the x axis as the decoding budget; show the budgets (those with a finite value in ``values`` rows)."""
    b = np.asarray(budgets, dtype=float)
    if values is not None:
        has = np.isfinite(np.asarray(values, dtype=float).reshape(b.size, -1)).any(axis=1)
        b = b[has] if has.any() else b
    ax.set_xlabel("budget (new tokens)")
    if b.size:
        span = float(b.max() - b.min())
        pad = 0.02 * span if span > 0 else max(1.0, 0.1 * abs(float(b.max())))  # one budget: a window around it
        ax.set_xlim(b.min() - pad, b.max() + pad)


def nanmedian(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """Median over ``axis`` ignoring NaN, without warnings for all-NaN rows (NaN there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.asarray(a, dtype=float), axis=axis)


def title(text: str, width: int = 48) -> str:
    """A panel title wrapped onto lines of at most ``width`` characters."""
    words, lines, cur = str(text).split(" "), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines)
