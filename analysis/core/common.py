"""Shared plumbing of the per-question analyses (validation, series, regimes blocks, corrections).

Private to :mod:`analysis`: every public function checks its input here
(:func:`check_dataset`, :func:`check_axes`) so that all validate it the same
way.

A *series* is one cell of every dim of a variable except ``budget`` (the axis
of change), ``trial`` (replicates) and ``step`` (per-step variables). The
per-series work runs through :func:`analysis.core.series.apply_named` (lazy for
dask-backed input); its results, arrays of shape ``(n_series, ...)``, are
wrapped back onto the series dims with :meth:`Series.wrap`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.core.stacked import dense_steps
from analysis.core.stats import bh
from analysis.core.truncation import without_truncated
from analysis.errors import InputError
from collector.shared.factors import FACTORS

__all__ = [
    "BUDGET",
    "TRIAL",
    "STEP",
    "QUIET_DIMS",
    "Series",
    "check_dataset",
    "check_axes",
    "check_seed",
    "check_positive_int",
    "check_fraction",
    "ok_values",
    "run_values",
    "per_run",
    "series_of",
    "bh",
    "segments_of",
    "quiet",
    "EXPECTED_WARNINGS",
]

BUDGET = "budget"
TRIAL = "trial"
STEP = "step"
#: Series dims a series name leaves out when they hold one value.
QUIET_DIMS: tuple[str, ...] = ("dtype", *(f.name for f in FACTORS if f.v1_value is not None))
_TIMING = ("latency", "prefill_time", "decode_time", "step_time")


def check_dataset(
    ds: Any,
    fn: str,
    variables: Sequence[str] = (),
    *,
    min_budgets: int = 3,
) -> xr.Dataset:
    """``ds`` sorted by budget, or :class:`InputError` unless ``ds`` can be analysed by ``fn``.

    The one place where every public analysis checks its input. Checks that
    ``ds`` is a Dataset with a ``budget`` dim of at least ``min_budgets``
    values, that each of ``variables`` is present, numeric and has the
    ``budget`` dim, and then the axes (:func:`check_axes`): the budget
    coordinate holds distinct finite numbers and no dim of ``variables`` is
    empty. Budgets out of order are sorted (lazily for dask-backed input).
    The times of truncated runs (fewer tokens than their budget) are set to
    NaN: they are not compared along the budget axis
    (:mod:`analysis.core.truncation`).
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"{fn}() expects an xarray.Dataset, got {type(ds).__name__!r}")
    if "step_time" in variables:  # a combined dataset keeps per-step times by run: over the series again
        ds = dense_steps(ds)
    if BUDGET not in ds.dims:
        raise InputError(f"{fn}() needs a {BUDGET!r} dim (the axis of change); the dataset has dims {list(ds.dims)!r}")
    n_budget = int(ds.sizes[BUDGET])
    if n_budget < min_budgets:
        raise InputError(
            f"{fn}() needs at least {min_budgets} budgets, got {n_budget!r} "
            f"({ds[BUDGET].values.tolist() if BUDGET in ds.coords else 'no coordinate'})"
        )
    if BUDGET not in ds.coords:
        raise InputError(f"{fn}() needs a {BUDGET!r} coordinate (the number of new tokens)")
    if ds[BUDGET].dtype.kind not in "iuf":
        raise InputError(f"{fn}(): coordinate {BUDGET!r} must be numeric, got dtype {str(ds[BUDGET].dtype)!r}")
    for name in variables:
        if name not in ds.data_vars:
            raise InputError(
                f"{fn}() needs variable {name!r}, which the dataset lacks; it has {sorted(map(str, ds.data_vars))!r}"
            )
        var = ds[name]
        if BUDGET not in var.dims:
            raise InputError(f"{fn}(): variable {name!r} has dims {var.dims!r}, without {BUDGET!r}")
        if var.dtype.kind not in "iuf":
            raise InputError(f"{fn}(): variable {name!r} must be numeric, got dtype {str(var.dtype)!r}")
    return without_truncated(check_axes(ds, fn, variables))


def check_axes(ds: xr.Dataset, fn: str, variables: Sequence[str] = ()) -> xr.Dataset:
    """``ds`` sorted by budget; :class:`InputError` for a budget axis or dims that cannot be analysed.

    Every dim coordinate of ``variables`` and the budget must hold distinct
    values, finite where numeric (a NaN budget would silently drop out of
    every fit and hide a regime next to it; a repeated label makes cells
    ambiguous), and every dim of ``variables`` must have at least one value
    (an empty ``trial`` dim leaves nothing to analyse).
    """
    dims = [BUDGET] + [d for name in variables if name in ds.variables for d in ds[name].dims]
    for d in dict.fromkeys(dims):
        if d not in ds.coords or ds[d].ndim != 1:
            continue
        values = np.asarray(ds[d].values)
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            bad = values[~np.isfinite(values)][0].item()
            raise InputError(f"{fn}(): the {str(d)!r} coordinate must hold finite numbers, got {bad!r} in {values.tolist()!r}")
        index = ds.indexes.get(d)
        if index is not None and not index.is_unique:
            dup = index[index.duplicated()][0]
            dup = dup.item() if hasattr(dup, "item") else dup
            raise InputError(f"{fn}(): the {str(d)!r} coordinate holds {dup!r} more than once; its values must be distinct")
    for name in variables:
        if name not in ds.variables:
            continue
        for d in ds[name].dims:
            if ds.sizes[d] == 0:
                raise InputError(f"{fn}(): dim {str(d)!r} of variable {name!r} is empty (length 0): nothing to analyse")
    if BUDGET in ds.coords and ds.sizes.get(BUDGET, 0) > 1 and np.any(np.diff(np.asarray(ds[BUDGET].values)) < 0):
        ds = ds.sortby(BUDGET)
    return ds


def check_seed(value: Any, fn: str) -> int:
    """Return ``value`` as int, raising :class:`InputError` unless it can seed numpy (an integer >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{fn}(): seed must be an integer >= 0, got {value!r}")
    return int(value)


def check_positive_int(value: Any, name: str, fn: str, minimum: int = 1) -> int:
    """Return ``value`` as int, raising :class:`InputError` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{fn}(): {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(value: Any, name: str, fn: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` as float, raising :class:`InputError` unless ``low < value < high``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{fn}(): {name} must be a number in ({low}, {high}), got {value!r}") from None
    if not low < v < high:
        raise InputError(f"{fn}(): {name} must be in ({low}, {high}), got {value!r}")
    return v


def ok_values(ds: xr.Dataset, name: str) -> xr.DataArray:
    """``ds[name]`` with cells whose run status is not ok set to NaN (timing variables only)."""
    da = ds[name]
    if name in _TIMING and "status" in ds.data_vars:
        da = da.where(ds["status"] == 0)
    return da


@dataclass(frozen=True)
class Series:
    """The independent series of a variable: every dim but budget, trial (and step).

    Attributes
    ----------
    dims
        Series dims, in the variable's order.
    template
        A DataArray over the series dims carrying their coordinates (and
        non-dim coordinates such as ``n_params`` on ``model``).
    """

    dims: tuple[str, ...]
    template: xr.DataArray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.template.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def wrap(
        self,
        values: Any,
        extra_dims: Sequence[str] = (),
        extra_coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> xr.DataArray:
        """Wrap an array of shape ``(n_series, *extra)`` onto the series dims (+ ``extra_dims``)."""
        arr = np.asarray(values)
        arr = arr.reshape(self.shape + arr.shape[1:])
        coords: dict[Hashable, Any] = dict(self.template.coords.items())
        coords.update(dict(extra_coords or {}))
        return xr.DataArray(arr, dims=self.dims + tuple(extra_dims), coords=coords, attrs=dict(attrs or {}))

    def unwrap(self, da: xr.DataArray) -> np.ndarray:
        """The inverse of :meth:`wrap`: ``da`` (the series dims and any others) as an array ``(n_series, *other)``,
        its other dims in their order."""
        da = da.transpose(*self.dims, *[d for d in da.dims if d not in self.dims])
        return np.asarray(da.values).reshape((self.size,) + da.shape[len(self.dims):])

    def label(self, i: int) -> dict[str, Any]:
        """Coordinate values of series ``i`` (flat C-order index); a dim of stacked series (a MultiIndex, as
        ``series`` of a combined dataset) gives the value of each of its levels."""
        idx = np.unravel_index(i, self.shape) if self.dims else ()
        out = {}
        for d, j in zip(self.dims, idx):
            index = self.template.indexes.get(d)
            if isinstance(index, pd.MultiIndex):
                out.update({str(n): (v.item() if hasattr(v, "item") else v) for n, v in zip(index.names, index[j])})
                continue
            v = self.template[d].values[j]
            out[d] = v.item() if hasattr(v, "item") else v
        return out

    def _count(self, d: str) -> int:
        """How many values dim (or level of a stacked dim) ``d`` has among the series."""
        if d in self.template.dims:
            return int(self.template.sizes[d])
        for dim in self.dims:
            index = self.template.indexes.get(dim)
            if isinstance(index, pd.MultiIndex) and d in index.names:
                return int(index.get_level_values(d).nunique())
        return 1

    def name(self, i: int, skip: Sequence[str] = QUIET_DIMS) -> str:
        """Short human name of series ``i`` such as ``gpt2/mps/cache=True/prompt_len=32``.

        Dims in ``skip`` are left out where they have one value (default: dtype and the
        factors v1 files lacked, ``attn`` and ``cache_impl``, which a v1 file holds at one value).
        """
        parts = []
        for d, v in self.label(i).items():
            if d in skip and self._count(d) == 1:
                continue
            parts.append(str(v) if d in ("model", "device", "dtype") else f"{d}={v}")
        return "/".join(parts) or "all"


def series_of(da: xr.DataArray, exclude: Sequence[str] = (BUDGET, TRIAL, STEP)) -> Series:
    """The :class:`Series` of ``da`` (its dims other than ``exclude``)."""
    dims = tuple(str(d) for d in da.dims if d not in exclude)
    index = {d: 0 for d in da.dims if d not in dims}
    template = da.isel(index, drop=True)
    template = xr.DataArray(
        np.zeros(template.shape, dtype=np.int8), dims=template.dims, coords=template.coords
    )
    return Series(dims=dims, template=template)


def run_values(ds: xr.Dataset, var: str, fn: str) -> tuple[xr.DataArray, Series]:
    """The ok runs of a per-run variable of ``ds`` (checked by :func:`check_dataset`), as ``(*series, budget,
    trial)`` (a ``trial`` dim of 1 added where there is none), and their :class:`Series`.

    Raises
    ------
    InputError
        When ``var`` has a ``step`` dim.
    """
    if STEP in ds[var].dims:
        raise InputError(f"{fn}(): variable {var!r} has a {STEP!r} dim; pick a per-run variable such as 'latency'")
    da = ok_values(ds, var)
    if TRIAL not in da.dims:
        da = da.expand_dims(TRIAL, axis=-1)
    series = series_of(da)
    return da.transpose(*series.dims, BUDGET, TRIAL), series


def per_run(ds: xr.Dataset, name: str, da: xr.DataArray, fill: float = np.nan) -> np.ndarray | None:
    """``ds[name]`` at every run of ``da`` (``(*series, budget, trial)``, as :func:`run_values` gives it), as
    ``(series, budget, trial)`` floats: times as seconds since 1970, ``fill`` where there is no value. None
    where ``ds`` has no ``name`` over dims of ``da``."""
    if name not in ds.variables or not set(ds[name].dims) <= set(da.dims):
        return None
    raw = np.asarray(ds[name].broadcast_like(da).reindex_like(da).transpose(*da.dims).values)
    if np.issubdtype(raw.dtype, np.datetime64):  # NaT: no value
        t = raw.astype("datetime64[ns]")
        raw = np.where(np.isnat(t), np.nan, t.astype("int64") / 1e9)
    a = np.asarray(raw, dtype=float).reshape(-1, da.sizes[BUDGET], da.sizes[TRIAL])
    return np.where(np.isfinite(a), a, fill)


def segments_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of True in a 1-D bool array as ``(first, last)`` index pairs (inclusive)."""
    m = np.asarray(mask, dtype=bool)
    out: list[tuple[int, int]] = []
    i, n = 0, m.size
    while i < n:
        if m[i]:
            j = i
            while j + 1 < n and m[j + 1]:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


#: The warnings an analysis is expected to raise on valid input: numpy's on empty and all-NaN slices and on
#: floating-point errors (NaN cells, series with one trial). Nothing else is silenced: a deprecated option, a
#: library's convergence problem or a bug stays visible.
EXPECTED_WARNINGS: tuple[type[Warning], ...] = (RuntimeWarning,)


@contextlib.contextmanager
def quiet(*categories: type[Warning]) -> Iterator[None]:
    """Silence the warnings of ``categories`` (default: :data:`EXPECTED_WARNINGS`) inside the block.

    numpy's floating-point warnings are switched off too (``np.errstate(all="ignore")``); every other
    warning still reaches the caller (the command line prints it as one ``warning:`` line).
    """
    with warnings.catch_warnings():
        for category in categories or EXPECTED_WARNINGS:
            warnings.simplefilter("ignore", category)
        with np.errstate(all="ignore"):
            yield
