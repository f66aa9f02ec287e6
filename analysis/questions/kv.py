"""KV-cache speedup along the budget axis and where it collapses.

:func:`kv_speedup` computes ``latency(cache off) / latency(cache on)`` per
series and budget with bootstrap confidence intervals and runs the regimes
machinery (:func:`analysis.regimes.regimes`) on the speedup series: a
*collapse* is an interval where the speedup falls significantly below its
expected trend.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import xarray as xr

from analysis.core.common import (
    BUDGET,
    TRIAL,
    Series,
    check_dataset,
    check_fraction,
    check_positive_int,
    check_seed,
    ok_values,
    quiet,
    series_of,
)
from analysis.core.labels import fmt_fixed
from analysis.core.limits import check_bootstrap
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.series import apply_named, as_series_array, is_lazy
from analysis.core.stacked import is_stacked, unstack_with
from analysis.detect.blocks import Block, get_regimes, reg_array, regime_blocks
from analysis.errors import InputError

__all__ = ["kv_speedup", "bootstrap_ratio", "VARIABLES"]

#: Every variable of a :func:`kv_speedup` result, in order: over the series dims x ``budget`` or over the series
#: dims alone (``{ci}`` is the confidence level).
VARIABLES: dict[str, ResultVar] = {
    "speedup": ResultVar(BUDGET, "latency(cache off) / latency(cache on)", "1"),
    "speedup_lo": ResultVar(BUDGET, "speedup {ci:.0%} bootstrap CI, lower", "1"),
    "speedup_hi": ResultVar(BUDGET, "speedup {ci:.0%} bootstrap CI, upper", "1"),
    "expected": ResultVar(BUDGET, "expected speedup (trend)", "1"),
    "collapse": ResultVar(BUDGET, "speedup significantly below its trend"),
    "collapse_ratio": ResultVar(BUDGET, "speedup / expected where collapsed", "1"),
    "speedup_outside": ResultVar(SERIES, "median speedup outside collapses", "1"),
    "speedup_inside": ResultVar(SERIES, "median speedup inside collapses", "1"),
    "n_collapsed": ResultVar(SERIES, "collapsed budgets", "1"),
    "collapse_start": ResultVar(SERIES, "first budget of the largest collapse", "tokens"),
    "collapse_end": ResultVar(SERIES, "last budget of the largest collapse", "tokens"),
}


def bootstrap_ratio(
    num: np.ndarray, den: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0, block: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratio of trial means ``mean(num) / mean(den)`` per cell with a percentile bootstrap CI.

    ``num`` and ``den`` have shape ``(..., n_trial)`` (NaN = missing run);
    trials are resampled with replacement, independently for the numerator
    and the denominator. Each resample draws its trial indices once and
    applies them to every cell (as the effect CI of :func:`analysis.regimes`
    does), so a cell's interval depends only on its own trials and ``seed``:
    the same however the cells are split into blocks (dask). A cell with
    fewer than 2 finite trials on either side gets a NaN interval.

    Returns
    -------
    ratio, lo, hi
        Arrays of shape ``num.shape[:-1]``.
    """
    with quiet():
        ratio = np.nanmean(num, axis=-1) / np.nanmean(den, axis=-1)
    lo = np.full(ratio.shape, np.nan)
    hi = np.full(ratio.shape, np.nan)
    n_ok = np.minimum(np.isfinite(num).sum(-1), np.isfinite(den).sum(-1))
    if num.shape[-1] < 2 or not (n_ok >= 2).any():
        return ratio, lo, hi
    rng = np.random.default_rng(seed)
    i_num = rng.integers(0, num.shape[-1], size=(n_boot, num.shape[-1]))
    i_den = rng.integers(0, den.shape[-1], size=(n_boot, den.shape[-1]))
    draws = []
    for start in range(0, n_boot, block):
        with quiet():  # (..., resamples)
            m_num = np.nanmean(num[..., i_num[start : start + block]], axis=-1)
            m_den = np.nanmean(den[..., i_den[start : start + block]], axis=-1)
        draws.append(m_num / m_den)
    boot = np.concatenate(draws, axis=-1)
    tail = 100 * (1 - ci) / 2
    with quiet():
        lo_, hi_ = np.nanpercentile(boot, [tail, 100 - tail], axis=-1)
    keep = n_ok >= 2
    lo[keep], hi[keep] = lo_[keep], hi_[keep]
    return ratio, lo, hi


_SPEEDUP: tuple[str, ...] = ("speedup", "speedup_lo", "speedup_hi")


def _speedup_block(off: np.ndarray, on: np.ndarray, *, n_boot: int, ci: float, seed: int) -> dict[str, np.ndarray]:
    """:func:`bootstrap_ratio` of a block of series ``(..., budget, trial)`` with the cache off and on."""
    ratio, lo, hi = bootstrap_ratio(np.asarray(off, dtype=np.float64), np.asarray(on, dtype=np.float64),
                                    n_boot=n_boot, ci=ci, seed=seed)
    return {"speedup": ratio, "speedup_lo": lo, "speedup_hi": hi}


def kv_speedup(
    ds: xr.Dataset,
    *,
    reg: xr.Dataset | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    **regimes_kwargs: Any,
) -> xr.Dataset:
    """KV-cache speedup ``latency(cache off) / latency(cache on)`` and its collapse.

    Per series (every dim but budget, trial and cache) and budget, the speedup
    is the ratio of the trial means of latency without and with the cache; its
    confidence interval is a percentile bootstrap over trials (resampled
    within each cell, independently for the two caches).

    The *expected* speedup is the ratio of the two expected-scaling baselines
    of :func:`analysis.regimes.regimes` on latency (cache off: quadratic,
    cache on: linear; fitted robustly, so regimes do not bend them). The
    per-trial ratios (trial ``t`` off over trial ``t`` on: replicates of the
    speedup) divided by the expected speedup go through
    :func:`analysis.regimes.regimes` again (``scaling="constant"``,
    ``normal="highest"``: the normal level is the high one and a drop is the
    anomaly). A budget is *collapsed* when it lies in an anomalous interval
    below the trend.

    Parameters
    ----------
    ds
        Dataset with ``latency`` and a ``cache`` dim holding both False and True.
    reg
        A result of :func:`analysis.regimes.regimes` on ``ds`` (latency) to reuse; None computes it.
    n_boot
        Bootstrap resamples.
    ci
        Confidence level of the intervals.
    seed
        Seeds the bootstrap and the regimes calls.
    alpha
        Significance level passed to :func:`analysis.regimes.regimes`.
    **regimes_kwargs
        Other settings of :func:`analysis.regimes.regimes` (method, penalty,
        min_effect) used on the speedup series.

    Returns
    -------
    xarray.Dataset
        Over the series dims x budget:

        - ``speedup``: mean latency off / mean latency on.
        - ``speedup_lo``, ``speedup_hi``: bootstrap CI (NaN with fewer than 2 trials).
        - ``expected``: the expected speedup (ratio of the latency baselines,
          times the normal level of the normalised speedup).
        - ``collapse``: True where the speedup falls significantly below its trend.
        - ``collapse_ratio``: speedup / expected where collapsed, else NaN.

        Over the series dims:

        - ``speedup_outside``: median speedup over budgets not collapsed.
        - ``speedup_inside``: median speedup over collapsed budgets (NaN: no collapse).
        - ``n_collapsed``: number of collapsed budgets.
        - ``collapse_start``, ``collapse_end``: first and last budget of the
          largest collapse (NaN: none).

        Attr ``summary``: the speedup range and each collapse.

    Raises
    ------
    InputError
        When ``latency`` or the ``cache`` dim is missing, when ``cache`` lacks
        False or True, or when a setting is out of range.
    """
    fn = "kv_speedup"
    ds, reg = unstack_with(ds, reg, ("cache",))  # stacked series (several files): compared along it
    ds = check_dataset(ds, fn, ["latency"])
    if "cache" not in ds["latency"].dims or "cache" not in ds.coords:
        raise InputError(f"{fn}() needs a 'cache' dim on 'latency'; it has dims {ds['latency'].dims!r}")
    caches = [bool(c) for c in np.asarray(ds["cache"].values).tolist()]
    if False not in caches or True not in caches:
        raise InputError(f"{fn}() needs cache values False and True to compare, got {caches!r}")
    n_boot = check_positive_int(n_boot, "n_boot", fn)
    seed = check_seed(seed, fn)
    ci = check_fraction(ci, "ci", fn)
    alpha = check_fraction(alpha, "alpha", fn)
    for key in ("scaling", "normal"):
        if key in regimes_kwargs:
            raise InputError(f"{fn}(): {key!r} is fixed for the speedup series; got {key}={regimes_kwargs[key]!r}")
    off, on = _cache_off_on(ds, fn)
    series = series_of(off)
    budgets = np.asarray(ds[BUDGET].values)
    check_bootstrap(n_boot, series.size * budgets.size, fn, f"{series.size} series x {budgets.size} budgets")

    values = _speedups(off, on, series, n_boot=n_boot, ci=ci, seed=seed)
    trend, blocks, level = _trend(ds, off, on, series, budgets, reg, alpha=alpha, seed=seed, **regimes_kwargs)
    values.update(_collapses(values["speedup"], trend * level, blocks, budgets))
    out = xr.Dataset(wrap(VARIABLES, values, series, {BUDGET: ([BUDGET], {BUDGET: budgets})}, ci=ci),
                     attrs={"n_boot": n_boot, "ci": ci, "seed": seed, "alpha": alpha})
    out.attrs["summary"] = "\n".join([_summary(values, series, budgets, off, on), *origin_lines(out)])
    return out


def _cache_off_on(ds: xr.Dataset, fn: str) -> tuple[xr.DataArray, xr.DataArray]:
    """Latency with the cache off and on as ``(*series, budget, trial)`` (lazy like ``ds``), each checked."""
    lat = ok_values(ds, "latency")
    off = as_series_array(lat.sel(cache=False, drop=True))
    on = as_series_array(lat.sel(cache=True, drop=True))
    for name, c in (("off", off), ("on", on)):
        finite = np.isfinite(c)
        checks = (finite.any().data, (c <= 0).where(finite, False).any().data, c.where(finite).min().data)
        any_finite, any_nonpos, smallest = dask.compute(*checks) if is_lazy(c) else checks
        if not bool(any_finite):
            raise InputError(f"{fn}(): 'latency' has no finite value with the cache {name}")
        if bool(any_nonpos):
            raise InputError(f"{fn}(): 'latency' must be positive; found {float(smallest)!r} with the cache {name}")
    return off, on


def _speedups(off: xr.DataArray, on: xr.DataArray, series: Series, *, n_boot: int, ci: float,
              seed: int) -> dict[str, np.ndarray]:
    """``speedup``, ``speedup_lo``, ``speedup_hi`` ``(series, budget)``: per series, lazily for dask-backed input."""
    boot = apply_named(
        _speedup_block, [off, on], [[BUDGET, TRIAL], [BUDGET, TRIAL]],
        outputs={n: (BUDGET,) for n in _SPEEDUP}, kwargs={"n_boot": n_boot, "ci": ci, "seed": seed},
    ).compute()
    return {n: series.unwrap(boot[n]) for n in _SPEEDUP}


def _trend(ds: xr.Dataset, off: xr.DataArray, on: xr.DataArray, series: Series, budgets: np.ndarray,
           reg: xr.Dataset | None, *, alpha: float, seed: int,
           **regimes_kwargs: Any) -> tuple[np.ndarray, list[list[Block]], np.ndarray]:
    """The expected speedup's two factors ``(series, budget)`` and the speedup's regimes.

    Returns the ratio of the latency baselines (cache off / on), the anomalous blocks of the per-trial
    speedups over it and the normal level of those normalised speedups (the regimes baseline).
    """
    fn = "kv_speedup"
    lat_reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, seed=seed)
    if "baseline" not in lat_reg.data_vars:
        raise InputError(f"{fn}(): reg lacks 'baseline'; pass the Dataset returned by analysis.regimes()")
    base = lat_reg["baseline"]
    if "cache" not in base.dims:
        raise InputError(f"{fn}(): reg['baseline'] has dims {base.dims!r}, without 'cache'")
    trend = reg_array(
        (base.sel(cache=False, drop=True) / base.sel(cache=True, drop=True)).to_dataset(name="baseline"),
        "baseline", series, budgets, fn,
    ).astype(np.float64)
    # the per-trial ratios (replicates of the speedup) over their trend, lazy like the input
    with quiet():
        per_trial = off / on / series.wrap(trend, [BUDGET], {BUDGET: budgets})
        per_trial = per_trial.where(np.isfinite(per_trial) & (per_trial > 0))
    sp = per_trial.transpose(*series.dims, BUDGET, TRIAL)
    sp.attrs = {"units": "1", "long_name": "KV-cache speedup / expected speedup"}
    sp_ds = xr.Dataset({"speedup": sp})
    for name in ("order", "started_at"):  # the time check sees the cache-on runs' timing
        if name in ds.data_vars and "cache" in ds[name].dims:
            on_runs = ds[name].sel(cache=True, drop=True)
            # (stacked series: the values on the speedup's own coordinates; a second copy of its MultiIndex
            # would be merged level by level)
            sp_ds[name] = on_runs.transpose(*sp.dims).variable if is_stacked(on_runs) else on_runs
    sreg = get_regimes(sp_ds, "speedup", None, fn, alpha=alpha, seed=seed, scaling="constant", normal="highest",
                       **regimes_kwargs)
    level = reg_array(sreg, "baseline", series, budgets, fn).astype(np.float64)
    return trend, regime_blocks(sreg, series, budgets, fn), level


def _collapses(speedup: np.ndarray, expected: np.ndarray, blocks: list[list[Block]],
               budgets: np.ndarray) -> dict[str, np.ndarray]:
    """The collapse variables of the result from the speedup and expected speedup ``(series, budget)`` and the
    speedup's anomalous blocks: the fast blocks, over the budgets with a speedup."""
    S, B = speedup.shape
    collapse = np.zeros((S, B), dtype=bool)
    best: list[tuple[float, float]] = [(np.nan, np.nan)] * S
    for s in range(S):
        biggest = 0
        for blk in blocks[s]:
            if blk.kind != "fast":
                continue
            # only budgets with a speedup count: a block may span budgets this series never measured
            span = np.arange(blk.first, blk.last + 1)
            span = span[np.isfinite(speedup[s, span])]
            if span.size == 0:
                continue
            collapse[s, span] = True
            if span.size > biggest:
                biggest = span.size
                best[s] = (float(budgets[span[0]]), float(budgets[span[-1]]))
    with quiet():
        return {
            "expected": expected,
            "collapse": collapse,
            "collapse_ratio": np.where(collapse, speedup / expected, np.nan),
            "speedup_outside": np.nanmedian(np.where(collapse, np.nan, speedup), axis=1),
            "speedup_inside": np.nanmedian(np.where(collapse, speedup, np.nan), axis=1),
            "n_collapsed": collapse.sum(axis=1).astype(np.int64),
            "collapse_start": np.array([b[0] for b in best]),
            "collapse_end": np.array([b[1] for b in best]),
        }


def _summary(values: dict[str, np.ndarray], series: Series, budgets: np.ndarray, off: xr.DataArray,
             on: xr.DataArray) -> str:
    """The speedup range of each series and each collapse, for humans."""
    speedup, collapse, n_collapsed = values["speedup"], values["collapse"], values["n_collapsed"]
    S = series.size
    measured = np.isfinite(speedup).any(axis=1)  # series with cache on and off at some budget
    n_measured = int(measured.sum())
    # series with runs on one side only; series with no run at all (cells of a combined dataset no file has) go unsaid
    some = np.zeros(S, dtype=bool)
    for c in (off, on):
        some |= series.unwrap(c.notnull().any([BUDGET, TRIAL]))
    one_side = int(np.sum(some & ~measured))
    lines = [f"KV-cache speedup: {int(np.sum(n_collapsed > 0))} of {n_measured} series collapse below their trend"
             + (f" ({one_side} more series lack cache on or off at every budget)" if one_side else "")]
    for s in range(S):
        if n_collapsed[s]:
            lines.append(
                f"{series.name(s)}: {fmt_fixed(values['speedup_outside'][s], 1)}x outside, collapses to "
                f"{fmt_fixed(values['speedup_inside'][s], 1)}x at budgets {', '.join(str(int(b)) for b in budgets[collapse[s]])}"
            )
        elif measured[s] and n_measured <= 12:
            with quiet():
                low, high = fmt_fixed(np.nanmin(speedup[s]), 1), fmt_fixed(np.nanmax(speedup[s]), 1)
                lines.append(f"{series.name(s)}: {low}-{high}x, no collapse")
    return "\n".join(lines)
