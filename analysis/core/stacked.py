"""Several files opened together as what was measured: the measured series stacked on one dim ``series``.

A single file is a dense cube over its sweep dims. Several files combined as a cube would be the outer
product of every file's labels (``datasets/*.nc``: 2520 combinations of origin, experiment, model, device,
cache and prompt for 29 measured series; nominally 960 MB for 850 kB of files). So
:func:`analysis.open_dataset` on several files returns them stacked:

* ``series``: one entry per measured series (a combination of the series dims with at least one ok run),
  a pandas MultiIndex whose levels are ``origin`` (when the files come from several origins) and the series
  dims in the schema's order (``experiment``, ``model``, ``device``, ``dtype``, ``attn``, ``cache``,
  ``cache_impl``, ``prompt_len``): ``ds.sel(device="mps")`` selects on a level. The per-origin settings
  (``host``, ``timing``, ``files`` ...) and the model coordinates (``n_params`` ...) are coordinates on
  ``series``.
* ``budget`` and ``trial``: every budget and trial any series ran; every variable is ``(series, budget,
  trial)``.
* ``step_time`` (per-step times) only for the runs that have them, one row per run: dims
  ``(step_run, step)``, with ``step_series`` (the run's series: an entry of its attr ``series``, which
  lists each series' values of the levels as JSON), ``step_budget`` and ``step_trial`` on ``step_run``,
  and ``step`` up to the longest of them (a cube of every series, budget and trial up to the longest
  budget would be 9x the files). :func:`dense_steps` gives it back as ``(series, budget, trial, step)``
  to the analyses and figures that read it, also after a selection on ``series``.

Every analysis treats ``series`` like any other series dim; the few that compare along a factor (the KV
cache, the device, the prompt length) unstack that level locally with :func:`unstack_levels`, over the
combinations of the other levels that were measured.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from collector.dataset import schema
from collector.dataset.combine import MISSING_LABEL, ORIGIN_DIM

__all__ = [
    "SERIES",
    "STEP_RUN",
    "STEP_COORDS",
    "dense_steps",
    "is_stacked",
    "level_values",
    "levels",
    "stack_measured",
    "unmeasured_series",
    "unstack_levels",
    "unstack_with",
]

#: The dim of the measured series of a combined dataset.
SERIES = "series"
#: The dim of the runs with per-step times in a combined dataset.
STEP_RUN = "step_run"
#: Coordinates on :data:`STEP_RUN`: the run's series (an entry of the first one's attr ``series``), budget, trial.
STEP_COORDS: tuple[str, str, str] = ("step_series", "step_budget", "step_trial")
_BUDGET, _TRIAL, _STEP = "budget", "trial", schema.STEP_DIM


def is_stacked(obj: xr.Dataset | xr.DataArray) -> bool:
    """Whether ``obj`` has a ``series`` dim indexed by a MultiIndex (a combined dataset or a result of one)."""
    return isinstance(obj.indexes.get(SERIES), pd.MultiIndex)


def levels(obj: xr.Dataset | xr.DataArray, dim: Hashable = SERIES) -> list[str]:
    """The level names of ``dim``'s MultiIndex ([] when ``dim`` has none)."""
    index = obj.indexes.get(dim)
    return [str(n) for n in index.names] if isinstance(index, pd.MultiIndex) else []


def level_values(obj: xr.Dataset | xr.DataArray, i: int, dim: Hashable = SERIES) -> dict[str, Any]:
    """``{level: value}`` of entry ``i`` of ``dim``'s MultiIndex, as plain Python values."""
    index = obj.indexes[dim]
    assert isinstance(index, pd.MultiIndex)
    return {str(n): (v.item() if isinstance(v, np.generic) else v) for n, v in zip(index.names, index[i])}


def unmeasured_series(ds: xr.Dataset) -> int:
    """How many series of the cube ``ds`` (combinations of its dims but budget and trial) have no ok run."""
    status = ds["status"]
    ok = (status == schema.STATUS["ok"]).any([_BUDGET, _TRIAL])
    return int((~ok).sum())


def stack_measured(ds: xr.Dataset, step_parts: Sequence[tuple[xr.Dataset, str | None]] | None = None) -> xr.Dataset:
    """A (combined) schema cube as its measured series: the representation this module's docstring describes.

    Parameters
    ----------
    ds
        A schema dataset over every sweep dim (and ``origin`` and extra dims such as ``experiment``), eager
        or dask-backed.
    step_parts
        The per-step times, when ``ds`` was combined without them: each input file (with ``step_time``)
        and the label of its origin in ``ds`` (None: ``ds`` has one origin). Read from them, the runs of a
        lazily combined cube never have to be assembled.

    Returns
    -------
    xarray.Dataset
        Every variable over ``(series, budget, trial)`` for the series with at least one ok run, and
        ``step_time`` (when present) over ``(step_run, step)`` for the runs with a per-step time; the
        budgets and trials no such series ran (ok or failed) are left out.
    """
    status = ds["status"]
    sdims = [str(d) for d in status.dims if d not in (_BUDGET, _TRIAL)]
    codes = np.asarray(status.values)
    ok = codes == schema.STATUS["ok"]
    axes = tuple(status.dims.index(d) for d in (_BUDGET, _TRIAL))
    measured = ok.any(axis=axes)
    # the budgets and trials any kept series ran (a failed run, an OOM at the largest budget, is kept)
    ran = (codes != schema.STATUS["not_run"]) & (codes != schema.STATUS["not_applicable"])
    ran &= np.expand_dims(measured, axes)
    keep_b = ran.any(axis=tuple(a for a, d in enumerate(status.dims) if d != _BUDGET))
    keep_t = ran.any(axis=tuple(a for a, d in enumerate(status.dims) if d != _TRIAL))
    steps = ds["step_time"] if "step_time" in ds.data_vars else None
    flat = ds.drop_vars(["step_time", _STEP], errors="ignore").isel({_BUDGET: np.flatnonzero(keep_b),
                                                             _TRIAL: np.flatnonzero(keep_t)})
    stacked = flat.stack({SERIES: sdims}).isel({SERIES: np.flatnonzero(measured.ravel())})
    stacked = stacked.transpose(SERIES, _BUDGET, _TRIAL, ...).compute()
    if steps is not None:
        stacked = _with_step_runs(stacked, steps, sdims, measured, keep_b, keep_t)
    elif step_parts:
        stacked = _with_part_steps(stacked, step_parts)
    stacked.attrs = dict(ds.attrs)
    return stacked


def _with_step_runs(out: xr.Dataset, steps: xr.DataArray, sdims: list[str], measured: np.ndarray,
                    keep_b: np.ndarray, keep_t: np.ndarray) -> xr.Dataset:
    """``out`` with the per-step times of its runs that have any, one row per run."""
    rows = np.flatnonzero(measured.ravel())
    picked = steps.drop_vars([c for c in steps.coords if c not in steps.dims]).stack({SERIES: sdims}).isel(
        {_BUDGET: np.flatnonzero(keep_b), _TRIAL: np.flatnonzero(keep_t)}).transpose(SERIES, _BUDGET, _TRIAL, _STEP)
    parts, where = [], []
    for start in range(0, rows.size, _STEP_BLOCK):  # a few series at a time: bounded memory for lazy cubes
        values = np.asarray(picked.isel({SERIES: rows[start:start + _STEP_BLOCK]}).values, dtype=np.float32)
        has = np.isfinite(values).any(axis=-1)
        s, b, t = np.nonzero(has)
        parts.append(values[s, b, t])
        where.append(np.stack([s + start, b, t], axis=1))
    data = np.concatenate(parts) if parts else np.zeros((0, steps.sizes[_STEP]), dtype=np.float32)
    s, b, t = np.concatenate(where).T if where else (np.zeros(0, dtype=np.intp),) * 3
    finite = np.isfinite(data).any(axis=0)
    data = data[:, : max(int(np.flatnonzero(finite).max(initial=-1)) + 1, 1)]  # up to the longest run's last step
    step = np.asarray(steps[_STEP].values)[: data.shape[1]] if _STEP in steps.coords else np.arange(data.shape[1])
    return _assign_runs(out, data, s, b, t, dict(steps.attrs), step,
                        dict(steps[_STEP].attrs) if _STEP in steps.coords else {})


def _assign_runs(out: xr.Dataset, data: np.ndarray, s: np.ndarray, b: np.ndarray, t: np.ndarray,
                 attrs: dict[str, Any], step: np.ndarray, step_attrs: dict[str, Any]) -> xr.Dataset:
    """``out`` with ``step_time`` rows ``data`` of the runs at series ``s``, budget ``b``, trial ``t`` (positions)."""
    budgets, trials = np.asarray(out[_BUDGET].values), np.asarray(out[_TRIAL].values)
    names = levels(out)
    keys = _series_keys(out, names)
    run_coords = {
        STEP_COORDS[0]: (STEP_RUN, s.astype(np.int64),
                         {"long_name": "the run's series: its entry of attr 'series', the values of the levels "
                                       "named in attr 'levels'", "levels": json.dumps(names),
                          "series": json.dumps(keys)}),
        STEP_COORDS[1]: (STEP_RUN, budgets[b], {"long_name": "budget of the run"}),
        STEP_COORDS[2]: (STEP_RUN, trials[t], {"long_name": "trial of the run"}),
    }
    var = xr.Variable((STEP_RUN, _STEP), data, attrs=attrs)
    return out.assign({"step_time": var}).assign_coords({**run_coords, _STEP: (_STEP, step, step_attrs)})


def _with_part_steps(out: xr.Dataset, parts: Sequence[tuple[xr.Dataset, str | None]]) -> xr.Dataset:
    """``out`` with the per-step times of its runs read from the input files (``(file, origin label)``)."""
    names = levels(out)
    where = {k: i for i, k in enumerate(_series_keys(out, names))}
    budgets, trials = np.asarray(out[_BUDGET].values), np.asarray(out[_TRIAL].values)
    rows: list[np.ndarray] = []
    s_all: list[int] = []
    b_all: list[np.ndarray] = []
    t_all: list[np.ndarray] = []
    for part, label in parts:
        st = part["step_time"]
        sdims = [str(d) for d in st.dims if d not in (_BUDGET, _TRIAL, _STEP)]
        values = np.asarray(st.transpose(*sdims, _BUDGET, _TRIAL, _STEP).values, dtype=np.float32)
        values = values.reshape((-1, *values.shape[len(sdims):]))
        pb = np.searchsorted(budgets, np.asarray(part[_BUDGET].values))
        pt = np.searchsorted(trials, np.asarray(part[_TRIAL].values))
        coords = [np.asarray(part[d].values).tolist() for d in sdims]
        for flat_i, idx in enumerate(np.ndindex(*[len(c) for c in coords])):
            mine = {d: c[i] for d, c, i in zip(sdims, coords, idx)}
            mine[ORIGIN_DIM] = label
            key = json.dumps([_plain(mine.get(n, MISSING_LABEL)) for n in names])
            if key not in where:
                continue
            has = np.isfinite(values[flat_i]).any(axis=-1)
            b, t = np.nonzero(has)
            rows.append(values[flat_i][b, t])
            s_all.extend([where[key]] * b.size)
            b_all.append(pb[b])
            t_all.append(pt[t])
    width = max((r.shape[1] for r in rows), default=1)
    data = np.full((sum(r.shape[0] for r in rows), width), np.nan, dtype=np.float32)
    at = 0
    for r in rows:
        data[at:at + r.shape[0], : r.shape[1]] = r
        at += r.shape[0]
    b_idx = np.concatenate(b_all) if b_all else np.zeros(0, dtype=np.intp)
    t_idx = np.concatenate(t_all) if t_all else np.zeros(0, dtype=np.intp)
    order = np.lexsort((t_idx, b_idx, np.asarray(s_all, dtype=np.intp)))  # series by series, as from a cube
    finite = np.isfinite(data).any(axis=0)
    data = data[order][:, : max(int(np.flatnonzero(finite).max(initial=-1)) + 1, 1)]
    step_attrs = dict(parts[0][0][_STEP].attrs) if _STEP in parts[0][0].coords else {}
    return _assign_runs(out, data, np.asarray(s_all, dtype=np.int64)[order], b_idx[order], t_idx[order],
                        dict(parts[0][0]["step_time"].attrs), np.arange(data.shape[1]), step_attrs)


#: Series whose per-step times are read at a time when a combined cube is made into runs.
_STEP_BLOCK = 8


def _series_keys(ds: xr.Dataset, names: Sequence[str]) -> list[str]:
    """Per series of ``ds`` (one, when ``series`` was selected away), the JSON list of its values of the levels
    ``names``: from its MultiIndex, or the scalar coordinate a selection left of a level."""
    index = ds.indexes.get(SERIES)
    n = ds.sizes.get(SERIES, 1) if SERIES in ds.dims else 1
    columns = []
    for name in names:
        if isinstance(index, pd.MultiIndex) and name in index.names:
            columns.append(index.get_level_values(name).tolist())
        elif name in ds.coords and ds[name].ndim == 0:
            columns.append([ds[name].values.item()] * n)
        else:
            columns.append([None] * n)
    return [json.dumps([_plain(c[i]) for c in columns]) for i in range(n)]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def dense_steps(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``step_time`` over ``(series, budget, trial, step)`` (NaN where a run has no per-step time).

    The runs are matched to the series by their values of the levels, so a selection on ``series``
    (``ds.sel(device="cpu")``, ``ds.isel(series=[0, 3])``) keeps the per-step times of the series it keeps.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when its ``step_time`` is absent or already dense (a single file); else a copy whose
        ``step_time`` holds the rows of ``step_run`` at their series, budget and trial, without the
        ``step_run`` coordinates.
    """
    if "step_time" not in ds.data_vars or STEP_RUN not in ds["step_time"].dims:
        return ds
    st = ds["step_time"]
    attrs = ds[STEP_COORDS[0]].attrs
    names, stored = json.loads(str(attrs.get("levels", "[]"))), json.loads(str(attrs.get("series", "[]")))
    where = {k: i for i, k in enumerate(_series_keys(ds, names))}
    one = SERIES not in ds.dims
    budgets, trials = np.asarray(ds[_BUDGET].values), np.asarray(ds[_TRIAL].values)
    dense = np.full((len(where), budgets.size, trials.size, st.sizes[_STEP]), np.nan, dtype=st.dtype)
    code = np.asarray([where.get(k, -1) for k in stored], dtype=np.intp)  # stored series -> position here
    s = code[np.asarray(ds[STEP_COORDS[0]].values, dtype=np.intp)] if code.size else np.zeros(0, dtype=np.intp)
    b = np.searchsorted(budgets, np.asarray(ds[STEP_COORDS[1]].values))
    t = np.searchsorted(trials, np.asarray(ds[STEP_COORDS[2]].values))
    keep = (s >= 0) & (b < budgets.size) & (t < trials.size)
    keep[keep] &= (budgets[b[keep]] == np.asarray(ds[STEP_COORDS[1]].values)[keep]) & \
        (trials[t[keep]] == np.asarray(ds[STEP_COORDS[2]].values)[keep])
    dense[s[keep], b[keep], t[keep]] = np.asarray(st.values)[keep]
    out = ds.drop_vars(["step_time", *STEP_COORDS])
    dims = (_BUDGET, _TRIAL, _STEP) if one else (SERIES, _BUDGET, _TRIAL, _STEP)
    return out.assign(step_time=xr.Variable(dims, dense[0] if one else dense, attrs=dict(st.attrs)))


def unstack_levels(ds: xr.Dataset, names: Sequence[str]) -> xr.Dataset:
    """``ds`` with the levels ``names`` of its ``series`` MultiIndex made dims, for the analyses that compare
    along a factor (KV cache, device, prompt length).

    The new ``series`` holds the combinations of the other levels that were measured with any value of
    ``names``; a pair never measured (a series with cache on only) is NaN (status ``not_run``), as in a
    single file. Coordinates on ``series`` that vary inside a new series are dropped.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when it is not stacked or has none of ``names`` among its levels; else the dataset
        over ``(series, *names, budget, trial)``, without the per-step times (``step_time``).
    """
    names = [n for n in names if n in levels(ds)]
    if not names:
        return ds
    if "step_time" in ds.data_vars and STEP_RUN in ds["step_time"].dims:  # not compared along a factor
        ds = ds.drop_vars(["step_time", *STEP_COORDS, _STEP], errors="ignore")
    index = ds.indexes[SERIES]
    assert isinstance(index, pd.MultiIndex)
    frame = index.to_frame(index=False)
    rest = [str(n) for n in index.names if n not in names]
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(frame[rest]) if len(rest) > 1 else frame[rest[0]]) \
        if rest else (np.zeros(len(frame), dtype=np.int64), pd.Index([0]))
    level_coords = set(index.names) | {SERIES}
    other = [str(c) for c in ds.coords if ds[c].dims == (SERIES,) and c not in level_coords]
    keep = {}
    for c in other:  # a coordinate constant inside each new series is kept on it
        values = pd.Series(np.asarray(ds[c].values)).groupby(codes)
        if bool((values.nunique(dropna=False) <= 1).all()):
            keep[c] = (np.asarray(values.first().reindex(range(len(uniques))).values), dict(ds[c].attrs))
    flat = ds.drop_vars([*other, *level_coords]).assign_coords(
        {"_rest": (SERIES, codes), **{n: (SERIES, frame[n].to_numpy()) for n in names}})
    wide = flat.set_index({SERIES: ["_rest", *names]}).unstack(SERIES, fill_value=_fills(flat))
    wide = wide.drop_vars("_rest")
    if not rest:
        return wide.isel(_rest=0).transpose(*names, _BUDGET, _TRIAL, ..., missing_dims="ignore")
    wide = wide.rename_dims({"_rest": SERIES})
    if rest:
        mi = uniques if isinstance(uniques, pd.MultiIndex) else pd.MultiIndex.from_arrays([uniques], names=rest)
        mi = mi.set_names(rest)
        wide = wide.assign_coords(xr.Coordinates.from_pandas_multiindex(mi, SERIES))
    wide = wide.assign_coords({c: (SERIES, v, a) for c, (v, a) in keep.items()})
    chunks = ds.chunksizes.get(SERIES) if any(v.chunks is not None for v in ds.data_vars.values()) else None
    if chunks:  # dask-backed: blocks of series again, every other dim whole
        wide = wide.chunk({SERIES: max(chunks), **{d: -1 for d in wide.dims if d != SERIES}})
    return wide.transpose(SERIES, *names, _BUDGET, _TRIAL, ..., missing_dims="ignore")


def unstack_with(ds: xr.Dataset, reg: xr.Dataset | None, names: Sequence[str]
                 ) -> tuple[xr.Dataset, xr.Dataset | None]:
    """:func:`unstack_levels` of a dataset and of the regimes result computed on it, alike.

    Returns
    -------
    ds : xarray.Dataset
        ``ds`` with the levels ``names`` made dims.
    reg : xarray.Dataset or None
        ``reg`` (None stays None) unstacked the same way, so that its series match those of ``ds``; anything
        but a Dataset is passed on as it is, for the analysis' own check to refuse by name.
    """
    return unstack_levels(ds, names), (unstack_levels(reg, names) if isinstance(reg, xr.Dataset) else reg)


#: The value a result variable of each dtype kind takes in a series nobody measured.
_KIND_FILL: dict[str, Any] = {"f": np.nan, "c": np.nan, "b": False, "i": -1, "u": 0, "U": "", "O": "",
                              "M": np.datetime64("NaT", "ns"), "m": np.timedelta64("NaT", "ns")}


def _fills(ds: xr.Dataset) -> dict[Hashable, Any]:
    """The value each variable takes in a cell nobody measured (its schema fill; else by its dtype)."""
    out: dict[Hashable, Any] = {}
    for name, var in ds.data_vars.items():
        spec = schema.VARIABLES.get(str(name))
        out[name] = spec.fill if spec is not None else _KIND_FILL.get(var.dtype.kind, np.nan)
    return out
