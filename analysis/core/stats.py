"""Small statistics helpers shared by the analysis: noise scale, BH, bootstrap, reproducibility.

Everything here is vectorised numpy (scipy/statsmodels for distributions and
the Benjamini-Hochberg correction); nothing prints and nothing reads xarray.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import special

from collector.shared.trend import mad_sd, nanmedian_last

__all__ = [
    "bh",
    "ols",
    "bootstrap_median",
    "mad_sd",
    "median_ci",
    "median_sigma",
    "nanmedian_last",
    "neighbour_sigma",
    "replicate_sigma",
    "reproducibility",
]

#: Below this the noise scale is floored (relative units, 0.5 %), so noise-free input keeps a positive penalty.
SIGMA_FLOOR = 0.005
_MAD_PAIR = float(special.ndtri(0.75)) * np.sqrt(2.0)  # median |x_i - x_j| of two N(0, 1) draws


def replicate_sigma(L: np.ndarray) -> np.ndarray:
    """Robust per-run noise of log values, pooled over budgets, from replicates.

    Parameters
    ----------
    L
        ``(series, budget, trial)`` log values (NaN allowed).

    Returns
    -------
    numpy.ndarray
        ``(series,)`` standard deviation of one run's log value, estimated as
        ``median |L[b, i] - L[b, j]| / (0.6745 * sqrt(2))`` over trial pairs
        of the same budget (all pairs up to 10 trials, neighbours beyond), so
        a few slow runs do not inflate it. NaN where no budget has two trials.
    """
    T = L.shape[-1]
    if T < 2:
        return np.full(L.shape[0], np.nan)
    if T <= 10:
        i, j = np.triu_indices(T, 1)
    else:
        i = np.arange(T - 1)
        j = i + 1
    d = np.abs(L[..., i] - L[..., j]).reshape(L.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(d, axis=1) / _MAD_PAIR


def neighbour_sigma(r: np.ndarray) -> np.ndarray:
    """Per-value noise from differences of neighbouring budgets (one trial).

    ``r`` is ``(series, budget)`` (NaN allowed); returns ``(series,)``
    ``median |r[b+1] - r[b]| / (0.6745 * sqrt(2))`` over finite pairs, robust
    to the few large jumps at regime boundaries.
    """
    d = np.abs(np.diff(r, axis=-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(d, axis=-1) / _MAD_PAIR


def median_sigma(sigma_run: np.ndarray, n_trials: np.ndarray | int) -> np.ndarray:
    """Standard deviation of a median of ``n_trials`` runs: ``1.2533 sigma / sqrt(n)`` (n >= 3), else ``sigma / sqrt(n)``."""
    n = np.maximum(np.asarray(n_trials, dtype=float), 1.0)
    factor = np.where(n >= 3, np.sqrt(np.pi / 2.0), 1.0)
    return factor * sigma_run / np.sqrt(n)


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of every finite entry of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests  # on first use: `import analysis` stays light

        q[ok] = multipletests(np.clip(p[ok], 0.0, 1.0), method="fdr_bh")[1]
    return q


def ols(y: np.ndarray, X: np.ndarray) -> Any:
    """statsmodels' ordinary least squares model of ``y`` on ``X`` (``statsmodels.api.OLS``; call ``.fit()``).

    statsmodels is imported on the first call, not with the package: it takes about a third of a second.
    """
    from statsmodels.regression.linear_model import OLS

    return OLS(y, X)


def bootstrap_median(E: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float, float]:
    """Median of ``exp(E)`` with a percentile bootstrap CI that resamples trials.

    ``E`` is ``(budgets, trials)`` log ratios of one segment (NaN allowed).
    With one trial the budgets are resampled instead; with one cell there is
    no CI (NaN). Returns ``(median, lo, hi)`` in ratio units.
    """
    vals = E[np.isfinite(E)]
    if vals.size == 0:
        return np.nan, np.nan, np.nan
    est = float(np.exp(np.median(vals)))
    if n_boot <= 0 or vals.size < 2:
        return est, np.nan, np.nan
    k, T = E.shape
    a = (1.0 - level) / 2.0
    if T >= 2:
        lo, hi = median_ci(E[None], rng.integers(0, T, size=(n_boot, T)), (a, 1.0 - a))
        return est, float(lo[0]), float(hi[0])
    col = E[:, 0]
    col = col[np.isfinite(col)]  # one trial: the budgets are resampled instead
    lo, hi = median_ci(col[None, :, None], rng.integers(0, col.size, size=(n_boot, col.size))[:, :, None], (a, 1.0 - a),
                       axis="budget")
    return est, float(lo[0]), float(hi[0])


def median_ci(E: np.ndarray, idx: np.ndarray, quantiles: tuple[float, float] = (0.025, 0.975), *,
              axis: str = "trial") -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the median of ``exp(E)`` over all cells, for many series at once.

    ``E`` is ``(series, budgets, trials)`` of log ratios (NaN allowed); ``idx`` ``(n_boot, trials)``
    holds the trial indices of each resample, shared by every series and budget, so a series' interval
    depends only on its own data and the draw (not on the other series in the block). With
    ``axis="budget"``, ``idx`` ``(n_boot, budgets, 1)`` resamples budgets of a one-trial ``E`` instead.
    Returns ``lo, hi`` ``(series,)`` in ratio units (NaN where no resample has data). The one trial
    bootstrap of the regimes (segments, whole series) and its memory use by series blocks rest on it.
    """
    S = E.shape[0]
    if axis == "budget":
        sample = E[:, idx[:, :, 0], 0]  # (S, n_boot, budgets)
    else:
        sample = np.moveaxis(E[:, :, idx], 2, 1)  # (S, n_boot, budgets, trials)
    meds = nanmedian_last(sample.reshape(S, idx.shape[0], -1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(meds, list(quantiles), axis=1)
    return np.exp(q[0]), np.exp(q[1])


def reproducibility(E_seg: np.ndarray, E_ref: np.ndarray, *, min_log: float) -> float:
    """Share of trials that reproduce a segment's departure from the reference (normal) budgets.

    Parameters
    ----------
    E_seg, E_ref
        ``(budgets, trials)`` log ratios to the baseline of the segment and of the reference budgets
        (NaN allowed).
    min_log
        ``log(1 + min_effect)``; a trial reproduces the segment when its contrast
        ``d_t = mean_b E_seg[b, t] - mean_b E_ref[b, t]`` has the segment's sign and exceeds half of it.

    Returns
    -------
    float
        The share of trials with data on both sides that reproduce it; NaN with fewer than three such
        trials (trials are the replicates: one slow trial is one deviant replicate, not a regime).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d = np.nanmean(E_seg, axis=0) - np.nanmean(E_ref, axis=0)
    d = d[np.isfinite(d)]
    if d.size < 3:
        return np.nan
    direction = np.sign(np.nanmedian(E_seg)) or 1.0
    return float(np.mean(direction * d > 0.5 * min_log))
