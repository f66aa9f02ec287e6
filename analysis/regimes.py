"""Discrete latency regimes along the budget axis: :func:`regimes`.

The procedure is described in docs/methods.md ("Regimes along the budget axis")
and implemented in :mod:`analysis.detect.inference`. In short, per series (every dim
except ``budget`` and ``trial``): fit the expected scaling robustly, scan every
budget interval for a step against any smooth curve, test the strongest against
the same scan on null draws from the series' own runs (with a cell level whose
scale is pooled with the other series of its origin), step down to the next,
correct across the series (Benjamini-Hochberg, then Benjamini-Bogomolov within
the selected series), and check each regime against execution time.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats as _sps

from analysis.core import series as _series
from analysis.core import stats as _st
from analysis.core.common import check_axes, check_seed
from analysis.core.origins import origin_groups, origin_lines
from analysis.core.truncation import TIMING as TRUNCATED_TIMING
from analysis.core.truncation import truncated_counts, truncation_lines, without_truncated
from analysis.detect import confound as _cf
from analysis.detect import engine as _detect
from analysis.detect import inference as _inf
from analysis.detect import replication as _rep
from analysis.detect import segments as _sg
from analysis.detect import variables as _rv
from analysis.detect.baseline import DEGREE, SCALINGS
from analysis.detect.summary import summarize
from analysis.errors import InputError

__all__ = ["METHODS", "NORMAL_RULES", "SCALINGS", "regimes", "summary"]

#: Range of values the fits take (squares of smaller or larger values underflow or overflow a float64).
_MIN_VALUE, _MAX_VALUE = 1e-150, 1e150

METHODS = _sg.METHODS
NORMAL_RULES = _sg.NORMAL_RULES
#: Names of the result's variables (a series dim may not take one of them, nor "segment").
OUTPUT_VARIABLES: tuple[str, ...] = tuple(_rv.VARIABLES)
VARIABLES = _rv.VARIABLES  # the result's variables, as every analysis declares them (OUTPUT_VARIABLES: names)
#: The direction of a regime for each ``normal`` rule: the normal level is the lowest (regimes are slowdowns), the
#: highest (regimes are drops) or either (``majority``: two-sided).
SIGNS: dict[str, int] = {"lowest": 1, "highest": -1, "majority": 0}
#: Per-run noise (sd of log values) above which a series is flagged as noisy, with the likely cause.
NOISY = 0.1
#: Most permutations a series may ask for (memory and time grow with it).
MAX_PERM = 100_000
#: Most budgets of one analysis: the scan covers every interval of budgets (their number grows as the square):
#: 600 budgets take about a minute and 2.3 GB a series on one core (docs/performance.md).
MAX_BUDGETS = 600


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
    normal
        Which side of the smooth curve is normal, hence the direction of a
        regime and of the test: ``lowest`` (default: regimes are slowdowns,
        a one-sided scan), ``highest`` (regimes are drops, e.g. a collapsing
        speedup) or ``majority`` (either direction, two-sided).
    method, penalty, n_boot
        Deprecated and ignored (a ``FutureWarning`` when set): the options of
        the changepoint search that the scan replaced; every interval is tested.
    min_effect
        Smallest relative effect that counts: a regime's fitted step must be
        at least ``1 + min_effect`` or at most ``1 / (1 + min_effect)``.
    alpha
        False discovery rate of the series declared to hold a regime
        (Benjamini-Hochberg on ``p_series``), and the level of the time-term test.
    scaling
        Expected scaling of ``var`` with budget: ``auto`` (cache on: linear,
        cache off: quadratic, no ``cache`` coordinate: chosen by fit),
        ``constant``, ``linear`` or ``quadratic``.
    seed
        Seeds every resampling (results do not depend on dask chunking).
    n_perm
        Null draws per batch of the sequential (Besag-Clifford) p-values, and
        for the power simulation; a p-value draws up to ``10 * n_perm`` (more
        when the correction across many series needs smaller p-values).

    Returns
    -------
    xarray.Dataset
        Dims: the series dims of ``ds[var]``, ``budget``, ``segment``
        (padded across series; unused entries are NaN / "" / False) and
        ``power_ratio``.

        Per series and budget:

        - ``anomalous`` (bool): the budget lies in an anomalous regime.
        - ``ratio``: observed / baseline (median over trials).
        - ``baseline``: the expected-scaling fit to the budgets outside the
          regimes (units of ``var``).
        - ``regime`` (int): segment id, 0.. along the budget axis (-1: no data).
        - ``normal`` (bool): the budget has data and lies in no regime.

        Per series and segment (the rejected intervals of the scan and the
        stretches between them):

        - ``start``, ``end``: first and last budget of the segment.
        - ``start_lo``, ``start_hi``, ``end_lo``, ``end_hi``: 95 % confidence
          sets of a regime's start and end (every boundary whose step fits the
          runs nearly as well: profile likelihood, chi-square 2 df; NaN for
          the normal stretches).
        - ``effect``: a regime's fitted step against the smooth curve (the
          steps of a series' regimes fitted jointly), or, for any other
          segment, the geometric mean of its ratio to the baseline;
          ``effect_lo``, ``effect_hi``: its 95 % CI (t on ``df`` degrees of
          freedom with the standard error from ``cell_sd``).
        - ``p``: step-down adjusted p-value of the regime within its series
          (NaN: not tested, a normal stretch); ``q``: ``p m / R`` (``m``
          series tested, ``R`` selected by Benjamini-Hochberg): the regime
          counts where ``q <= alpha`` (Benjamini-Bogomolov).
        - ``reproducible``: share of trials in which the segment's contrast
          has its sign and at least half of ``min_effect`` (NaN below 3
          trials; descriptive, not a gate).
        - ``kind`` (str): ``normal``, ``slow`` or ``fast``.
        - ``segment_anomalous`` (bool): tested, ``q <= alpha``, ``|log
          effect| >= log(1 + min_effect)``, not ``confounded`` and not
          ``process_local``.
        - ``confounded`` (bool): a segment that passed the test and the
          effect threshold, but whose runs cluster in execution time (budget
          and time cannot be separated) or whose step a time term explains:
          not a regime until re-measured in random order.
        - ``clustered`` (bool): its runs cluster in execution time.
        - ``p_time``: p-value of the budget term in the model with a time term.
        - ``n_cells``: runs with data in the segment.
        - ``p_replicate``: intersection-union p-value of the segment's step in
          every process (the largest of the per-process one-sided t tests,
          :mod:`analysis.detect.replication`; NaN: not checked: under 2
          processes, or not a candidate regime).
        - ``process_local`` (bool): a step that passed the test, the effect
          threshold and the time check but does not replicate in every
          process: not a regime; ``local_process`` (the process where its step
          is largest; -1: not checked), ``local_effect`` (its step there) and
          ``other_effect`` (the step in the other processes' runs together).

        Per series: ``noise`` (per-run noise, log units), ``scaling`` (str:
        constant, linear or quadratic), ``p_series`` (the scan p-value of "a
        step anywhere"), ``q_series`` (its Benjamini-Hochberg q-value across
        the series), ``mde`` and ``mde_4`` (the ratio of a step over one and
        over four interior budgets found with 80 % power, simulated through
        the whole decision rule at the level a regime alone among the
        dataset's series faces; inf: not even x1000, or a series run in
        budget order, where no regime can be reported; ``mde_4`` NaN for a
        series of fewer than 12 budgets), ``scatter`` (the
        series' own budget-to-budget scatter, log units, after the host
        state was removed), ``scatter_unadjusted`` (the same of the runs as
        measured), ``host_beta`` (the multiple of the host state removed
        from its runs before the test: random-order sweeps with execution
        times; NaN: none), ``cell_sd`` (the noise of a cell mean the test
        uses: ``scatter`` moderated towards the origin's, never below it
        nor below ``stated_sd``), ``df`` (its degrees of freedom),
        ``stated_sd`` (the noise of a cell mean the file itself states: a
        harness import's per-value run spread, ``request_latency`` std over
        ``n_runs`` runs; NaN: none) and ``noisy`` (bool: per-run noise above
        :data:`NOISY`), ``n_processes`` (the processes, passes of
        ``--processes``, with runs; 0: unknown).

        Per series and ``power_ratio`` (the ratios of
        :data:`analysis.detect.inference.POWER_RATIOS`): ``power``, the share of
        one-budget interior steps of that ratio the rule finds.

        Attrs: ``var``, ``method`` ("scan"), ``min_effect``, ``alpha``,
        ``scaling``, ``seed``, ``n_perm``, ``n_trials`` (the length of the
        ``trial`` dim), ``trials_min`` / ``trials_max`` (the fewest and most
        trials a series with data has), ``series_measured`` (series with a value
        at some budget), ``series_tested``,
        ``series_selected``, ``time_check`` (what the time check used or why
        it was skipped), ``sequential_share``, ``n_truncated`` (runs of
        status truncated left out: they stopped before their budget, their
        times are for fewer tokens; 0 when ``var`` is not a time) and
        ``summary`` (a few lines for humans; also :func:`summary`).

    Raises
    ------
    InputError
        ``var`` missing, no ``budget`` dim, fewer than 3 budgets or more
        than :data:`MAX_BUDGETS`, no finite value, a value <= 0, or a bad
        option.
    """
    if isinstance(ds, xr.DataArray):  # a bare array: analyse it under the name ``var``
        ds = ds.to_dataset(name=var)
    da = _validate(ds, var, method=method, penalty=penalty, min_effect=min_effect, alpha=alpha,
                   scaling=scaling, n_boot=n_boot, seed=seed, normal=normal, n_perm=n_perm)
    _deprecated(method=method, penalty=penalty, n_boot=n_boot)
    raw = _series.as_series_array(da)
    sdims = _series.series_dims(raw)
    budgets = np.asarray(raw[_series.BUDGET].values)
    degree = _degrees(ds, raw, scaling)
    key = _time_key(ds, raw)  # every run's execution-time key: the host state and the time check use it
    da, host_beta = _host_adjusted(raw, degree, budgets, key)
    scan = _scan_series(ds, var, raw, da, degree, host_beta, sdims, budgets, min_effect=min_effect, seed=seed,
                        n_perm=n_perm, alpha=alpha, sign=SIGNS[normal])
    f, sg, ser, power = scan["f"], scan["sg"], scan["ser"], scan["power"]
    sel = _select(ser, sg, alpha=alpha, min_effect=min_effect, sign=SIGNS[normal])
    sg = sel["sg"]
    candidate = sel["candidate"]
    clustered = np.zeros(candidate.shape, dtype=bool)
    confounded = np.zeros(candidate.shape, dtype=bool)
    p_time = np.full(candidate.shape, np.nan)
    # the time check models execution time itself: it sees the runs as measured
    time_note, seq_share, unreportable = _time_check(ds, raw, key, f, sg, candidate, clustered, confounded,
                                                     p_time, alpha)
    # power is that of what can be reported: in a series run in budget order every step is confounded (mde inf,
    # nothing is found at any ratio); in one whose cells each ran as one block, every one-budget step is
    # clustered in time (mde inf; a wider step can still be told from time: mde_4 stays)
    ordered, blocked = unreportable
    ser["mde"] = np.where(ordered | blocked, np.inf, ser["mde"])
    ser["mde_4"] = np.where(ordered, np.inf, ser["mde_4"])
    power[ordered | blocked] = np.where(np.isfinite(power[ordered | blocked]), 0.0, np.nan)
    # a step that execution time explains, or whose runs cluster in time (budget and time inseparable), is not
    # a budget regime: it stays a candidate, flagged ``confounded``, and the summary says so
    # a step confined to one process (pass of --processes) is process-local, not a regime
    rep = _replicated(ds, da, f, sg, candidate & ~confounded, alpha=alpha, min_effect=min_effect,
                      sign=SIGNS[normal])
    anomalous_seg = candidate & ~confounded & ~rep["process_local"]
    kind = np.where(~sel["exists"], "", np.where(anomalous_seg, np.where(sel["log_eff"] > 0, "slow", "fast"),
                                                 "normal"))
    regime = np.where(np.isfinite(f["regime"]), f["regime"], -1).astype(int)
    _refit_clean(f, anomalous_seg.any(axis=1), ser, budgets)
    _stretch_effects(f, sg, anomalous_seg, ser)
    K = anomalous_seg.shape[1]
    anomalous = np.take_along_axis(np.pad(anomalous_seg, ((0, 0), (0, 1))), np.where(regime < 0, K, regime), axis=1)
    f["normal"] = np.where(np.isfinite(f["baseline"]), ~anomalous, False)
    flags = {"anomalous": anomalous, "regime": regime, "q": sel["q"], "kind": kind,
             "segment_anomalous": anomalous_seg, "confounded": confounded, "clustered": clustered, "p_time": p_time,
             "q_series": sel["q_series"], "host_beta": host_beta, **rep}
    out = _result(raw, var, f, sg, ser, power, scan, flags)
    out.attrs.update({
        "var": var, "method": "scan", "min_effect": float(min_effect), "alpha": float(alpha), "scaling": scaling,
        "seed": int(seed), "time_check": time_note, "sequential_share": seq_share,
        "n_trials": int(raw.sizes[_series.TRIAL]), **_trial_counts(raw), "n_perm": int(n_perm),
        "series_selected": sel["R"],
        "series_tested": sel["m_tested"],
        "series_measured": int(np.isfinite(np.asarray(raw.values, dtype=float)).reshape(len(ser["p_series"]), -1)
                               .any(axis=1).sum()),
    })
    out.attrs["n_truncated"] = truncated_counts(ds)[0] if var in TRUNCATED_TIMING else 0
    out.attrs["summary"] = "\n".join([summarize(out), *truncation_lines(ds, var), *origin_lines(out)])
    return out


def _trial_counts(da: xr.DataArray) -> dict[str, int]:
    """``trials_min`` / ``trials_max``: over the series with data, the fewest and most trials a series has (its
    largest number of runs with a value in one cell); a combined file's trial axis is that of its longest."""
    per_series = da.notnull().sum(_series.TRIAL).max(_series.BUDGET)
    counts = np.asarray(per_series.values).ravel()
    counts = counts[counts > 0]
    n = int(da.sizes[_series.TRIAL])
    return {"trials_min": int(counts.min()) if counts.size else n, "trials_max": int(counts.max()) if counts.size else n}


def _scan_series(ds: xr.Dataset, var: str, raw: xr.DataArray, da: xr.DataArray, degree: xr.DataArray,
                 host_beta: np.ndarray, sdims: list[str], budgets: np.ndarray, *, min_effect: float, seed: int,
                 n_perm: int, alpha: float, sign: int) -> dict[str, Any]:
    """The step-down scan of every series (:func:`analysis.detect.engine.analyse_block`) with what its origin lends
    it, as flat arrays: ``f`` (per budget), ``sg`` (per segment), ``ser`` (per series), ``power``; and the
    series' own scales ``scatter`` / ``scatter_raw`` (after / before the host state) and ``stated``."""
    core = [_series.BUDGET, _series.TRIAL]
    nb = budgets.size
    own = _series.apply_named(_detect.scale_block, [da, degree], [core, []], outputs=_detect.SCALE_OUTPUTS,
                              kwargs={"budgets": budgets}).compute()
    # the series' own budget-level scale (every budget), after and before the host state was removed
    scatter = np.sqrt(np.asarray(own["s2"].transpose(*sdims).values, dtype=float)).reshape(-1)
    scatter_raw = scatter
    if np.isfinite(host_beta).any():
        own_raw = _series.apply_named(_detect.scale_block, [raw, degree], [core, []],
                                      outputs=_detect.SCALE_OUTPUTS, kwargs={"budgets": budgets}).compute()
        scatter_raw = np.sqrt(np.asarray(own_raw["s2"].transpose(*sdims).values, dtype=float)).reshape(-1)
    prior_s2, prior_df, n_origin = _origin_prior(own, sdims)
    stated = _stated_sd(ds, var, sdims)
    res = _series.apply_named(
        _detect.analyse_block, [da, degree, _series.series_ids(da), prior_s2, prior_df, n_origin, stated],
        [core, [], [], [], [], [], []],
        outputs=_detect.OUTPUTS, sizes={_detect.SEGMENT_DIM: nb, _detect.POWER_DIM: len(_inf.POWER_RATIOS)},
        kwargs={"budgets": budgets, "min_effect": float(min_effect), "seed": int(seed), "n_perm": int(n_perm),
                "alpha": float(alpha), "sign": sign},
    ).compute()

    def flat(names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Outputs as arrays ``(series, *core)`` in C order over the series dims."""
        out = {}
        for name in names:
            v = res[name].transpose(*sdims, *_detect.OUTPUTS[name])
            out[name] = np.asarray(v.values, dtype=float).reshape((-1,) + v.shape[len(sdims):])
        return out

    f = flat(_detect.FIELDS_BUDGET)
    adjusted = np.isfinite(host_beta) & (host_beta > 0)
    if adjusted.any():  # the ratio is that of the medians as measured (to the baseline of the host-free runs;
        # a series with no regime is refitted to them below, and its stretches describe them)
        Y = np.asarray(raw.values, dtype=float).reshape(-1, nb, raw.sizes[_series.TRIAL])[adjusted]
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.where(Y > 0, Y, np.nan), axis=-1)
        f["ratio"][adjusted] = med / f["baseline"][adjusted]
    stated_flat = np.asarray(stated.broadcast_like(raw.isel({_series.BUDGET: 0, _series.TRIAL: 0}, drop=True))
                             .transpose(*sdims).values, dtype=float).reshape(-1)
    return {"f": f, "sg": flat(_detect.FIELDS_SEGMENT), "ser": flat(_detect.FIELDS_SERIES),
            "power": flat(("power",))["power"], "scatter": scatter, "scatter_raw": scatter_raw,
            "stated": stated_flat}


def _select(ser: dict[str, np.ndarray], sg: dict[str, np.ndarray], *, alpha: float, min_effect: float,
            sign: int) -> dict[str, Any]:
    """Across series: Benjamini-Hochberg on the series' scan p-values (``q_series``); within the ``R`` selected
    series of ``m_tested``, the step-down at level ``alpha R / m`` (Benjamini-Bogomolov), reported as
    ``q = p m / R``. A tested segment is a ``candidate`` when ``q <= alpha`` and its step is at least
    ``min_effect`` in the scan's direction. ``sg`` comes back cut to the most segments a series has (``K``)."""
    n_seg = np.nan_to_num(ser["n_segments"], nan=0).astype(int)
    K = max(int(n_seg.max()) if n_seg.size else 1, 1)
    sg = {k: v[:, :K] for k, v in sg.items()}
    exists = np.arange(K)[None, :] < n_seg[:, None]
    q_series = _st.bh(ser["p_series"])
    m_tested = int(np.isfinite(ser["p_series"]).sum())
    R = int(np.sum(q_series <= alpha))
    tested = exists & (sg["tested"] == 1)
    with np.errstate(invalid="ignore"):
        q = np.where(tested, np.minimum(1.0, sg["p"] * m_tested / max(R, 1)), np.nan)
    thr = float(np.log1p(min_effect))
    log_eff = np.log(sg["effect"])
    with np.errstate(invalid="ignore"):
        candidate = tested & (q <= alpha) & (np.abs(log_eff) >= thr)
        if sign:  # a one-sided scan: only steps in its direction (the joint fit may turn one around)
            candidate &= np.sign(log_eff) == sign
    return {"sg": sg, "exists": exists, "q_series": q_series, "m_tested": m_tested, "R": R, "q": q,
            "log_eff": log_eff, "candidate": candidate}


def _result(da: xr.DataArray, var: str, f: dict[str, np.ndarray], sg: dict[str, np.ndarray],
            ser: dict[str, np.ndarray], power: np.ndarray, scan: dict[str, Any],
            flags: dict[str, np.ndarray]) -> xr.Dataset:
    """The result Dataset (every variable of :data:`analysis.detect.variables.VARIABLES`) from the flat arrays."""
    sdims = _series.series_dims(da)
    sshape = tuple(da.sizes[d] for d in sdims)
    budgets = np.asarray(da[_series.BUDGET].values)
    nb = budgets.size
    K = flags["segment_anomalous"].shape[1]

    def to_budget_values(idx: np.ndarray) -> np.ndarray:
        ok = np.isfinite(idx)
        return np.where(ok, budgets.astype(float)[np.where(ok, idx, 0).astype(int)], np.nan)

    coords: dict[Any, Any] = {d: da[d] for d in sdims}
    coords[_series.BUDGET] = da[_series.BUDGET]
    for name, c in da.coords.items():
        if name not in coords and name not in OUTPUT_VARIABLES and set(c.dims) <= set(sdims):
            coords[name] = c.compute()  # small; the result holds no lazy data
    coords["segment"] = np.arange(K)
    coords[_rv.POWER] = np.asarray(_inf.POWER_RATIOS)
    shapes = {_rv.BUDGET: (nb,), _rv.SEGMENT: (K,), _rv.SERIES: (), _rv.POWER: (len(_inf.POWER_RATIOS),)}
    deg_names = np.array(["constant", "linear", "quadratic"])
    values = {
        "ratio": f["ratio"], "baseline": f["baseline"], "normal": f["normal"] == 1,
        **{name: to_budget_values(sg["seg_start" if name == "start" else "seg_end" if name == "end" else name])
           for name in _rv.SEGMENT_BOUNDS},
        **{name: sg[name] for name in (*_rv.SEGMENT_EFFECT, "p", "reproducible")},
        **{name: flags[name] for name in ("anomalous", "regime", "q", "segment_anomalous", "confounded",
                                          "clustered", "p_time", "q_series", "host_beta", "n_processes",
                                          "p_replicate", "process_local", "local_process", "local_effect",
                                          "other_effect")},
        "kind": flags["kind"].astype(str), "n_cells": np.nan_to_num(sg["n_cells"], nan=0).astype(int),
        "noise": ser["sigma"], "scaling": deg_names[np.nan_to_num(ser["degree"], nan=1).astype(int)],
        **{name: ser[name] for name in ("p_series", "mde", "mde_4", "df")},
        "scatter": scan["scatter"], "cell_sd": ser["scale"], "stated_sd": scan["stated"],
        "scatter_unadjusted": scan["scatter_raw"], "power": power, "noisy": ser["sigma"] > NOISY,
    }
    over = {_rv.BUDGET: (*sdims, _series.BUDGET), _rv.SEGMENT: (*sdims, "segment"), _rv.SERIES: tuple(sdims),
            _rv.POWER: (*sdims, _rv.POWER)}
    units = da.attrs.get("units", "")
    data_vars = {name: (over[v.over], np.asarray(values[name]).reshape(sshape + shapes[v.over]),
                        v.attrs(var=var, units=units, noisy=NOISY))
                 for name, v in _rv.VARIABLES.items()}
    return xr.Dataset(data_vars, coords=coords)


def summary(result: xr.Dataset) -> str:
    """The short human summary of a :func:`regimes` result (its ``summary`` attr, rebuilt if missing)."""
    return str(result.attrs.get("summary") or summarize(result))


# ----------------------------------------------------------------------------- helpers
#: Defaults of the options that the scan made obsolete (a value other than these is warned about).
_OBSOLETE = {"method": "pelt", "penalty": None, "n_boot": 200}


def _deprecated(**given: Any) -> None:
    """Warn about options the scan no longer uses (kept for one release so that scripts keep running)."""
    for name, value in given.items():
        if value != _OBSOLETE[name]:
            warnings.warn(f"regimes(): {name}={value!r} is deprecated and ignored: every interval is tested by the "
                          "step-down scan (docs/methods.md); the option will be removed", FutureWarning, stacklevel=3)


def _origin_prior(own: xr.Dataset, sdims: list[str]) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """Per series, its origin's empirical-Bayes prior of the budget-level variance (:func:`analysis.detect.inference.prior`)
    and its origin's number of tested series: one origin per label of the ``origin`` dim, or the whole dataset."""
    s2 = own["s2"].transpose(*sdims)
    df = own["df"].transpose(*sdims)
    df = df.where(df >= _inf.MIN_OWN_DF, 0.0)  # too short to say anything of the origin's noise either
    ps2 = np.full(s2.shape, np.nan)
    pdf = np.zeros(s2.shape)
    count = np.zeros(s2.shape)
    tested = np.isfinite(s2.values)
    group = origin_groups(s2, sdims)
    if group is not None:
        group = group.reshape(s2.shape)
        for k in np.unique(group):
            idx = group == k
            v, d = _inf.prior(np.asarray(s2.values[idx]).ravel(), np.asarray(df.values[idx]).ravel())
            ps2[idx], pdf[idx], count[idx] = v, d, tested[idx].sum()
    else:
        v, d = _inf.prior(np.asarray(s2.values).ravel(), np.asarray(df.values).ravel())
        ps2[...], pdf[...], count[...] = v, d, tested.sum()
    return tuple(xr.DataArray(a, dims=sdims) for a in (ps2, pdf, count))  # type: ignore[return-value]


#: Dim and labels of the per-cell summaries an imported harness file keeps (:mod:`collector.dataset.study_import`).
_STAT_DIM, _STAT_MEAN, _STAT_SD = "stat", "mean", "std"


def _stated_sd(ds: xr.Dataset, var: str, sdims: list[str]) -> xr.DataArray:
    """Per series, the noise of a cell mean that the file itself states (log units; NaN: none).

    A harness import keeps, per cell, the mean and the standard deviation of the runs each value averages
    (``request_latency`` along ``stat``) and their number (``n_runs``). A cell's value is a mean of ``n`` runs
    with coefficient of variation ``cv = std / mean``: the sd of its log is about ``sqrt(log(1 + cv^2) / n)``
    (a log-normal run distribution). A series states the median of its cells'. Only for ``latency``: the
    spread is that of the latency.
    """
    none = xr.DataArray(np.nan)
    if var != "latency" or "request_latency" not in ds or "n_runs" not in ds:
        return none
    rl = ds["request_latency"]
    if _STAT_DIM not in rl.dims or _STAT_DIM not in rl.coords:
        return none
    labels = [str(v) for v in rl[_STAT_DIM].values]
    if _STAT_MEAN not in labels or _STAT_SD not in labels:
        return none
    mean = rl.isel({_STAT_DIM: labels.index(_STAT_MEAN)}, drop=True)
    sd = rl.isel({_STAT_DIM: labels.index(_STAT_SD)}, drop=True)
    n = ds["n_runs"].where(ds["n_runs"] >= 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cell = np.sqrt(np.log1p((sd / mean.where(mean > 0)) ** 2) / n)
    cell = cell.where(np.isfinite(cell))
    other = [d for d in cell.dims if d not in sdims]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return cell.median(other) if other else cell


def _validate(ds: Any, var: str, **opts: Any) -> xr.DataArray:
    """``ds[var]`` as float after every option, the variable's axes and its values are checked (InputError)."""
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"regimes needs an xarray.Dataset, got {type(ds).__name__!r}")
    _check_options(opts)
    da = _check_variable(ds, var)
    _check_values(da, var)
    return da.astype(float) if da.dtype != float else da


def _check_options(opts: dict[str, Any]) -> None:
    """Every option of :func:`regimes` in its domain."""
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


def _check_variable(ds: xr.Dataset, var: str) -> xr.DataArray:
    """``ds[var]``: present, numeric, with at least 3 numeric budgets and no dim named like a result variable."""
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
    if da.sizes[_series.BUDGET] > MAX_BUDGETS:
        raise InputError(
            f"{var!r} has {da.sizes[_series.BUDGET]} budgets; regimes scans every interval of budgets and takes at "
            f"most {MAX_BUDGETS} (about a minute and 2.3 GB a series at {MAX_BUDGETS}): analyse a coarser grid "
            f"(ds.isel(budget=slice(None, None, {-(-da.sizes[_series.BUDGET] // MAX_BUDGETS)}))) or ranges of budgets "
            "one at a time (ds.sel(budget=slice(lo, hi)))")
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.timedelta64):
        raise InputError(f"variable {var!r} must be numeric, got dtype {str(da.dtype)!r}")
    if _series.BUDGET not in da.coords or not np.issubdtype(da[_series.BUDGET].dtype, np.number):
        raise InputError(f"budget coordinate must hold distinct numbers, got {np.asarray(da[_series.BUDGET]).tolist()!r}")
    return without_truncated(check_axes(ds, "regimes", [var]))[var]


def _check_values(da: xr.DataArray, var: str) -> None:
    """Some finite value, none <= 0, all within the range the fits can square."""
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


def _stretch_effects(f: dict[str, np.ndarray], sg: dict[str, np.ndarray], regime_seg: np.ndarray,
                     ser: dict[str, np.ndarray], level: float = 0.95) -> None:
    """Every segment that is not a regime is described by the ratio to the reported baseline: its effect is the
    geometric mean of the ratio over its budgets, with a t interval (``cell_sd`` on ``df``). ``sg`` is updated
    in place; a regime keeps its fitted step and CI."""
    nb = f["ratio"].shape[1]
    idx = np.arange(nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(f["ratio"])
    df = np.nan_to_num(ser["df"], nan=0.0)
    t = np.where(df > 0, _sps.t.ppf(0.5 + level / 2, np.maximum(df, 1.0)), np.nan)
    for k in range(sg["effect"].shape[1]):
        lo, hi = sg["seg_start"][:, k, None], sg["seg_end"][:, k, None]
        inside = (idx >= lo) & (idx <= hi) & np.isfinite(lr)
        n = inside.sum(axis=1)
        redo = ~regime_seg[:, k] & (n > 0)
        est = np.where(inside, lr, 0.0).sum(axis=1) / np.maximum(n, 1)
        hw = t * ser["scale"] / np.sqrt(np.maximum(n, 1))
        sg["effect"][:, k] = np.where(redo, np.exp(est), sg["effect"][:, k])
        sg["effect_lo"][:, k] = np.where(redo, np.exp(est - hw), sg["effect_lo"][:, k])
        sg["effect_hi"][:, k] = np.where(redo, np.exp(est + hw), sg["effect_hi"][:, k])


def _refit_clean(f: dict[str, np.ndarray], has_regime: np.ndarray, ser: dict[str, np.ndarray],
                 budgets: np.ndarray) -> None:
    """Series with no anomalous segment are normal everywhere: their baseline is refitted to every budget.

    The detector's baseline is anchored on the level group it took for normal; where no segment turned
    out anomalous, that anchor was arbitrary (a smooth curve cut into pieces), so the reported baseline,
    ratio and normal flag come from a robust fit to the whole series instead (:func:`_stretch_effects` then
    describes its segments on that curve). ``f`` is updated in place.
    """
    rows = np.flatnonzero(~has_regime & np.isfinite(f["baseline"]).any(axis=1))
    if rows.size == 0:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.log(f["ratio"][rows]) + np.log(f["baseline"][rows])
    x = budgets.astype(float) / _detect.BUDGET_UNIT
    deg = _detect.reference_degree(np.nan_to_num(ser["degree"][rows], nan=1).astype(int))
    floor = np.maximum(np.nan_to_num(ser["scatter"][rows], nan=0.0), _st.SIGMA_FLOOR)
    base = _detect.fit_by_degree(m, x, deg, floor, loss="huber")
    keep = np.isfinite(f["baseline"][rows])
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


def _time_key(ds: xr.Dataset, da: xr.DataArray) -> tuple[np.ndarray, str] | None:
    """The execution-time key of every run of ``da`` (``(series, budget, trial)``) and its source, or None."""
    have = [n for n in ("started_at", "order") if n in ds.variables]

    def load(name: str) -> np.ndarray | None:
        v = ds[name]
        if not set(v.dims) <= set(da.dims):
            return None
        v = v.broadcast_like(da).reindex_like(da)
        return np.asarray(v.transpose(*da.dims).values)

    key = _cf.time_key(load("order") if "order" in have else None,
                       load("started_at") if "started_at" in have else None)
    if key is None:
        return None
    nb, T = da.sizes[_series.BUDGET], da.sizes[_series.TRIAL]
    return key[0].reshape(-1, nb, T), key[1]


def _host_adjusted(da: xr.DataArray, degree: xr.DataArray, budgets: np.ndarray,
                   key: tuple[np.ndarray, str] | None) -> tuple[xr.DataArray, np.ndarray]:
    """The runs with the host state removed (random-order sweeps), and each series' ``beta`` (NaN: not adjusted).

    Every run's host state ``g`` is the median residual (log ratio to its series' smooth reference) of the
    :data:`analysis.detect.confound.HOST_K` runs of other cells of the same origin executed nearest to it
    (:func:`analysis.detect.confound.host_state`; its own cell never enters, so neither does a regime of it); a
    Theil-Sen ``beta`` per series (:func:`analysis.detect.confound.adjust_host_state`, clipped at 0: a slow host
    slows every run) and the run divided by ``exp(beta g)``: the host state is a nuisance term of the
    reduced model, removed before the scan (Freedman and Lane 1983). Series run in budget order are left as
    they are (there ``g`` follows the budget and would take regimes out with it).
    """
    S = int(np.prod([da.sizes[d] for d in _series.series_dims(da)], dtype=int))
    if key is None:  # no execution times: nothing to adjust
        return da, np.full(S, np.nan)
    tkey = key[0]
    sdims = _series.series_dims(da)
    Y = np.asarray(da.values, dtype=float).reshape(S, budgets.size, -1)  # da is (*series, budget, trial)
    pre = _detect._prepare(Y, np.asarray(degree.transpose(*sdims).values).reshape(-1), budgets)
    with np.errstate(divide="ignore", invalid="ignore"):
        E = pre["L"] - np.log(pre["ref"])[:, :, None]
    ok = np.isfinite(E)
    # runs of different files never mix (their order keys are not comparable)
    group = origin_groups(da.isel({_series.BUDGET: 0, _series.TRIAL: 0}, drop=True), sdims)
    tc = _cf.prepare(tkey, E, ok, group=group)
    g = np.where(np.asarray(tc.ordered, dtype=bool)[:, None, None], np.nan, tc.g_cells)
    _, beta = _cf.adjust_host_state(E, g, ok & np.isfinite(g))
    beta = np.where(np.isfinite(beta), np.maximum(beta, 0.0), np.nan)
    shift = np.where(np.isfinite(g) & np.isfinite(beta)[:, None, None], beta[:, None, None] * g, 0.0)
    if not np.any(shift):
        return da, beta
    return da.copy(data=(Y * np.exp(-shift)).reshape(da.shape)), beta


def _replicated(ds: xr.Dataset, da: xr.DataArray, f: dict[str, np.ndarray], sg: dict[str, np.ndarray],
                checked: np.ndarray, *, alpha: float, min_effect: float, sign: int) -> dict[str, np.ndarray]:
    """The replication check across processes (:mod:`analysis.detect.replication`) of the ``checked``
    segments, as arrays shaped like them (and ``n_processes`` per series)."""
    S, K = checked.shape
    nb, T = da.sizes[_series.BUDGET], da.sizes[_series.TRIAL]
    proc = _rep.process_keys(ds, da)
    if proc is None:
        proc = np.full((S, nb, T), -1, dtype=np.int64)
    Y = np.asarray(da.values, dtype=float).reshape(-1, nb, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        E = np.log(Y) - np.log(f["baseline"])[:, :, None]
    normal_cells = (f["normal"] == 1) & np.isfinite(f["baseline"])
    cands = [(int(s), int(j), int(sg["seg_start"][s, j]), int(sg["seg_end"][s, j])) for s, j in zip(*np.nonzero(checked))]
    return _rep.check(E, proc, normal_cells, cands, n_segments=K, alpha=alpha, min_log=float(np.log1p(min_effect)),
                      sign=sign)


def _time_check(ds, da, key, f, sg, candidate, clustered, confounded, p_time, alpha
                ) -> tuple[str, float, tuple[np.ndarray, np.ndarray]]:
    """Fill the time-confound arrays in place; return (note, share of sequential series, (ordered, blocked)):
    per series, whether it ran in budget order and whether each of its cells ran as one block."""
    none = np.zeros(candidate.shape[0], dtype=bool)
    if not any(n in ds.variables for n in ("started_at", "order")):
        return "skipped: the dataset has neither 'order' nor 'started_at'", float("nan"), (none, none)
    if key is None:
        return "skipped: 'order' / 'started_at' hold no usable values", float("nan"), (none, none)
    tkey, used = key
    nb, T = da.sizes[_series.BUDGET], da.sizes[_series.TRIAL]
    if not candidate.any():
        tc0 = _cf.prepare(tkey, np.zeros_like(tkey), np.ones(tkey.shape, dtype=bool))
        return (f"{used}: no anomalous segment to check", _cf.sequential_share(tc0.pos),
                (np.asarray(tc0.ordered, dtype=bool), np.asarray(tc0.blocked, dtype=bool)))
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
    return (f"{used}: {int(candidate.sum())} segment(s) checked", _cf.sequential_share(tc.pos),
            (np.asarray(tc.ordered, dtype=bool), np.asarray(tc.blocked, dtype=bool)))
