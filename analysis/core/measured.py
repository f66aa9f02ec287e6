"""Which budgets of a series were measured, and a regimes result's per-budget flags kept to them.

A :func:`analysis.regimes` result is a dense cube over every budget of the dataset. A series that skipped
some budgets (the files of a study, where each experiment measured its own grid) has a ``ratio`` of NaN
there, while its per-budget segment id, and so ``anomalous``, covers the whole stretch from one measured
budget to the next. Every list of budgets, every regime and every band drawn is made from the flags kept to
the measured budgets, here, so no regime reaches a budget its series never ran.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.errors import InputError

__all__ = ["measured_anomalous", "measured_blocks", "measured_mask"]


def measured_mask(reg: xr.Dataset) -> xr.DataArray:
    """True where the series was measured at the budget: a finite ``ratio`` (observed / baseline)."""
    return reg["ratio"].notnull()


def measured_anomalous(reg: xr.Dataset) -> xr.DataArray:
    """``reg.anomalous`` at the budgets the series measured; False at the others."""
    return (reg["anomalous"].astype(bool) & measured_mask(reg)).rename("anomalous")


def measured_blocks(anomalous: np.ndarray, measured: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of anomalous budgets along the measured ones, as ``(first, last)`` indices (inclusive).

    ``anomalous`` and ``measured`` are 1-D bool arrays over the budget axis. Budgets that were not measured
    neither belong to a run nor break one: measured 480 and 512 both anomalous, with 496 skipped, make one
    run ``480..512``; its first and last index are always measured budgets.
    """
    a = np.asarray(anomalous, dtype=bool)
    m = np.asarray(measured, dtype=bool)
    if a.shape != m.shape or a.ndim != 1:
        raise InputError(f"anomalous and measured must be 1-D of one shape, got {a.shape!r} and {m.shape!r}")
    idx = np.flatnonzero(m)
    flags = a[idx]
    out: list[tuple[int, int]] = []
    i, n = 0, idx.size
    while i < n:
        if flags[i]:
            j = i
            while j + 1 < n and flags[j + 1]:
                j += 1
            out.append((int(idx[i]), int(idx[j])))
            i = j + 1
        else:
            i += 1
    return out
