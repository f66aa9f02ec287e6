"""Which backends show regimes, per model ("absent on CPU and CUDA").

:func:`compare_backends` runs :func:`analysis.regimes.regimes` on latency
(or takes its result) and, per model and device, counts the series with a
regime and how strong the strongest is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from analysis._common import (
    BUDGET,
    QUIET_DIMS,
    check_dataset,
    get_regimes,
    ok_values,
    quiet,
    reg_array,
    regime_blocks,
    series_of,
)
from analysis._origins import origin_lines
from analysis.errors import InputError
from collector.factors import SERIES_DIMS

__all__ = ["compare_backends"]

#: Series dims pooled within one (model, device) cell: every sweep factor of a series but model and device.
POOLED: tuple[str, ...] = tuple(d for d in SERIES_DIMS if d not in ("model", "device"))


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
    ds = check_dataset(ds, fn, ["latency"])
    for d in ("model", "device"):
        if d not in ds["latency"].dims or d not in ds.coords:
            raise InputError(f"{fn}() needs a {d!r} dim on 'latency'; it has dims {ds['latency'].dims!r}")
    lat = ok_values(ds, "latency")
    series = series_of(lat)
    budgets = np.asarray(ds[BUDGET].values)
    reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, **regimes_kwargs)
    blocks = regime_blocks(reg, series, budgets, fn)
    anomalous = np.asarray(reg_array(reg, "anomalous", series, budgets, fn), dtype=bool)
    ratio = np.asarray(reg_array(reg, "ratio", series, budgets, fn), dtype=np.float64)
    present = lat.notnull().any("trial") if "trial" in lat.dims else lat.notnull()
    has_data = np.asarray(present.transpose(*series.dims, BUDGET).values, dtype=bool).reshape(series.size, -1)

    pooled = [d for d in series.dims if d in POOLED]
    kept = tuple(d for d in series.dims if d not in POOLED)
    # flat series index -> (kept cell, pooled member)
    shape = series.shape
    perm = [series.dims.index(d) for d in kept] + [series.dims.index(d) for d in pooled]
    idx = np.transpose(np.arange(series.size).reshape(shape), perm)
    kept_shape = idx.shape[: len(kept)]
    idx = idx.reshape(int(np.prod(kept_shape, dtype=np.int64)), -1)
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

    template = series.template.isel({d: 0 for d in pooled}, drop=True).transpose(*kept)
    coords = {c: v for c, v in template.coords.items()}

    def wrap(values: np.ndarray, long_name: str, units: str | None = "1") -> xr.DataArray:
        attrs = {"long_name": long_name} if units is None else {"units": units, "long_name": long_name}
        return xr.DataArray(np.asarray(values).reshape(kept_shape), dims=kept, coords=coords, attrs=attrs)

    shows_arr = wrap(shows, "at least one series has a regime", None)
    dev_axis = kept.index("device")
    shows_nd = shows.reshape(kept_shape)
    devices = np.asarray(ds["device"].values).astype(str)
    rows = np.moveaxis(shows_nd.astype(bool), dev_axis, -1)  # (not apply_along_axis: it sizes the strings by the first)
    with_dev = np.array([",".join(devices[r]) for r in rows.reshape(-1, rows.shape[-1])], dtype=object).reshape(
        rows.shape[:-1])
    model_template = template.isel(device=0, drop=True)
    out = xr.Dataset(
        {
            "shows_regimes": shows_arr,
            "n_series": wrap(n_series, "series pooled"),
            "n_series_with_regime": wrap(n_with, "series with at least one regime"),
            "n_regimes": wrap(n_reg, "regimes over the pooled series"),
            "share_anomalous": wrap(share, "share of (series, budget) cells inside a regime"),
            "max_ratio": wrap(max_ratio, "largest observed / baseline inside a slow regime"),
            "min_ratio": wrap(min_ratio, "smallest observed / baseline inside a fast regime"),
            "anomalous_budgets": wrap(budgets_text.astype(str), "anomalous budgets (union over the pooled series)", None),
            "devices_with_regimes": xr.DataArray(
                np.asarray(with_dev, dtype=str).reshape(model_template.shape), dims=model_template.dims,
                coords={c: v for c, v in model_template.coords.items()}, attrs={"long_name": "devices showing regimes"},
            ),
        },
        attrs={"alpha": alpha, "pooled_dims": ",".join(pooled)},
    )
    out.attrs["summary"] = "\n".join([_summary(out, devices), *origin_lines(out)])
    return out


def _summary(out: xr.Dataset, devices: np.ndarray) -> str:
    lines = []
    stacked = out.drop_vars("devices_with_regimes")
    other = [d for d in stacked["shows_regimes"].dims if d != "device"]
    cells = stacked.stack(_cell=other) if other else stacked.expand_dims("_cell")
    for c in range(cells.sizes["_cell"]):
        cell = cells.isel(_cell=c)
        if int(cell["n_series"].sum()) == 0:  # nothing measured here (e.g. a model another origin ran)
            continue
        name = "/".join(str(cell[d].values.item()) for d in other
                        if not (d in QUIET_DIMS and out.sizes[d] == 1)) or "all"
        show = [str(d) for d, s in zip(devices, cell["shows_regimes"].values) if s]
        absent = [str(d) for d, s, n in zip(devices, cell["shows_regimes"].values, cell["n_series"].values) if not s and n > 0]
        parts = []
        for d in show:
            one = cell.sel(device=d)
            strength = f"max {float(one['max_ratio']):.1f}x" if np.isfinite(float(one["max_ratio"])) else f"min {float(one['min_ratio']):.2f}x"
            parts.append(f"{d} ({int(one['n_series_with_regime'])} of {int(one['n_series'])} series, {strength}, budgets {str(one['anomalous_budgets'].values)})")
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
