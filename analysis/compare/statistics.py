"""The numbers behind :func:`analysis.compare`: B/A per budget, its noise at every level, and the tests.

Pure numpy/scipy on ``(series, budget, trial)`` cubes of log values (NaN: no
run). The unit of evidence is the budget, not the run: per series and shared
budget ``b``, ``d_b = mean log B - mean log A`` (means over trials), and
the noise of ``d_b`` is measured by the scatter of ``d_b`` over the budgets.
That scatter holds every level of noise of both files that differs from
budget to budget (runs, cells, host states over time); the one level it cannot
see, a shift common to every budget of a file, is estimated from the trials
(a trial whose runs are all slow) and added. See docs/methods.md ("compare").

- :func:`level_stats`: the series' level ``mean_b d_b`` over the budgets
  outside every regime, with a t interval whose variance is
  ``s_d^2 / n + tau_A^2 / T_A + tau_B^2 / T_B`` (Satterthwaite degrees of freedom).
- :func:`cell_stats`: each budget's ``d_b`` with the same noise (the scatter of
  one ``d_b``, not of a mean).
- :func:`interval_test`, :func:`scan`: the interaction test of an interval
  of budgets: the step of ``d`` inside it above the other budgets (above a
  straight line through the series from :data:`TREND_BUDGETS` budgets on,
  so a B/A that drifts smoothly over the budgets is not a step), its t
  referred to the maximum of ``|t|`` over *every* interval of
  the series (max-T), so the p-value holds whichever way the interval was
  chosen (by the regimes found in A or B, or by the scan itself).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats as _sps

from analysis.core.common import quiet

__all__ = [
    "NULL_DF",
    "NULL_DRAWS",
    "TREND_BUDGETS",
    "bh",
    "cell_stats",
    "centers",
    "interval_test",
    "level_stats",
    "run_noise",
    "scan",
    "trial_variance",
]

#: Degrees of freedom of the Student-t noise that draws the max-T null of :func:`interval_test`: heavier
#: tails than Gaussian, as the budget-to-budget scatter of real half-split files has (docs/methods.md).
NULL_DF = 8.0
#: Draws of the max-T null per number of budgets (fewer for very long series, see :func:`_null_max`).
NULL_DRAWS = 20_000
_NULL_WORK = 4e7  # most (draws x intervals) of one null table
_NULL_SEED = 20240618
#: From this many shared budgets on, the interaction test measures a step above a straight line (below: above
#: the mean of the other budgets).
TREND_BUDGETS = 12
_MAD_DIFF = 0.6744897501960817 * np.sqrt(2.0)  # MAD of the difference of two N(0, 1) draws


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite entries of ``p`` (any shape; NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    v = np.clip(p[ok], 0.0, 1.0)
    order = np.argsort(v)
    ranked = v[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def centers(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the mean over trials of ``L`` ``(series, budget, trial)`` and the number of runs with data.

    The mean, not the median: runs of real hosts come in fast and slow states
    (a bimodal cell), where the mean of the logs is the more precise summary
    (on the real 10-trial files the level's sd over half-splits is 10-40 %
    smaller); a single slow run is diluted over the budgets of the level, and
    the interaction test's heavy-tailed null allows for it.
    """
    n = np.sum(np.isfinite(L), axis=-1)
    with quiet():
        return np.nanmean(L, axis=-1), n


def run_noise(L: np.ndarray) -> np.ndarray:
    """Per series: the per-run noise, sd of log runs within a cell pooled over the cells (NaN: no cell has 2 runs).

    ``sqrt(sum_cells sum_runs (x - cell mean)^2 / sum_cells (n - 1))``: the
    classical pooled sd, so slow run states (a bimodal cell) count in full.
    """
    n = np.sum(np.isfinite(L), axis=-1)
    with quiet():
        r = L - np.nanmean(L, axis=-1, keepdims=True)
    ss = np.nansum(np.where(n[..., None] > 1, r, np.nan) ** 2, axis=(1, 2))
    df = np.sum(np.maximum(n - 1, 0), axis=1)
    with quiet():
        return np.where(df > 0, np.sqrt(ss / np.maximum(df, 1)), np.nan)


def trial_variance(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series: the variance of a shift common to every budget of one trial, and the trials with data.

    Two-way analysis of variance (budget x trial, no interaction) of the log
    runs: ``tau^2 = max(0, (MS_trial - MS_error) / k)`` with ``k`` the budgets
    per trial (method of moments, e.g. Searle, Casella & McCulloch,
    *Variance Components*, 1992, ch. 3). It is what makes a file's level
    uncertain beyond its budget-to-budget scatter: in a random-order sweep a
    trial's runs share the host's slow spells more often than chance. Returns
    ``(tau2, T)``; ``tau2`` is 0 where fewer than two trials have data.
    """
    S, _, T = L.shape
    ok = np.isfinite(L)
    with quiet():
        r = L - np.nanmean(L, axis=-1, keepdims=True)
        r = np.where(np.sum(ok, axis=-1, keepdims=True) > 1, r, np.nan)  # cells with one run carry no contrast
        u = np.nanmean(r, axis=1)  # (S, T) trial effects
        e = r - u[:, None, :]
        used = np.isfinite(e)
        n_t = np.sum(used.any(axis=1), axis=1)
        n_b = np.sum(used.any(axis=2), axis=1)
        k_eff = np.sum(used, axis=(1, 2)) / np.maximum(n_t, 1)
        dfe = np.sum(used, axis=(1, 2)) - n_b - n_t + 1
        mse = np.nansum(e**2, axis=(1, 2)) / np.maximum(dfe, 1)
        mst = k_eff * np.nanvar(u, axis=1, ddof=1)
        tau2 = np.maximum(0.0, (mst - mse) / np.maximum(k_eff, 1))
    tau2 = np.where((n_t >= 2) & (dfe > 0) & np.isfinite(tau2), tau2, 0.0)
    return tau2, n_t


def _satterthwaite(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Degrees of freedom of a sum of variance estimates ``[(v_i, df_i)]`` (Satterthwaite, 1946)."""
    total = sum(v for v, _ in parts)
    with quiet():
        denom = sum(np.where(v > 0, v**2 / np.maximum(df, 1e-12), 0.0) for v, df in parts)
        return np.where(denom > 0, total**2 / denom, np.inf)


def level_stats(d: np.ndarray, use: np.ndarray, common: tuple[np.ndarray, ...], *, level: float, alpha: float,
                sweep_sd: float = 0.0) -> dict[str, np.ndarray]:
    """Per series: the level of B/A over the budgets in ``use``, its CI, its test and the scatter of one budget.

    Parameters
    ----------
    d
        ``(series, budget)`` ``mean log B - mean log A`` (NaN: not shared).
    use
        ``(series, budget)`` budgets of the level (shared, outside every regime).
    common
        ``(tau2_a, T_a, tau2_b, T_b)`` from :func:`trial_variance`.
    level, alpha
        Confidence level; the test level of ``mde``.
    sweep_sd
        Declared sd of a sweep's log level between repeated sweeps of one
        host; adds ``2 sweep_sd^2`` (known, infinite df) to every variance.

    Returns
    -------
    dict
        ``log_ratio``, ``se``, ``df``, ``lo``, ``hi``, ``p``, ``n`` (budgets
        used), ``mde`` (log ratio found with 80 % power by a two-sided test at
        ``alpha``) and the noise of one budget's ``d_b``: ``cell_se``, ``cell_df``.
    """
    tau_a, t_a, tau_b, t_b = common
    x = np.where(use, d, np.nan)
    n = np.sum(np.isfinite(x), axis=1)
    with quiet():
        mean = np.nanmean(x, axis=1)
        s2 = np.where(n >= 2, np.nanvar(x, axis=1, ddof=1), np.nan)
    shift_a, shift_b = tau_a / np.maximum(t_a, 1), tau_b / np.maximum(t_b, 1)
    sweep = np.full(mean.shape, 2.0 * float(sweep_sd) ** 2)
    common_parts = [(shift_a, np.maximum(t_a - 1, 1)), (shift_b, np.maximum(t_b - 1, 1)), (sweep, np.inf)]
    var = s2 / np.maximum(n, 1) + shift_a + shift_b + sweep
    df = _satterthwaite([(s2 / np.maximum(n, 1), np.maximum(n - 1, 1))] + common_parts)
    cell_var = s2 + shift_a + shift_b + sweep
    cell_df = _satterthwaite([(s2, np.maximum(n - 1, 1))] + common_parts)
    ok = (n >= 2) & np.isfinite(var) & (var > 0)
    se = np.where(ok, np.sqrt(np.where(ok, var, 1.0)), np.nan)
    df = np.where(ok, df, np.nan)
    with quiet():
        tq = _sps.t.ppf(0.5 + level / 2.0, df)
        p = np.where(ok, 2.0 * _sps.t.sf(np.abs(mean) / se, df), np.nan)
        mde = (_sps.t.ppf(1.0 - alpha / 2.0, df) + _sps.t.ppf(0.8, df)) * se
    mean = np.where(n > 0, mean, np.nan)
    cell_ok = ok & np.isfinite(cell_var) & (cell_var > 0)
    return {"log_ratio": mean, "se": se, "df": df, "lo": mean - tq * se, "hi": mean + tq * se, "p": p, "n": n,
            "mde": mde, "cell_se": np.where(cell_ok, np.sqrt(np.where(cell_ok, cell_var, 1.0)), np.nan),
            "cell_df": np.where(cell_ok, cell_df, np.nan)}


def cell_stats(d: np.ndarray, cell_se: np.ndarray, cell_df: np.ndarray, *, level: float) -> dict[str, np.ndarray]:
    """Per cell: ``d_b`` with the CI and the two-sided test of "no change" from the noise of one budget.

    ``cell_se`` / ``cell_df`` ``(series,)`` come from :func:`level_stats`: the
    scatter of ``d_b`` over the series' budgets (every level of noise) plus the
    shifts common to a file. Returns ``lo``, ``hi``, ``p`` ``(series, budget)``
    in log units (NaN where the noise is unknown or the cell is not shared).
    """
    se, df = cell_se[:, None], cell_df[:, None]
    ok = np.isfinite(d) & np.isfinite(se)
    with quiet():
        tq = _sps.t.ppf(0.5 + level / 2.0, df)
        p = np.where(ok, 2.0 * _sps.t.sf(np.abs(d) / se, df), np.nan)
    return {"lo": np.where(ok, d - tq * se, np.nan), "hi": np.where(ok, d + tq * se, np.nan), "p": p}


# ----------------------------------------------------------------------------- interaction test
def _family(k: int, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Every interval ``[i, j)`` of ``k`` budgets with 1 to ``longest`` budgets inside (and 3 or more outside)."""
    i, j = np.triu_indices(k + 1, 1)
    keep = (j - i) <= min(longest, k - 3)
    return i[keep], j[keep]


def _half(k: int) -> int:
    """The longest interval of the scan: half the budgets (a regime is the minority of a series' budgets)."""
    return max(1, k // 2)


def _step_t(d: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step of ``d[:, i:j]`` against the rest of each row, and its t.

    Least squares of each row ``(n, k)`` on ``[1, 1 inside]``, and from
    :data:`TREND_BUDGETS` budgets on, on ``[1, position, 1 inside]``: the
    step is the coefficient of the indicator, so a ratio B/A that drifts
    smoothly over many budgets is not a step (with fewer budgets a line and
    a step cannot be told apart). Its scale is the smaller of the fit's
    residual sd and a robust sd from successive differences of the row
    (``MAD(diff) / (0.6745 sqrt 2)``), which a second step elsewhere in the
    row (a regime that moved) does not inflate; the max-T null
    (:func:`_null_max`) is drawn with the same statistic. Returns ``(step,
    t)``, each ``(n, intervals)``.
    """
    n, k = d.shape
    trend = k >= TREND_BUDGETS
    x = np.arange(k, dtype=float) - (k - 1) / 2.0
    sxx = float(np.sum(x * x))
    r = d - d.mean(axis=1, keepdims=True)
    if trend:
        r = r - np.outer(r @ x / sxx, x)  # residual of the line through all budgets
    c_r = np.concatenate([np.zeros((n, 1)), np.cumsum(r, axis=1)], axis=1)
    c_x = np.concatenate([[0.0], np.cumsum(x)])
    n_in = (j - i).astype(float)
    zz = n_in - n_in**2 / k - (((c_x[j] - c_x[i]) ** 2 / sxx) if trend else 0.0)
    zd = c_r[:, j] - c_r[:, i]
    rss = np.sum(r * r, axis=1, keepdims=True) - zd**2 / zz
    dd = np.diff(d, axis=1)
    s_diff = np.median(np.abs(dd - np.median(dd, axis=1, keepdims=True)), axis=1, keepdims=True) / _MAD_DIFF
    s = np.minimum(np.sqrt(np.maximum(rss, 0.0) / (k - 3 if trend else k - 2)), s_diff)
    with quiet():
        t = np.where(s > 0, zd / np.sqrt(zz) / s, np.where(zd != 0, np.inf * np.sign(zd), 0.0))
    return zd / zz, t


@functools.lru_cache(maxsize=128)
def _null_max(k: int, longest: int) -> np.ndarray:
    """Sorted draws of ``max |t|`` over the intervals of ``k`` budgets up to ``longest`` long (i.i.d. t noise)."""
    i, j = _family(k, longest)
    draws = int(max(2_000, min(NULL_DRAWS, _NULL_WORK // max(len(i), 1))))
    rng = np.random.default_rng([_NULL_SEED, k, longest])
    out = np.empty(draws)
    step = max(1, int(2e6 // max(len(i) * k, 1)))
    for a in range(0, draws, step):
        z = rng.standard_t(NULL_DF, size=(min(step, draws - a), k))
        out[a:a + len(z)] = np.abs(_step_t(z, i, j)[1]).max(axis=1)
    out.sort()
    return out


def _max_t_p(t: float, k: int, longest: int) -> float:
    null = _null_max(k, longest)
    exceed = null.size - np.searchsorted(null, abs(t), side="left")
    return float((1 + exceed) / (1 + null.size))


def interval_test(d: np.ndarray, inside: np.ndarray, sign: int = 0) -> tuple[float, float, float]:
    """The interaction test of one interval of one series: does B/A step inside it, against elsewhere?

    Parameters
    ----------
    d
        ``(budget,)`` ``mean log B - mean log A`` of the series in budget
        order (NaN: not shared; dropped).
    inside
        ``(budget,)`` bool: the interval (contiguous among the shared budgets).
    sign
        +1: only B/A higher inside counts (a slow regime appeared); -1: only
        lower (a slow regime vanished); 0: either.

    Returns
    -------
    tuple
        ``(step, t, p)``: the step of ``d`` inside the interval above the
        other shared budgets (above a straight line through them from
        :data:`TREND_BUDGETS` budgets on; least squares), its t, and
        the p-value of ``|t|`` against the maximum of ``|t|`` over every
        interval of the series' shared budgets as long (up to half of them,
        or up to all but three for a longer one) under i.i.d. Student-t(8)
        noise: max-T, so the p-value holds however the interval was chosen
        (Monte Carlo p ``(1 + exceedances) / (1 + draws)``, Phipson & Smyth
        2010); 1 when the sign is the other one. The step is NaN with fewer
        than 5 shared budgets or fewer than 3 outside, the p-value then too.
    """
    ok = np.isfinite(d)
    x, ins = d[ok], np.asarray(inside, dtype=bool)[ok]
    k, n_in = x.size, int(ins.sum())
    where = np.flatnonzero(ins)
    if n_in == 0 or k < 5 or k - n_in < 3 or where[-1] - where[0] + 1 != n_in:
        return float("nan"), float("nan"), float("nan")
    step, t_arr = _step_t(x[None, :], np.array([where[0]]), np.array([where[-1] + 1]))
    st, t = float(step[0, 0]), float(t_arr[0, 0])
    if sign and np.sign(t) != sign:
        return st, t, 1.0
    return st, t, _max_t_p(t, k, _half(k) if n_in <= _half(k) else k - 3)


def scan(d: np.ndarray) -> tuple[int, int, float, float]:
    """The interval of one series where B/A steps most against elsewhere, and its max-T p-value.

    ``d`` ``(budget,)`` holds the series' log ratios over its shared budgets
    in budget order (no NaN). Returns ``(i, j, step, p)``: the interval
    ``d[i:j]`` (up to half the budgets) with the largest ``|t|`` of
    :func:`interval_test`, its step and its p-value against the maximum over
    every such interval: the series' one test of "B/A steps nowhere".
    ``(0, 0, nan, nan)`` with fewer than 5 budgets.
    """
    k = d.size
    if k < 5:
        return 0, 0, float("nan"), float("nan")
    i, j = _family(k, _half(k))
    step, t = _step_t(d[None, :], i, j)
    best = int(np.argmax(np.abs(t[0])))
    return int(i[best]), int(j[best]), float(step[0, best]), _max_t_p(float(t[0, best]), k, _half(k))
