"""Discrete execution modes of per-step decode times.

:func:`step_regimes` answers: is a slow budget slow at every decode step, or
does its run enter a slow mode at some step? Per series, each decode step's
time is divided by the typical time at that step (a robust line in the step
number), the log of that ratio is clustered with a Gaussian mixture whose
component count is chosen by BIC (scikit-learn), and each run's sequence of
ratios is cut into segments with ruptures to find where it switches mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import ruptures as rpt
import xarray as xr
from scipy import stats

from analysis.core.common import (
    BUDGET,
    STEP,
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
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.series import apply_named, is_lazy
from analysis.core.truncation import truncation_lines
from analysis.errors import InputError

if TYPE_CHECKING:
    from sklearn.mixture import GaussianMixture

__all__ = ["step_regimes", "VARIABLES"]

MODE = "mode"
#: :attr:`ResultVar.over` of the per-run variables (budget x trial) and of the per-run shares (x mode).
RUN, RUN_MODE = "run", "run_mode"
#: Every variable of a :func:`step_regimes` result, in order: over the series dims (x ``mode``, x budget x trial
#: (x ``mode``) or x budget).
VARIABLES: dict[str, ResultVar] = {
    "n_modes": ResultVar(SERIES, "number of execution modes", "1"),
    "main_mode": ResultVar(SERIES, "mode holding the most steps", "1"),
    "step_noise": ResultVar(SERIES, "within-run SD of log step time ratio", "1"),
    "mode_ratio": ResultVar(MODE, "typical step time of the mode / main mode", "1"),
    "mode_weight": ResultVar(MODE, "share of the series' steps in the mode", "1"),
    "share": ResultVar(RUN_MODE, "share of the run's decode steps in the mode", "1"),
    "slow_share": ResultVar(RUN, "share of the run's decode steps in slower modes", "1"),
    "switch_step": ResultVar(RUN, "first decode step in a new mode", "1"),
    "n_switches": ResultVar(RUN, "mode switches along the run", "1"),
    "slow_fraction": ResultVar(BUDGET, "mean share of decode steps in slower modes", "1"),
    "onset_step": ResultVar(BUDGET, "median step where runs enter a slower mode", "1"),
    "pattern": ResultVar(BUDGET, "normal | whole | enters | leaves | mixed | none"),
}


def _trend(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Typical time per decode step: a Theil-Sen line through the per-step medians over runs."""
    with quiet():
        med = np.nanmedian(t.reshape(-1, t.shape[-1]), axis=0)
    ok = np.isfinite(med) & (med > 0)
    if ok.sum() < 2:
        return np.where(ok, med, np.nan)
    slope, intercept, _, _ = stats.theilslopes(med[ok], k[ok])
    line = intercept + slope * k
    # a line that turns non-positive (odd data) falls back to the medians
    return np.where(line > 0, line, med)


def _modes(r: np.ndarray, max_modes: int, min_effect: float, seed: int,
           max_fit: int) -> tuple[np.ndarray, np.ndarray, GaussianMixture, np.ndarray]:
    """Fit GMMs with 1..max_modes components (BIC) and merge components closer than log(1 + min_effect).

    Returns mode centres (sorted, log), mode weights, the chosen mixture and
    the component -> mode map.
    """
    rng = np.random.default_rng(seed)
    x = r if r.size <= max_fit else rng.choice(r, max_fit, replace=False)
    x = x[:, None]
    from sklearn.mixture import GaussianMixture  # scikit-learn on first use: `import analysis` stays light

    best: GaussianMixture | None = None
    best_bic = np.inf
    for c in range(1, max_modes + 1):
        if x.shape[0] < 3 * c:
            break
        g = GaussianMixture(n_components=c, random_state=seed, reg_covar=1e-6, init_params="k-means++").fit(x)
        bic = g.bic(x)
        if bic < best_bic - 1e-9:
            best, best_bic = g, bic
    assert best is not None
    means = best.means_.ravel()
    weights = best.weights_.ravel()
    order = np.argsort(means)
    comp_to_mode = np.empty(means.size, dtype=np.int64)
    centres: list[list[int]] = []
    for c in order:
        if centres and means[c] - means[centres[-1][-1]] < np.log1p(min_effect):
            centres[-1].append(int(c))
        else:
            centres.append([int(c)])
    mode_center = np.empty(len(centres))
    mode_weight = np.empty(len(centres))
    for m, comps in enumerate(centres):
        comp_to_mode[comps] = m
        mode_weight[m] = weights[comps].sum()
        mode_center[m] = np.average(means[comps], weights=weights[comps])
    return mode_center, mode_weight, best, comp_to_mode


def _series_block(values: np.ndarray, *, k: np.ndarray, max_modes: int, min_effect: float, seed: int, max_fit: int,
                  min_size: int, penalty: float | None) -> dict[str, np.ndarray]:
    """The per-series part of :func:`step_regimes` on a block ``(..., budget, trial, step)`` of decode step
    times: the modes of each series and, per run, the share of its steps in each mode and its switches."""
    lead = values.shape[:-3]
    B, T, K = values.shape[-3:]
    values = np.asarray(values, dtype=np.float64).reshape(-1, B, T, K)
    with quiet():
        values = np.where(values > 0, values, np.nan)
    S, M = values.shape[0], max_modes
    n_modes = np.zeros(S)
    main_mode = np.full(S, -1.0)
    step_noise = np.full(S, np.nan)
    mode_ratio = np.full((S, M), np.nan)
    mode_weight = np.full((S, M), np.nan)
    share = np.full((S, B, T, M), np.nan)
    slow_share = np.full((S, B, T), np.nan)
    switch_step = np.full((S, B, T), np.nan)
    n_switches = np.full((S, B, T), np.nan)
    switch_up = np.zeros((S, B, T))
    start_slow = np.zeros((S, B, T))

    for s in range(S):
        t = values[s]
        if np.isfinite(t).sum() < 10:
            continue
        m = _trend(t, k)
        with quiet():
            r = np.log(t / m)
        finite = np.isfinite(r)
        centre, weight, gmm, comp_to_mode = _modes(r[finite], M, min_effect, seed, max_fit)
        nm = centre.size
        main = int(np.argmax(weight))
        n_modes[s], main_mode[s] = nm, main
        mode_ratio[s, :nm] = np.exp(centre - centre[main])
        mode_weight[s, :nm] = weight
        labels = np.full(r.shape, -1, dtype=np.int64)
        labels[finite] = comp_to_mode[gmm.predict(r[finite][:, None])]
        with quiet():
            d = np.diff(r, axis=-1)
            sigma = stats.median_abs_deviation(d, axis=None, scale="normal", nan_policy="omit") / np.sqrt(2.0)
        step_noise[s] = sigma
        pen = penalty if penalty is not None else None
        for b in range(B):
            for tr in range(T):
                ok = finite[b, tr]
                n = int(ok.sum())
                if n == 0:
                    continue
                lab = labels[b, tr][ok]
                counts = np.bincount(lab, minlength=nm)
                share[s, b, tr, :nm] = counts / n
                slow_share[s, b, tr] = counts[main + 1:].sum() / n
                n_switches[s, b, tr] = 0
                start_slow[s, b, tr] = lab[: min_size].mean() > main if n >= min_size else lab.mean() > main
                if counts.max() == n or n < 2 * min_size:
                    continue
                x = r[b, tr][ok]
                p = pen if pen is not None else 3.0 * max(sigma, 1e-3) ** 2 * np.log(n)
                bkps = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(x).predict(pen=p)
                edges = [0, *[int(e) for e in bkps]]
                seg_modes = [int(np.argmin(np.abs(centre - x[a:e].mean()))) for a, e in zip(edges[:-1], edges[1:])]
                kk = k[ok]
                changes = [(edges[i], seg_modes[i - 1], seg_modes[i]) for i in range(1, len(seg_modes))
                           if seg_modes[i] != seg_modes[i - 1]]
                n_switches[s, b, tr] = len(changes)
                start_slow[s, b, tr] = seg_modes[0] > main
                if changes:
                    at, before, after = changes[0]
                    switch_step[s, b, tr] = kk[at]
                    switch_up[s, b, tr] = after > before

    out = {"n_modes": n_modes, "main_mode": main_mode, "step_noise": step_noise, "mode_ratio": mode_ratio,
           "mode_weight": mode_weight, "share": share, "slow_share": slow_share, "switch_step": switch_step,
           "n_switches": n_switches, "switch_up": switch_up, "start_slow": start_slow}
    return {name: v.reshape(lead + v.shape[1:]) for name, v in out.items()}


def no_step_times(fn: str, timing: object) -> str:
    """One line: the dataset has no per-step times, why (its ``timing``), and the command that records them."""
    how = "re-run the sweep with `python -m collector run ... --timing step` (or --timing events on cuda/mps)"
    t = str(timing) if timing is not None else ""
    if t == "ends":
        why = "it was timed with --timing ends, which keeps whole-run times only"
    elif t in ("step", "events"):
        why = f"its attrs say timing={t!r} but it holds none (an imported or exported file with whole-run times only)"
    else:
        why = f"its timing is {t!r}" if t else "its timing is not recorded"
    return f"{fn}() needs per-step times (step_time) and this dataset has none: {why}; {how}"


def step_regimes(
    ds: xr.Dataset,
    *,
    max_modes: int = 4,
    min_effect: float = 0.2,
    penalty: float | None = None,
    min_size: int = 3,
    seed: int = 0,
    max_fit: int = 20_000,
) -> xr.Dataset:
    """Cluster per-step decode times into execution modes and find where runs switch mode.

    Per series (every dim but budget, trial and step) the decode steps
    (``step >= 1``) of all runs are pooled. The typical time at step ``k`` is
    ``m(k)``, a Theil-Sen line through the per-step medians over runs (per-step
    cost grows linearly with the context); each step gets ``r = log(t / m(k))``.
    Gaussian mixtures with 1..``max_modes`` components are fitted to ``r`` and
    the count with the lowest BIC is kept; components whose means differ by
    less than ``log(1 + min_effect)`` are merged into one *mode*. The *main*
    mode holds the most steps; ``mode_ratio`` is each mode's typical time over
    the main mode's. A step belongs to the mode of its most probable component.

    Per run, the sequence ``r`` is segmented with ruptures (``KernelCPD``,
    linear kernel = least squares, penalty ``penalty`` or ``3 sigma^2 log n``
    with ``sigma`` the within-run step noise); each segment takes the mode
    nearest its mean and a *switch* is a change of mode between segments.

    Parameters
    ----------
    ds
        Dataset with ``step_time`` (per-step times; step 0 is the prefill).
    max_modes
        Largest number of mixture components tried.
    min_effect
        Smallest relative difference between two modes (0.2: 20%).
    penalty
        Changepoint penalty (least-squares units of ``r``); None: automatic.
    min_size
        Fewest steps in a segment.
    seed
        Seeds the mixture fit and the subsample it is fitted on.
    max_fit
        Fit each mixture on at most this many steps (all steps are labelled).

    Returns
    -------
    xarray.Dataset
        Over the series dims:

        - ``n_modes``: number of execution modes.
        - ``main_mode``: index of the mode holding the most steps.
        - ``step_noise``: within-run SD of ``r`` (about the per-step CV).

        Over the series dims x ``mode``:

        - ``mode_ratio``: typical step time of the mode / that of the main mode (NaN past ``n_modes``).
        - ``mode_weight``: share of all steps of the series in the mode.

        Over the series dims x budget x trial (one run each):

        - ``share`` (x ``mode``): share of the run's decode steps in each mode.
        - ``slow_share``: share of the run's decode steps in modes slower than the main one.
        - ``switch_step``: first decode step in a new mode (NaN: no switch).
        - ``n_switches``: number of mode switches along the run.

        Over the series dims x budget:

        - ``slow_fraction``: mean ``slow_share`` over trials.
        - ``onset_step``: median ``switch_step`` over trials that switch into a slower mode (NaN: none).
        - ``pattern``: ``normal`` (main mode throughout), ``whole`` (a slower mode at
          every step), ``enters`` (switches into a slower mode part-way), ``leaves``
          (starts slow, returns), ``mixed``, or ``none`` (no data); by majority over trials.

        Attr ``summary``: the series with more than one mode and what their slow budgets do.

    Raises
    ------
    InputError
        When ``step_time`` or its ``step`` dim is missing (timing ``ends``; the message says how to record it),
        when it has no positive finite decode step, or when a setting is out of range.
    """
    fn = "step_regimes"
    ds = check_dataset(ds, fn, [], min_budgets=1)
    if "step_time" not in ds.data_vars:
        raise InputError(no_step_times(fn, ds.attrs.get("timing")))
    ds = check_dataset(ds, fn, ["step_time"], min_budgets=1)
    if STEP not in ds["step_time"].dims or STEP not in ds.coords:
        raise InputError(f"{fn}(): variable 'step_time' needs a {STEP!r} dim with a coordinate, "
                         f"has dims {ds['step_time'].dims!r}")
    max_modes = check_positive_int(max_modes, "max_modes", fn)
    seed = check_seed(seed, fn)
    min_size = check_positive_int(min_size, "min_size", fn)
    max_fit = check_positive_int(max_fit, "max_fit", fn, minimum=10)
    min_effect = check_fraction(min_effect, "min_effect", fn, low=0.0, high=100.0)
    if penalty is not None and not (isinstance(penalty, (int, float)) and penalty > 0):
        raise InputError(f"{fn}(): penalty must be a positive number or None, got {penalty!r}")

    da = ok_values(ds, "step_time")
    series = series_of(da)
    dec, k = _decode_steps(da, fn)
    values = _fit(dec, series, k, max_modes=max_modes, min_effect=min_effect, seed=seed, max_fit=max_fit,
                  min_size=min_size, penalty=penalty)
    values.update(_per_budget(values))
    budgets = ds[BUDGET].values
    T = values["slow_share"].shape[2]
    runs = {BUDGET: budgets, TRIAL: ds[TRIAL].values if TRIAL in ds.coords and TRIAL in da.dims else np.arange(T)}
    modes = {MODE: np.arange(max_modes)}
    over = {MODE: ([MODE], modes), RUN: ([BUDGET, TRIAL], runs), RUN_MODE: ([BUDGET, TRIAL, MODE], {**runs, **modes}),
            BUDGET: ([BUDGET], {BUDGET: budgets})}
    out = xr.Dataset(wrap(VARIABLES, values, series, over),
                     attrs={"max_modes": max_modes, "min_effect": min_effect, "seed": seed})
    out.attrs["summary"] = "\n".join([_summary(values, series, budgets), *truncation_lines(ds, "step_time"),
                                      *origin_lines(out)])
    return out


def _decode_steps(da: xr.DataArray, fn: str) -> tuple[xr.DataArray, np.ndarray]:
    """The decode steps (``step >= 1``) of ``da`` with a ``trial`` dim, and their step numbers; checked."""
    steps = np.asarray(da[STEP].values)
    decode = steps >= 1
    if not decode.any():
        raise InputError(f"{fn}(): 'step_time' has no decode step (step >= 1); steps are {steps.tolist()!r}")
    dec = da.isel({STEP: np.flatnonzero(decode)})
    positive = ((dec > 0) & np.isfinite(dec)).any()
    if not bool(positive.compute() if is_lazy(dec) else positive):
        raise InputError(f"{fn}(): 'step_time' has no positive finite decode step")
    if TRIAL not in dec.dims:
        dec = dec.expand_dims({TRIAL: 1}, axis=-1)
    return dec, steps[decode].astype(np.float64)


def _fit(dec: xr.DataArray, series: Series, k: np.ndarray, *, max_modes: int, min_effect: float, seed: int,
         max_fit: int, min_size: int, penalty: float | None) -> dict[str, np.ndarray]:
    """The modes of every series and the runs' shares and switches (:func:`_series_block`), arrays
    ``(series, ...)``; per series, lazily for dask-backed input (blocks of series at a time)."""
    fitted = apply_named(
        _series_block, [dec.transpose(*series.dims, BUDGET, TRIAL, STEP)], [[BUDGET, TRIAL, STEP]],
        outputs={**{n: () for n in ("n_modes", "main_mode", "step_noise")},
                 **{n: (MODE,) for n in ("mode_ratio", "mode_weight")}, "share": (BUDGET, TRIAL, MODE),
                 **{n: (BUDGET, TRIAL) for n in ("slow_share", "switch_step", "n_switches", "switch_up", "start_slow")}},
        sizes={MODE: max_modes},
        kwargs={"k": k, "max_modes": max_modes, "min_effect": min_effect, "seed": seed, "max_fit": max_fit,
                "min_size": min_size, "penalty": penalty},
    ).compute()
    values = {name: series.unwrap(fitted[name]) for name in ("step_noise", "mode_ratio", "mode_weight", "share",
                                                             "slow_share", "switch_step", "n_switches")}
    values.update({name: series.unwrap(fitted[name]).astype(np.int64) for name in ("n_modes", "main_mode")})
    values.update({name: series.unwrap(fitted[name]) == 1 for name in ("switch_up", "start_slow")})
    return values


def _per_budget(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``slow_fraction``, ``onset_step`` and ``pattern`` ``(series, budget)`` from the runs' shares and switches."""
    slow_share, switch_step, n_switches = values["slow_share"], values["switch_step"], values["n_switches"]
    switch_up, start_slow = values["switch_up"], values["start_slow"]
    S, B, T = slow_share.shape
    with quiet():
        slow_fraction = np.nanmean(slow_share, axis=2)
        onset = np.nanmedian(np.where(switch_up, switch_step, np.nan), axis=2)
    pattern = np.full((S, B), "none", dtype=object)
    has = np.isfinite(slow_share)
    for s in range(S):
        for b in range(B):
            runs = has[s, b]
            if not runs.any():
                continue
            kinds = []
            for tr in np.flatnonzero(runs):
                sw = n_switches[s, b, tr]
                if sw == 0:
                    kinds.append("whole" if start_slow[s, b, tr] else "normal")
                elif sw == 1:
                    kinds.append("enters" if switch_up[s, b, tr] else "leaves")
                else:
                    kinds.append("mixed")
            values_, counts_ = np.unique(kinds, return_counts=True)
            pattern[s, b] = values_[np.argmax(counts_)] if counts_.max() * 2 > len(kinds) else "mixed"
    return {"slow_fraction": slow_fraction, "onset_step": onset, "pattern": pattern.astype(str)}


def _summary(values: dict[str, np.ndarray], series: Series, budgets: np.ndarray) -> str:
    """The series with more than one mode and what their slow budgets do, for humans."""
    n_modes, mode_ratio = values["n_modes"], values["mode_ratio"]
    pattern, onset = values["pattern"], values["onset_step"]
    multi = int(np.sum(n_modes > 1))
    with_data = int(np.sum(n_modes >= 1))  # (a series without per-step times is no series here)
    lines = [f"per-step times: {multi} of {with_data} series show more than one execution mode"]
    for s in range(n_modes.size):
        if n_modes[s] <= 1:
            continue
        ratios = ", ".join(f"{fmt_fixed(x)}x" for x in mode_ratio[s, : n_modes[s]])
        parts = []
        for kind in ("whole", "enters", "leaves", "mixed"):
            bs = budgets[pattern[s] == kind]
            if bs.size:
                text = f"{kind}: budgets {', '.join(str(int(b)) for b in bs)}"
                if kind == "enters":
                    text += f" (median onset step {np.nanmedian(onset[s][pattern[s] == kind]):.0f})"
                parts.append(text)
        lines.append(f"{series.name(s)}: modes {ratios}; " + ("; ".join(parts) or "no budget slow in a majority of trials"))
    return "\n".join(lines)
