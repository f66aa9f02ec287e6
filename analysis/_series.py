"""Running a per-series numpy kernel over every series of a DataArray, eager or with dask.

The budget axis is the axis of change and ``trial`` holds replicates; every
other dim indexes independent series. :func:`apply_over_series` hands blocks of
series ``(..., budget, trial)`` to a kernel through
:func:`xarray.apply_ufunc` (``dask="parallelized"``), so a dask-backed input is
processed block by block on whatever scheduler is active (threads, processes
or a ``dask.distributed`` cluster) and an eager input in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["BUDGET", "TRIAL", "apply_over_series", "as_series_array", "is_lazy", "series_dims", "series_ids"]

BUDGET = "budget"
TRIAL = "trial"


def series_dims(da: xr.DataArray) -> list[Hashable]:
    """Every dim of ``da`` except ``budget`` and ``trial``, in order."""
    return [d for d in da.dims if d not in (BUDGET, TRIAL)]


def as_series_array(da: xr.DataArray) -> xr.DataArray:
    """``da`` with a ``trial`` dim (length 1 if it had none), sorted by budget, as ``(*series, budget, trial)``."""
    if TRIAL not in da.dims:
        da = da.expand_dims({TRIAL: [0]}, axis=-1)
    budgets = np.asarray(da[BUDGET].values)
    if budgets.size > 1 and np.any(np.diff(budgets) < 0):
        da = da.sortby(BUDGET)
    return da.transpose(*series_dims(da), BUDGET, TRIAL)


def series_ids(da: xr.DataArray) -> xr.DataArray:
    """A stable integer per series (C order over the series dims), chunked like ``da``."""
    dims = series_dims(da)
    shape = tuple(da.sizes[d] for d in dims)
    ids = xr.DataArray(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape), dims=dims)
    if is_lazy(da):
        ids = ids.chunk({d: da.chunksizes[d] for d in dims})
    return ids


def is_lazy(da: xr.DataArray) -> bool:
    """Whether ``da`` is backed by a dask array."""
    return da.chunks is not None


def apply_over_series(
    func: Callable[..., np.ndarray],
    da: xr.DataArray,
    per_series: list[xr.DataArray],
    *,
    out_dims: tuple[str, str],
    out_sizes: Mapping[str, int],
    kwargs: Mapping[str, Any],
) -> xr.DataArray:
    """Apply ``func(block, *per_series_blocks, **kwargs) -> (..., *out_dims)`` to every series.

    ``da`` must be ``(*series, budget, trial)``. ``per_series`` arrays have the
    series dims only. With a dask-backed ``da`` the budget and trial axes are
    merged into one chunk and blocks of series are processed in parallel; the
    result stays lazy (call ``.compute()``).
    """
    if is_lazy(da):
        da = da.chunk({BUDGET: -1, TRIAL: -1})
        per_series = [p.chunk({d: da.chunksizes[d] for d in p.dims}) for p in per_series]
    return xr.apply_ufunc(
        func,
        da,
        *per_series,
        input_core_dims=[[BUDGET, TRIAL]] + [[] for _ in per_series],
        output_core_dims=[list(out_dims)],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": dict(out_sizes)},
        kwargs=dict(kwargs),
    )
