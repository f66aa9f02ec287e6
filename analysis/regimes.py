"""Discrete latency regimes along the budget axis: :func:`regimes`.

The model, the penalty and the tests are described in docs/methods.md
("Regimes along the budget axis"). In short, per series (every dim except
``budget`` and ``trial``): fit the expected scaling robustly, cut the log ratio
to it into segments (ruptures), pick the normal regime by expected scaling,
refit on it, test every segment against it with the trial-level data, correct
across the dataset (Benjamini-Hochberg), then check each anomalous segment
against execution time.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import xarray as xr

from analysis import _detect, _series
from analysis import confound as _cf
from analysis import segments as _sg
from analysis import _regimes_vars as _rv
from analysis import stats as _st
from analysis._limits import check_bootstrap
from analysis._origins import origin_lines
from analysis._regimes_summary import summarize
from analysis.baseline import DEGREE, SCALINGS
from analysis._common import check_axes, check_seed, quiet
from analysis.errors import InputError

__all__ = ["METHODS", "NORMAL_RULES", "SCALINGS", "regimes", "summary"]

#: Range of values the fits take (squares of smaller or larger values underflow or overflow a float64).
_MIN_VALUE, _MAX_VALUE = 1e-150, 1e150

METHODS = _sg.METHODS
NORMAL_RULES = _sg.NORMAL_RULES
#: Names of the result's variables (a series dim may not take one of them, nor "segment").
OUTPUT_VARIABLES: tuple[str, ...] = tuple(_rv.VARIABLES)
#: Per-run noise (sd of log values) above which a series is flagged as noisy, with the likely cause.
NOISY = 0.1
#: Most permutations a series may ask for (memory and time grow with it).
MAX_PERM = 100_000


def regimes(
    ds: xr.Dataset,
    var: str = "latency",
    *,
    method: str = "pelt",
    penalty: float | None = None,
    min_effect: float = 0.2,
    alpha: float = 0.05,
    scaling: str = "auto",
    n_boot: int = 200,
    seed: int = 0,
    normal: str = "lowest",
    n_perm: int = 200,
) -> xr.Dataset:
    """Find discrete regimes of ``ds[var]`` along the budget axis.

    Parameters
    ----------
    ds
        A dataset (or a bare DataArray, analysed as ``var``) with ``var`` over ``budget`` (at least 3 budgets) and
        optionally ``trial`` (replicates) and any other dims (independent
        series). Full schema validity is not required, so derived variables
        work. ``order`` / ``started_at`` (when present) drive the time check.
    var
        The variable to analyse; values must be positive (NaN: no data).
    method
        Changepoint search: ``pelt`` (default), ``binseg``, ``dynp`` or
        ``kernel`` (ruptures, ``jump=1``, ``min_size=1``).
    penalty
        Penalty per changepoint in squared-log-ratio units. ``None``: from the
        replicate noise of each series, ``2 * sigma_m**2 * ln(n)`` where
        ``sigma_m`` is the noise of a per-budget median and ``n`` the number
        of budgets with data.
    min_effect
        Smallest relative effect that counts: a segment is anomalous only if
        its median ratio is at least ``1 + min_effect`` or at most
        ``1 / (1 + min_effect)``.
    alpha
        False discovery rate for the Benjamini-Hochberg q-values (and the
        level of the time-term test).
    scaling
        Expected scaling of ``var`` with budget: ``auto`` (cache on: linear,
        cache off: quadratic, no ``cache`` coordinate: chosen by fit),
        ``constant``, ``linear`` or ``quadratic``.
    n_boot
        Bootstrap resamples for effect CIs and boundary intervals (0: none).
    seed
        Seeds every resampling (results do not depend on dask chunking).
    normal
        Which level group is the normal regime: ``lowest`` (default: the
        cheapest group covering at least a quarter of the budgets),
        ``highest`` (for derived series where a drop is the anomaly) or
        ``majority``.
    n_perm
        Permutations of each series' runs (and Gaussian draws) for the null
        distributions of the step scan (p-values beyond their range come from
        a Gumbel tail fitted to them).

    Returns
    -------
    xarray.Dataset
        Dims: the series dims of ``ds[var]``, ``budget`` and ``segment``
        (padded across series; unused entries are NaN / "" / False).

        Per series and budget:

        - ``anomalous`` (bool): the budget lies in an anomalous segment.
        - ``ratio``: observed / baseline (median over trials).
        - ``baseline``: the expected-scaling fit (units of ``var``).
        - ``regime`` (int): segment id, 0.. along the budget axis (-1: no data).
        - ``normal`` (bool): the budget lies in the normal regime.

        Per series and segment:

        - ``start``, ``end``: first and last budget of the segment.
        - ``start_lo``, ``start_hi``, ``end_lo``, ``end_hi``: 95 % intervals
          of the start and end under trial resampling (budget units; NaN at
          the sweep's ends).
        - ``effect``: median ratio of the segment's runs to the baseline;
          ``effect_lo``, ``effect_hi``: its 95 % bootstrap CI (trials resampled).
        - ``p``: two-sided p-value of the segment against the normal regime
          (NaN: not tested, e.g. a series that is one segment); ``q``: its
          Benjamini-Hochberg q-value across every tested segment of the dataset.
        - ``reproducible``: share of trials in which the segment's contrast
          has its sign and at least half of ``min_effect`` (NaN below 3 trials).
        - ``kind`` (str): ``normal``, ``slow`` or ``fast``.
        - ``segment_anomalous`` (bool): ``q < alpha``, ``|log effect| >=
          log(1 + min_effect)``, reproducible in at least 3/4 of the trials,
          not in the normal regime, not explained by execution time, and in a
          series whose ``q_series`` is below ``alpha``.
        - ``confounded`` (bool): budget and execution time cannot be
          separated for the segment (its runs cluster in time) or a time term
          explains it (then it is not anomalous).
        - ``clustered`` (bool): its runs cluster in execution time.
        - ``p_time``: p-value of the budget term in the model with a time term.
        - ``n_cells``: runs with data in the segment.
        - ``step``: the segment's step against a smooth curve through its
          neighbours (ratio); ``p_run``, ``p_scatter``: the step scan's
          p-values under permutation of the series' runs and against the
          budget-to-budget scatter.

        Per series: ``noise`` (per-run noise, log units), ``penalty`` (the
        penalty used), ``scaling`` (str: constant, linear or quadratic),
        ``detected`` (bool: the changepoint search ran; series in which no
        budget departs from the baseline by ``min_effect`` are one segment),
        ``p_series`` (the scan p-value of the strongest interval), ``q_series``
        (Benjamini-Hochberg q-value across the series of the smaller of
        ``p_series`` and the series' smallest segment ``p``), ``mde`` and
        ``mde_4`` (the smallest ratio detectable over one and over four
        budgets at ``alpha`` with 80 % power), ``scatter`` (budget-to-budget
        scatter around a smooth curve, log units) and ``noisy`` (bool: per-run
        noise above :data:`NOISY`).

        Attrs: ``var``, ``method``, ``penalty`` ("auto" or the value),
        ``min_effect``, ``alpha``, ``scaling``, ``normal``, ``n_boot``,
        ``seed``, ``time_check`` (what the time check used or why it was
        skipped), ``sequential_share`` and ``summary`` (a few lines for
        humans; also :func:`summary`).

    Raises
    ------
    InputError
        ``var`` missing, no ``budget`` dim, fewer than 3 budgets, no finite
        value, a value <= 0, or a bad option.
    """
    if isinstance(ds, xr.DataArray):  # a bare array: analyse it under the name ``var``
        ds = ds.to_dataset(name=var)
    da = _validate(ds, var, method=method, penalty=penalty, min_effect=min_effect, alpha=alpha,
                   scaling=scaling, n_boot=n_boot, seed=seed, normal=normal, n_perm=n_perm)
    _nb, _nt = int(da.sizes.get(_series.BUDGET, 1)), int(da.sizes.get("trial", 1))
    check_bootstrap(n_boot, _nb * _nt, "regimes", f"{_nb} budgets x {_nt} trials")
    da = _series.as_series_array(da)
    sdims = _series.series_dims(da)
    budgets = np.asarray(da[_series.BUDGET].values)
    nb = budgets.size
    degree = _degrees(ds, da, scaling)
    res = _series.apply_named(
        _detect.analyse_block, [da, degree, _series.series_ids(da)], [[_series.BUDGET, _series.TRIAL], [], []],
        outputs=_detect.OUTPUTS, sizes={_detect.SEGMENT_DIM: nb},
        kwargs={"budgets": budgets, "method": method, "penalty": penalty, "min_effect": float(min_effect),
                "n_boot": int(n_boot), "seed": int(seed), "normal_rule": normal, "n_perm": int(n_perm),
                "alpha": float(alpha)},
    ).compute()
    sshape = tuple(da.sizes[d] for d in sdims)

    def flat(names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Outputs as arrays ``(series, *core)`` in C order over the series dims."""
        out = {}
        for name in names:
            v = res[name].transpose(*sdims, *_detect.OUTPUTS[name])
            out[name] = np.asarray(v.values, dtype=float).reshape((-1,) + v.shape[len(sdims):])
        return out

    f, sg, ser = flat(_detect.FIELDS_BUDGET), flat(_detect.FIELDS_SEGMENT), flat(_detect.FIELDS_SERIES)
    n_seg = np.nan_to_num(ser["n_segments"], nan=0).astype(int)
    K = max(int(n_seg.max()) if n_seg.size else 1, 1)
    sg = {k: v[:, :K] for k, v in sg.items()}
    exists = np.arange(K)[None, :] < n_seg[:, None]

    # ---- dataset-wide decisions: BH, effect size, reproducibility
    q = _st.bh(np.where(exists, sg["p"], np.nan))
    # a series is one test of "is there a step anywhere?" (its scan): corrected across the series, so that in a
    # dataset of many null series the one whose k trials of a cell all landed in a slow run state is not a regime
    # (its strongest evidence: the scan p of its strongest interval, or a tested segment's, whose null leaves out
    # the part of a large step beyond the noise)
    with quiet():  # all-NaN rows: series without a tested segment
        p_seg = np.nanmin(np.where(exists, sg["p"], np.nan), axis=1)
    q_series = _st.bh(np.fmin(ser["p_series"], p_seg))
    series_ok = ~(q_series >= alpha)  # NaN (too short for a scan): the segment test alone decides
    thr = float(np.log1p(min_effect))
    log_eff = np.log(sg["effect"])
    log_step = np.log(sg["step"])
    with np.errstate(invalid="ignore"):
        repro_ok = ~(sg["reproducible"] < 0.75)
        # a regime is a discontinuity: its step against the smooth curve through its neighbours is as
        # large as the effect threshold and goes the same way as its departure from the baseline
        jump_ok = (np.abs(log_step) >= thr) & (np.sign(log_step) == np.sign(log_eff))
        candidate = (exists & (sg["in_normal"] == 0) & (q < alpha) & (np.abs(log_eff) >= thr) & repro_ok & jump_ok
                     & series_ok[:, None])

    # ---- time confound
    clustered = np.zeros(candidate.shape, dtype=bool)
    confounded = np.zeros(candidate.shape, dtype=bool)
    p_time = np.full(candidate.shape, np.nan)
    time_note, seq_share = _time_check(ds, da, f, sg, candidate, clustered, confounded, p_time, alpha)
    anomalous_seg = candidate & ~(confounded & ~clustered)

    kind = np.where(~exists, "", np.where(anomalous_seg, np.where(log_eff > 0, "slow", "fast"), "normal"))
    regime = np.where(np.isfinite(f["regime"]), f["regime"], -1).astype(int)
    _refit_clean(f, sg, anomalous_seg.any(axis=1), ser, budgets)
    anomalous = np.take_along_axis(np.pad(anomalous_seg, ((0, 0), (0, 1))), np.where(regime < 0, K, regime), axis=1)

    def to_budget_values(idx: np.ndarray) -> np.ndarray:
        ok = np.isfinite(idx)
        return np.where(ok, budgets.astype(float)[np.where(ok, idx, 0).astype(int)], np.nan)

    coords: dict[Any, Any] = {d: da[d] for d in sdims}
    coords[_series.BUDGET] = da[_series.BUDGET]
    for name, c in da.coords.items():
        if name not in coords and name not in OUTPUT_VARIABLES and set(c.dims) <= set(sdims):
            coords[name] = c.compute()  # small; the result holds no lazy data
    coords["segment"] = np.arange(K)
    SB = tuple(sdims) + (_series.BUDGET,)
    SS = tuple(sdims) + ("segment",)

    def sb(a: np.ndarray) -> np.ndarray:
        return a.reshape(sshape + (nb,))

    def ss(a: np.ndarray) -> np.ndarray:
        return a.reshape(sshape + (K,))

    def s1(a: np.ndarray) -> np.ndarray:
        return a.reshape(sshape)

    deg_names = np.array(["constant", "linear", "quadratic"])
    values = {
        "anomalous": sb(anomalous), "ratio": sb(f["ratio"]), "baseline": sb(f["baseline"]), "regime": sb(regime),
        "normal": sb(f["normal"] == 1),
        **{name: ss(to_budget_values(sg["seg_start" if name == "start" else "seg_end" if name == "end" else name]))
           for name in _rv.SEGMENT_BOUNDS},
        **{name: ss(sg[name]) for name in (*_rv.SEGMENT_EFFECT, "p", "reproducible", "step", "p_run", "p_scatter")},
        "q": ss(q), "kind": ss(kind.astype(str)), "segment_anomalous": ss(anomalous_seg), "confounded": ss(confounded),
        "clustered": ss(clustered), "p_time": ss(p_time), "n_cells": ss(np.nan_to_num(sg["n_cells"], nan=0).astype(int)),
        "noise": s1(ser["sigma"]), "penalty": s1(ser["penalty"]),
        "scaling": s1(deg_names[np.nan_to_num(ser["degree"], nan=1).astype(int)]), "detected": s1(ser["detected"] == 1),
        **{name: s1(ser[name]) for name in ("p_series", "mde", "mde_4", "scatter")}, "q_series": s1(q_series),
        "noisy": s1(ser["sigma"] > NOISY),
    }
    over = {_rv.BUDGET: SB, _rv.SEGMENT: SS, _rv.SERIES: tuple(sdims)}
    units = da.attrs.get("units", "")
    data_vars = {name: (over[v.over], values[name], v.attrs(var=var, units=units, noisy=NOISY))
                 for name, v in _rv.VARIABLES.items()}
    out = xr.Dataset(data_vars, coords=coords)
    out.attrs.update({
        "var": var, "method": method, "penalty": "auto" if penalty is None else float(penalty),
        "min_effect": float(min_effect), "alpha": float(alpha), "scaling": scaling, "normal": normal,
        "n_boot": int(n_boot), "seed": int(seed), "time_check": time_note, "sequential_share": seq_share,
        "n_trials": int(da.sizes[_series.TRIAL]), "n_perm": int(n_perm),
    })
    out.attrs["summary"] = "\n".join([summarize(out), *origin_lines(out)])
    return out


def summary(result: xr.Dataset) -> str:
    """The short human summary of a :func:`regimes` result (its ``summary`` attr, rebuilt if missing)."""
    return str(result.attrs.get("summary") or summarize(result))


# ----------------------------------------------------------------------------- helpers
def _validate(ds: Any, var: str, **opts: Any) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"regimes needs an xarray.Dataset, got {type(ds).__name__!r}")
    if opts["method"] not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {opts['method']!r}")
    if opts["scaling"] not in SCALINGS:
        raise InputError(f"scaling must be one of {list(SCALINGS)}, got {opts['scaling']!r}")
    if opts["normal"] not in NORMAL_RULES:
        raise InputError(f"normal must be one of {list(NORMAL_RULES)}, got {opts['normal']!r}")
    pen = opts["penalty"]
    if pen is not None and not (isinstance(pen, numbers.Real) and np.isfinite(pen) and pen > 0):
        raise InputError(f"penalty must be None or a positive number, got {pen!r}")
    me = opts["min_effect"]
    if not (isinstance(me, numbers.Real) and np.isfinite(me) and me >= 0):
        raise InputError(f"min_effect must be a number >= 0, got {me!r}")
    a = opts["alpha"]
    if not (isinstance(a, numbers.Real) and 0 < a < 1):
        raise InputError(f"alpha must be in (0, 1), got {a!r}")
    nbt = opts["n_boot"]
    if not (isinstance(nbt, numbers.Integral) and nbt >= 0):
        raise InputError(f"n_boot must be an integer >= 0, got {nbt!r}")
    npm = opts["n_perm"]
    if not (isinstance(npm, numbers.Integral) and 20 <= npm <= MAX_PERM):
        raise InputError(f"n_perm must be an integer in [20, {MAX_PERM}], got {npm!r}")
    check_seed(opts["seed"], "regimes")
    if var not in ds.data_vars:
        raise InputError(f"variable {var!r} not in the dataset; variables: {sorted(map(str, ds.data_vars))}")
    da = ds[var]
    if _series.BUDGET not in da.dims:
        raise InputError(f"variable {var!r} has no 'budget' dim; its dims are {list(map(str, da.dims))}")
    clash = [d for d in da.dims if d in OUTPUT_VARIABLES or d == "segment"]
    if clash:
        raise InputError(f"dim {clash[0]!r} of {var!r} has the name of a result variable; rename it (e.g. ds.rename)")
    if da.sizes[_series.BUDGET] < 3:
        raise InputError(f"need at least 3 budgets to find regimes, {var!r} has {da.sizes[_series.BUDGET]}")
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.timedelta64):
        raise InputError(f"variable {var!r} must be numeric, got dtype {str(da.dtype)!r}")
    if _series.BUDGET not in da.coords or not np.issubdtype(da[_series.BUDGET].dtype, np.number):
        raise InputError(f"budget coordinate must hold distinct numbers, got {np.asarray(da[_series.BUDGET]).tolist()!r}")
    da = check_axes(ds, "regimes", [var])[var]
    finite = da.notnull() & np.isfinite(da)
    nonpos = (da <= 0) & finite
    kept = da.where(finite)
    if _series.is_lazy(da):
        import dask

        any_finite, any_nonpos, low, high = dask.compute(finite.any().data, nonpos.any().data, kept.min().data,
                                                         kept.max().data)
    else:
        any_finite, any_nonpos, low, high = finite.any().values, nonpos.any().values, kept.min().values, kept.max().values
    if not bool(any_finite):
        what = "all NaN" if not bool(np.isinf(da).any()) else "NaN or infinite everywhere"
        raise InputError(f"variable {var!r} is {what}: nothing to analyse")
    if bool(any_nonpos):
        raise InputError(f"variable {var!r} has values <= 0; regimes works on ratios and needs positive values")
    if not (_MIN_VALUE <= float(low) and float(high) <= _MAX_VALUE):
        raise InputError(f"variable {var!r} has values from {float(low)!r} to {float(high)!r}; its fits need values "
                         f"between {_MIN_VALUE:g} and {_MAX_VALUE:g} (their squares overflow or underflow): rescale it")
    return da.astype(float) if da.dtype != float else da


def _refit_clean(f: dict[str, np.ndarray], sg: dict[str, np.ndarray], has_regime: np.ndarray,
                 ser: dict[str, np.ndarray], budgets: np.ndarray) -> None:
    """Series with no anomalous segment are normal everywhere: their baseline is refitted to every budget.

    The detector's baseline is anchored on the level group it took for normal; where no segment turned
    out anomalous, that anchor was arbitrary (a smooth curve cut into pieces), so the reported baseline,
    ratio and normal flag come from a robust fit to the whole series instead, and each segment's effect
    (and its CI) moves with the baseline: it is rescaled by the baseline's change over the segment's
    budgets (geometric mean), so effect and ratio describe one curve. ``f`` and ``sg`` are updated in place.
    """
    rows = np.flatnonzero(~has_regime & np.isfinite(f["baseline"]).any(axis=1))
    if rows.size == 0:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.log(f["ratio"][rows]) + np.log(f["baseline"][rows])
    x = budgets.astype(float) / float(np.max(budgets))
    deg = _detect.reference_degree(np.nan_to_num(ser["degree"][rows], nan=1).astype(int))
    floor = np.maximum(np.nan_to_num(ser["scatter"][rows], nan=0.0), _st.SIGMA_FLOOR)
    base = _detect._fit_by_degree(m, x, deg, floor, loss="huber")
    keep = np.isfinite(f["baseline"][rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(keep, np.log(f["baseline"][rows]) - np.log(base), np.nan)  # old over new, log
    idx = np.arange(budgets.size)
    for k in range(sg["effect"].shape[1]):
        lo, hi = sg["seg_start"][rows, k, None], sg["seg_end"][rows, k, None]
        inside = (idx >= lo) & (idx <= hi) & np.isfinite(shift)
        n = inside.sum(axis=1)
        move = np.exp(np.where(inside, shift, 0.0).sum(axis=1) / np.maximum(n, 1))
        for name in _rv.SEGMENT_EFFECT:
            sg[name][rows, k] = np.where(n > 0, sg[name][rows, k] * move, sg[name][rows, k])
    f["baseline"][rows] = np.where(keep, base, f["baseline"][rows])
    f["ratio"][rows] = np.where(keep, np.exp(m - np.log(base)), f["ratio"][rows])
    f["normal"][rows] = np.where(keep, 1.0, f["normal"][rows])


def _degrees(ds: xr.Dataset, da: xr.DataArray, scaling: str) -> xr.DataArray:
    sdims = _series.series_dims(da)
    shape = tuple(da.sizes[d] for d in sdims)
    if scaling != "auto":
        return xr.DataArray(np.full(shape, DEGREE[scaling], dtype=np.int64), dims=sdims)
    cache = da.coords.get("cache")
    if cache is None or not set(cache.dims) <= set(sdims) or cache.dtype != bool:
        return xr.DataArray(np.full(shape, -1, dtype=np.int64), dims=sdims)
    deg = xr.where(cache, 1, 2).astype(np.int64)
    return deg.broadcast_like(xr.DataArray(np.zeros(shape), dims=sdims, coords={d: da[d] for d in sdims})).transpose(*sdims)


def _time_check(ds, da, f, sg, candidate, clustered, confounded, p_time, alpha) -> tuple[str, float]:
    """Fill the time-confound arrays in place; return (note, share of sequential series)."""
    have = [n for n in ("started_at", "order") if n in ds.variables]
    if not have:
        return "skipped: the dataset has neither 'order' nor 'started_at'", float("nan")

    def load(name: str) -> np.ndarray | None:
        v = ds[name]
        if not set(v.dims) <= set(da.dims):
            return None
        v = v.broadcast_like(da).reindex_like(da)
        return np.asarray(v.transpose(*da.dims).values)

    key = _cf.time_key(load("order") if "order" in have else None,
                       load("started_at") if "started_at" in have else None)
    if key is None:
        return "skipped: 'order' / 'started_at' hold no usable values", float("nan")
    tkey, used = key
    nb, T = da.sizes[_series.BUDGET], da.sizes[_series.TRIAL]
    tkey = tkey.reshape(-1, nb, T)
    if not candidate.any():
        pos_only = _cf.prepare(tkey, np.zeros_like(tkey), np.ones(tkey.shape, dtype=bool)).pos
        return f"{used}: no anomalous segment to check", _cf.sequential_share(pos_only)
    Y = np.asarray(da.values, dtype=float).reshape(-1, nb, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        E = np.log(Y) - np.log(f["baseline"])[:, :, None]
    normal_cells = np.broadcast_to((f["normal"] == 1)[:, :, None], E.shape) & np.isfinite(E)
    tc = _cf.prepare(tkey, E, normal_cells)
    for s, j in zip(*np.nonzero(candidate)):
        rows = np.arange(int(sg["seg_start"][s, j]), int(sg["seg_end"][s, j]) + 1)
        c, p, survives = _cf.check_segment(tc, E, normal_cells, int(s), rows, float(np.log(sg["effect"][s, j])), alpha=alpha)
        clustered[s, j] = c
        p_time[s, j] = p
        confounded[s, j] = c or not survives
    return f"{used}: {int(candidate.sum())} segment(s) checked", _cf.sequential_share(tc.pos)
