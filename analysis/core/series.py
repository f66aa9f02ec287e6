"""Running a per-series numpy kernel over every series of a DataArray, eager or with dask.

The budget axis is the axis of change and ``trial`` holds replicates; every
other dim indexes independent series. :func:`apply_named` hands blocks of
series (e.g. ``(..., budget, trial)``) to a kernel with named outputs through
:func:`xarray.apply_ufunc` (``dask="parallelized"``), so a dask-backed input is
processed block by block on whatever scheduler is active (threads, processes
or a ``dask.distributed`` cluster) and an eager input in one call.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["BUDGET", "TRIAL", "apply_named", "as_series_array", "is_lazy", "series_dims", "series_ids"]

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
    """A stable integer per series, derived from its coordinates (not its position), chunked like ``da``.

    The key is every series dim's ``name=value`` except the ``origin`` dim and empty labels (``""``, NaN, and
    ``"none"``, the label a dim gets in a combined file that lacked it), hashed (BLAKE2b, 63 bits): a series
    draws the same random numbers whether its file is opened alone or beside others, and whatever other
    series a block holds.
    """
    from collector.dataset.combine import ORIGIN_DIM

    dims = series_dims(da)
    shape = tuple(da.sizes[d] for d in dims)
    labels = []
    for d in dims:
        index = da.indexes.get(d)
        if isinstance(index, pd.MultiIndex):  # stacked series: the key of each level, as if it were a dim
            names = [str(n) for n in index.names]
            labels.append(["|".join(f"{n}={v.item() if isinstance(v, np.generic) else v!r}" for n, v in zip(names, t)
                                    if n != ORIGIN_DIM and not _empty(v)) for t in index])
            continue
        vals = da[d].values.tolist() if d in da.coords else list(range(da.sizes[d]))
        labels.append(["" if d == ORIGIN_DIM or _empty(v) else f"{d}={v!r}" for v in vals])
    ids = np.zeros(shape, dtype=np.int64)
    for index in np.ndindex(*shape):
        key = "|".join(lab[i] for lab, i in zip(labels, index) if lab[i]).encode()
        ids[index] = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
    out = xr.DataArray(ids, dims=dims)
    if is_lazy(da):
        out = out.chunk({d: da.chunksizes[d] for d in dims})
    return out


def _empty(v: Any) -> bool:
    """An empty label: ``""``, NaN, or the label a combined file gives a dim one of its inputs lacked."""
    from collector.dataset.combine import MISSING_LABEL

    return v in ("", MISSING_LABEL) or (isinstance(v, float) and v != v)


def is_lazy(da: xr.DataArray) -> bool:
    """Whether ``da`` is backed by a dask array."""
    return da.chunks is not None


def _named_to_tuple(func: Callable[..., Mapping[str, np.ndarray]], names: tuple[str, ...], *args: Any,
                    **kwargs: Any) -> tuple[np.ndarray, ...]:
    out = func(*args, **kwargs)
    return tuple(out[n] for n in names)


def apply_named(
    func: Callable[..., Mapping[str, np.ndarray]],
    arrays: Sequence[xr.DataArray],
    core_dims: Sequence[Sequence[str]],
    *,
    outputs: Mapping[str, Sequence[str]],
    sizes: Mapping[str, int] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Apply a per-series kernel with named outputs to every series, eager or block by block with dask.

    ``func(*blocks, **kwargs)`` gets one numpy block per array of ``arrays``
    (shape ``(..., *core_dims[i])``: the leading axes index series) and
    returns a mapping from each name of ``outputs`` to an array
    ``(..., *outputs[name])``. The result is a Dataset of those variables
    over the series dims and each output's core dims (``sizes`` gives the
    length of a core dim no input has). When any input is dask-backed, the
    core dims are merged into one chunk, the other inputs are chunked like it
    and blocks of series run in parallel on the active scheduler; the result
    stays lazy (call ``.compute()``).
    """
    arrays = list(arrays)
    if any(is_lazy(a) for a in arrays):
        lead = next(a for a in arrays if is_lazy(a))
        lead = lead.chunk({d: -1 for d in core_dims[arrays.index(lead)]})
        chunks = {d: c for d, c in lead.chunksizes.items() if d not in {c_ for cd in core_dims for c_ in cd}}
        arrays = [a.chunk({**{d: chunks[d] for d in a.dims if d in chunks}, **{d: -1 for d in cd}})
                  for a, cd in zip(arrays, core_dims)]
    names = tuple(outputs)
    result = xr.apply_ufunc(
        functools.partial(_named_to_tuple, func, names),
        *arrays,
        input_core_dims=[list(cd) for cd in core_dims],
        output_core_dims=[list(outputs[n]) for n in names],
        dask="parallelized",
        output_dtypes=[np.float64] * len(names),
        dask_gufunc_kwargs={"output_sizes": dict(sizes or {})},
        kwargs=dict(kwargs or {}),
    )
    if len(names) == 1:
        result = (result,)
    return xr.Dataset(dict(zip(names, result)))
