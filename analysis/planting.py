"""Plant a known regime into a measured dataset (semi-synthetic data).

The simulator encodes our own assumptions about noise; a regime planted into
*real* runs keeps the real noise (heavy tails, run-level states, drift) and
adds a known truth. :func:`plant` slows the decode phase of every run inside a
budget (or total-length) interval, the way the MPS regimes do, and returns the
modified dataset with ``truth_anomalous``. Use it to measure what
:func:`analysis.regimes` can find in your own null sweeps.
"""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

from analysis.core.common import check_axes
from analysis.core.stacked import dense_steps
from analysis.errors import InputError

__all__ = ["ONSETS", "plant"]

#: What the interval is defined on: the budget, or the total length (prompt + budget).
ONSETS: tuple[str, ...] = ("budget", "total")


def plant(
    ds: xr.Dataset,
    start: int,
    end: int,
    factor: float,
    *,
    onset: str = "budget",
    from_step: int | float = 0,
    where: xr.DataArray | None = None,
) -> xr.Dataset:
    """Slow the decode phase of the runs whose budget (or total length) lies in ``[start, end]``.

    Parameters
    ----------
    ds
        A dataset with ``latency``, ``prefill_time`` and ``decode_time`` over
        ``budget`` (and any other dims).
    start, end
        The interval, inclusive, in budget units (``onset="budget"``) or in
        total tokens, prompt + budget (``onset="total"``; needs ``prompt_len``).
    factor
        Decode steps inside the regime take ``factor`` times as long (> 0).
    onset
        ``budget`` or ``total``.
    from_step
        The first decode step that is slowed (0: the whole decode). A float in
        (0, 1) is a share of the budget (0.5: the second half of each slowed
        generation). With ``step_time`` present the steps themselves are
        scaled; otherwise the decode time is scaled by the slowed share of
        its steps.
    where
        Boolean over (some of) the series dims: where to plant (default:
        every series).

    Returns
    -------
    xarray.Dataset
        A copy of ``ds`` with ``latency``, ``decode_time`` (and ``step_time``)
        changed inside the regime, plus ``truth_anomalous`` (bool, the
        planted cells) and attrs ``planted`` describing the plant. NaN runs
        stay NaN.

    Raises
    ------
    InputError
        Missing variables, a bad interval, factor, onset or step; or an interval holding no measured run
        (outside the measured budgets, or total lengths), which would plant nothing.
    """
    for v in ("latency", "prefill_time", "decode_time"):
        if v not in ds.data_vars:
            raise InputError(f"plant needs variable {v!r}; the dataset has {sorted(map(str, ds.data_vars))}")
    if onset not in ONSETS:
        raise InputError(f"onset must be one of {list(ONSETS)}, got {onset!r}")
    if not (isinstance(factor, numbers.Real) and np.isfinite(factor) and factor > 0):
        raise InputError(f"factor must be a positive number, got {factor!r}")
    if not (isinstance(start, numbers.Integral) and isinstance(end, numbers.Integral) and start <= end):
        raise InputError(f"start and end must be integers with start <= end, got {start!r}, {end!r}")
    if not (isinstance(from_step, numbers.Real) and from_step >= 0):
        raise InputError(f"from_step must be a number >= 0, got {from_step!r}")
    if "budget" not in ds.coords:
        raise InputError(f"plant needs a 'budget' coordinate; the dataset has dims {list(map(str, ds.dims))!r}")
    check_axes(ds, "plant", ["latency"])
    ds = dense_steps(ds)  # (several files: per-step times by run, over the series again)
    budget = ds["budget"]
    if onset == "total":
        if "prompt_len" not in ds.coords:
            raise InputError("onset='total' needs a 'prompt_len' coordinate")
        length = budget + ds["prompt_len"]
    else:
        length = budget
    inside = (length >= start) & (length <= end)
    if where is not None:
        inside = inside & where.astype(bool)
    inside = inside.broadcast_like(ds["latency"])
    _check_measured_inside(ds, inside, start, end, onset, length, where is not None)
    k0 = from_step * budget if 0 < from_step < 1 else xr.full_like(budget, float(from_step), dtype=float)
    k0 = k0.clip(0, budget)
    out = ds.copy()
    if "step_time" in ds.data_vars:
        step = ds["step"]
        slowed = inside & (step >= 1) & (step >= k0) & (step < budget)
        st = ds["step_time"].where(~slowed, ds["step_time"] * factor)
        extra = (st - ds["step_time"]).fillna(0).sum("step")
        # (Variables: a DataArray would bring a second copy of a stacked 'series' MultiIndex to merge)
        out["step_time"] = st.astype(ds["step_time"].dtype).transpose(*ds["step_time"].dims).variable
        out["step_time"].attrs = ds["step_time"].attrs
    else:
        # decode steps are 1..budget-1 (step 0 is the prefill); the slowed share of them
        n_dec = (budget - 1).clip(min=1)
        share = ((budget - 1 - (k0 - 1).clip(min=0)) / n_dec).clip(0, 1)
        extra = ds["decode_time"] * (factor - 1.0) * share
        extra = extra.where(inside, 0.0)
    for v in ("latency", "decode_time"):
        out[v] = (ds[v] + extra.where(ds[v].notnull())).transpose(*ds[v].dims).variable
        out[v].attrs = ds[v].attrs
    truth = inside & ds["latency"].notnull()
    out["truth_anomalous"] = truth.transpose(*ds["latency"].dims).variable
    out["truth_anomalous"].attrs = {"long_name": "planted regime (semi-synthetic truth)"}
    out.attrs["planted"] = (f"decode x{factor:g} for {onset} in [{start}, {end}] from step {from_step:g}; "
                            "the rest is the measured data")
    return out


def _span(values: np.ndarray) -> str:
    """``2, 4, 8`` or ``2-24 (12 values)`` for a sorted set of integers."""
    v = [int(x) for x in values]
    if len(v) <= 6:
        return ", ".join(map(str, v))
    return f"{v[0]}-{v[-1]} ({len(v)} values)"


def _check_measured_inside(ds: xr.Dataset, inside: xr.DataArray, start: int, end: int, onset: str,
                           length: xr.DataArray, chosen: bool) -> None:
    """Refuse an interval in which no run was measured: planting there would silently plant nothing."""
    ran = ds["latency"].notnull()
    if bool((inside & ran).any()):
        return
    measured = length.broadcast_like(ds["latency"]).where(ran)
    values = np.unique(measured.values[np.isfinite(measured.values)])
    what = "budgets" if onset == "budget" else "total lengths (prompt + budget)"
    where = " in the series chosen by where" if chosen else ""
    have = _span(values) if values.size else "none (no ok run)"
    raise InputError(f"plant: no measured run has a {'budget' if onset == 'budget' else 'total length'} in "
                     f"[{start}, {end}]{where}, so nothing would be "
                     f"planted; the measured {what} are {have}")
