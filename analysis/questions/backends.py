"""Which backends show regimes, per model ("absent on CPU and CUDA").

:func:`compare_backends` runs :func:`analysis.regimes.regimes` on latency
(or takes its result) and, per model and device, counts the series with a
regime and how strong the strongest is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, QUIET_DIMS, Series, check_dataset, ok_values, quiet, series_of
from analysis.core.labels import fmt_fixed, iter_series, n_values
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.stacked import unstack_with
from analysis.detect.blocks import Block, get_regimes, reg_array, regime_blocks
from analysis.errors import InputError
from collector.shared.factors import SERIES_DIMS

__all__ = ["compare_backends", "VARIABLES"]

#: Series dims pooled within one (model, device) cell: every sweep factor of a series but model and device.
POOLED: tuple[str, ...] = tuple(d for d in SERIES_DIMS if d not in ("model", "device"))
MODEL = "model"
#: Every variable of a :func:`compare_backends` result, in order: over the (model, device, other kept dims)
#: cells, or over the cells without ``device``.
VARIABLES: dict[str, ResultVar] = {
    "shows_regimes": ResultVar(SERIES, "at least one series has a regime"),
    "n_series": ResultVar(SERIES, "series pooled", "1"),
    "n_series_with_regime": ResultVar(SERIES, "series with at least one regime", "1"),
    "n_regimes": ResultVar(SERIES, "regimes over the pooled series", "1"),
    "share_anomalous": ResultVar(SERIES, "share of (series, budget) cells inside a regime", "1"),
    "max_ratio": ResultVar(SERIES, "largest observed / baseline inside a slow regime", "1"),
    "min_ratio": ResultVar(SERIES, "smallest observed / baseline inside a fast regime", "1"),
    "anomalous_budgets": ResultVar(SERIES, "anomalous budgets (union over the pooled series)"),
    "devices_with_regimes": ResultVar(MODEL, "devices showing regimes"),
}


def compare_backends(ds: xr.Dataset, *, reg: xr.Dataset | None = None, alpha: float = 0.05, **regimes_kwargs: Any) -> xr.Dataset:
    """Per model and device: do regimes appear, and how strong are they?

    Regimes come from :func:`analysis.regimes.regimes` on ``latency`` (or
    ``reg``). The series of one model and device (all dtypes, caches and
    prompt lengths, which are pooled) are summarised together; any other
    series dims (e.g. a host dim after a merge) are kept.

    Parameters
    ----------
    ds
        Dataset with ``latency`` and ``model`` and ``device`` dims.
    reg
        A result of :func:`analysis.regimes.regimes` on ``ds`` to reuse; None computes it.
    alpha
        Significance level passed to the regimes call.
    **regimes_kwargs
        Other settings of :func:`analysis.regimes.regimes`.

    Returns
    -------
    xarray.Dataset
        Over model x device (x other series dims):

        - ``shows_regimes``: at least one series has a regime.
        - ``n_series``: series pooled (dtype x cache x prompt_len with data).
        - ``n_series_with_regime``: series with at least one regime.
        - ``n_regimes``: regimes (anomalous intervals) over those series.
        - ``share_anomalous``: share of the (series, budget) cells inside a regime.
        - ``max_ratio``: largest observed / baseline latency inside a slow regime (NaN: none).
        - ``min_ratio``: smallest observed / baseline latency inside a fast regime (NaN: none).
        - ``anomalous_budgets``: the anomalous budgets, comma-separated (union over the pooled series).

        Over model (x other series dims):

        - ``devices_with_regimes``: the devices showing regimes, comma-separated.

        Attr ``summary``: per model, e.g. "regimes on mps (max 4.1x); absent on cpu and cuda".

    Raises
    ------
    InputError
        When ``latency``, the budget dim or the ``model``/``device`` dims are missing.
    """
    fn = "compare_backends"
    ds, reg = unstack_with(ds, reg, (MODEL, "device", *POOLED))  # stacked series (several files): by model, device
    ds = check_dataset(ds, fn, ["latency"])
    for d in ("model", "device"):
        if d not in ds["latency"].dims or d not in ds.coords:
            raise InputError(f"{fn}() needs a {d!r} dim on 'latency'; it has dims {ds['latency'].dims!r}")
    lat = ok_values(ds, "latency")
    series = series_of(lat)
    budgets = np.asarray(ds[BUDGET].values)
    reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, **regimes_kwargs)
    blocks = regime_blocks(reg, series, budgets, fn)
    ratio = np.asarray(reg_array(reg, "ratio", series, budgets, fn), dtype=np.float64)
    # the flags at the budgets each series measured (a finite ratio): none at a budget it never ran
    anomalous = np.asarray(reg_array(reg, "anomalous", series, budgets, fn), dtype=bool) & np.isfinite(ratio)
    present = lat.notnull().any("trial") if "trial" in lat.dims else lat.notnull()
    has_data = series.unwrap(present)
    pooled = [d for d in series.dims if d in POOLED]
    cells = _cells(series, pooled)
    models = Series(tuple(d for d in cells.dims if d != "device"), cells.template.isel(device=0, drop=True))
    devices = np.asarray(ds["device"].values).astype(str)
    values = _pool(_members(series, pooled), blocks, anomalous, ratio, has_data, budgets)
    values["devices_with_regimes"] = _devices_with_regimes(values["shows_regimes"], cells, devices)
    out = xr.Dataset(wrap(VARIABLES, values, cells, {MODEL: models}),
                     attrs={"alpha": alpha, "pooled_dims": ",".join(pooled)})
    out.attrs["summary"] = "\n".join([_summary(out, devices), *origin_lines(out)])
    return out


def _cells(series: Series, pooled: list[str]) -> Series:
    """The (model, device, other kept dims) cells: the series dims without the pooled ones."""
    kept = tuple(d for d in series.dims if d not in pooled)
    return Series(kept, series.template.isel({d: 0 for d in pooled}, drop=True).transpose(*kept))


def _members(series: Series, pooled: list[str]) -> np.ndarray:
    """``(cell, member)``: the flat series indices pooled in each cell (C order over the kept dims)."""
    kept = [d for d in series.dims if d not in pooled]
    perm = [series.dims.index(d) for d in kept] + [series.dims.index(d) for d in pooled]
    idx = np.transpose(np.arange(series.size).reshape(series.shape), perm)
    return idx.reshape(int(np.prod(idx.shape[: len(kept)], dtype=np.int64)), -1)


def _pool(idx: np.ndarray, blocks: list[list[Block]], anomalous: np.ndarray, ratio: np.ndarray, has_data: np.ndarray,
          budgets: np.ndarray) -> dict[str, np.ndarray]:
    """The per-cell variables of the result ``(cell,)`` from the regimes of the series pooled in each cell
    (``idx``: :func:`_members`; ``anomalous``, ``ratio``, ``has_data``: ``(series, budget)``)."""
    K = idx.shape[0]
    shows = np.zeros(K, dtype=bool)
    n_series = np.zeros(K, dtype=np.int64)
    n_with = np.zeros(K, dtype=np.int64)
    n_reg = np.zeros(K, dtype=np.int64)
    share = np.full(K, np.nan)
    max_ratio = np.full(K, np.nan)
    min_ratio = np.full(K, np.nan)
    budgets_text = np.full(K, "", dtype=object)
    for k in range(K):
        members = [s for s in idx[k] if has_data[s].any()]
        n_series[k] = len(members)
        if not members:
            continue
        n_with[k] = sum(1 for s in members if blocks[s])
        n_reg[k] = sum(len(blocks[s]) for s in members)
        shows[k] = n_with[k] > 0
        cells = sum(int(has_data[s].sum()) for s in members)
        share[k] = sum(int((anomalous[s] & has_data[s]).sum()) for s in members) / cells if cells else np.nan
        slow = [ratio[s, b.first : b.last + 1] for s in members for b in blocks[s] if b.kind == "slow"]
        fast = [ratio[s, b.first : b.last + 1] for s in members for b in blocks[s] if b.kind == "fast"]
        with quiet():
            if slow:
                max_ratio[k] = float(np.nanmax(np.concatenate(slow)))
            if fast:
                min_ratio[k] = float(np.nanmin(np.concatenate(fast)))
        union = np.zeros(budgets.size, dtype=bool)
        for s in members:
            union |= anomalous[s]
        budgets_text[k] = ",".join(str(b.item()) for b in budgets[union])
    return {"shows_regimes": shows, "n_series": n_series, "n_series_with_regime": n_with, "n_regimes": n_reg,
            "share_anomalous": share, "max_ratio": max_ratio, "min_ratio": min_ratio,
            "anomalous_budgets": budgets_text.astype(str)}


def _devices_with_regimes(shows: np.ndarray, cells: Series, devices: np.ndarray) -> np.ndarray:
    """Per model (x other kept dims, flat), the devices showing regimes, comma-separated."""
    rows: np.ndarray = np.moveaxis(shows.reshape(cells.shape).astype(bool), cells.dims.index("device"), -1)
    # (not apply_along_axis: it sizes the strings by the first)
    names: np.ndarray = np.array([",".join(devices[r]) for r in rows.reshape(-1, rows.shape[-1])], dtype=object)
    return np.asarray(names, dtype=str)


def _summary(out: xr.Dataset, devices: np.ndarray) -> str:
    """Per model (x other kept dims), the devices with regimes, their strength and budgets, for humans."""
    lines = []
    stacked = out.drop_vars("devices_with_regimes")
    other = [str(d) for d in stacked["shows_regimes"].dims if d != "device"]
    for index, values in iter_series(stacked, other):  # (stacked series: every level of them)
        cell = stacked.isel(index)
        if int(cell["n_series"].sum()) == 0:  # nothing measured here (e.g. a model another origin ran)
            continue
        name = "/".join(str(v) for d, v in values.items() if not (d in QUIET_DIMS and n_values(out, d) == 1)) or "all"
        show = [str(d) for d, s in zip(devices, cell["shows_regimes"].values) if s]
        absent = [str(d) for d, s, n in zip(devices, cell["shows_regimes"].values, cell["n_series"].values) if not s and n > 0]
        parts = []
        for d in show:
            one = cell.sel(device=d)
            if np.isfinite(float(one["max_ratio"])):
                strength = f"max {fmt_fixed(float(one['max_ratio']), 1)}x"
            else:
                strength = f"min {fmt_fixed(float(one['min_ratio']))}x"
            parts.append(f"{d} ({int(one['n_series_with_regime'])} of {int(one['n_series'])} series, {strength}, "
                         f"budgets {str(one['anomalous_budgets'].values)})")
        if parts:
            text = f"{name}: regimes on " + "; ".join(parts)
            if absent:
                text += "; absent on " + _join(absent)
        else:
            text = f"{name}: no regime on any device" + (f" ({_join(absent)})" if absent else "")
        lines.append(text)
    return "\n".join(lines)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
