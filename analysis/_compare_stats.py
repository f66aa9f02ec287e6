"""The numbers behind :func:`analysis.compare`: per-cell and per-series ratios B/A with CIs and tests.

Pure numpy on ``(series, budget, trial)`` cubes of log values (NaN: no run).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
from scipy import stats as _st

from analysis.stats import bh, median_sigma, neighbour_sigma, replicate_sigma

__all__ = ["cell_stats", "series_stats"]



@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _center(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.sum(np.isfinite(L), axis=-1)
    with _quiet():
        return np.nanmedian(L, axis=-1), n


def cell_stats(LA: np.ndarray, LB: np.ndarray, *, level: float = 0.95) -> dict[str, np.ndarray]:
    """Per cell: ``log_ratio`` (median log B - median log A), ``se``, ``lo``/``hi`` (log units), ``p``, ``nA``, ``nB``.

    The standard error of a median of ``n`` runs is ``1.2533 sigma / sqrt(n)``
    (``sigma / sqrt(n)`` for ``n < 3``), with ``sigma`` the robust per-run
    noise of the series in that file (:func:`run_sigma`). When either file has
    a single trial, the noise of the log ratio itself comes from differences
    of neighbouring budgets. ``p``: two-sided z-test of "no change".
    """
    mA, nA = _center(LA)
    mB, nB = _center(LB)
    d = mB - mA
    sA, sB = replicate_sigma(LA)[:, None], replicate_sigma(LB)[:, None]
    se = np.hypot(median_sigma(sA, nA), median_sigma(sB, nB))
    s_d = neighbour_sigma(d)  # noise of d from neighbouring budgets
    se = np.where(np.isfinite(se), se, s_d[:, None])
    se = np.maximum(se, 1e-12)
    z = _st.norm.ppf(0.5 + level / 2.0)
    ok = np.isfinite(d) & (nA > 0) & (nB > 0)
    p = np.where(ok, 2 * _st.norm.sf(np.abs(d) / se), np.nan)
    d = np.where(ok, d, np.nan)
    se = np.where(ok, se, np.nan)
    return {"log_ratio": d, "se": se, "lo": d - z * se, "hi": d + z * se, "p": p, "nA": nA, "nB": nB}


def series_stats(cell: dict[str, np.ndarray], use: np.ndarray, *, level: float = 0.95) -> dict[str, np.ndarray]:
    """Per series: the mean log ratio over the budgets in ``use`` with its CI and test; q-values across series.

    The standard error is the larger of the one implied by the cells'
    errors (cells are independent runs) and the spread of the cells' log
    ratios across budgets (so a ratio that varies with budget, or noise the
    cells underestimate, widens the interval instead of faking significance).

    Returns ``log_ratio``, ``lo``, ``hi``, ``p``, ``q`` and ``n`` (budgets used), each ``(series,)``.
    """
    d = np.where(use, cell["log_ratio"], np.nan)
    se_c = np.where(use, cell["se"], np.nan)
    n = np.sum(np.isfinite(d), axis=1)
    with _quiet():
        mean = np.nanmean(d, axis=1)
        model_se = np.sqrt(np.nansum(se_c**2, axis=1)) / np.maximum(n, 1)
        spread_se = np.where(n >= 3, np.nanstd(d, axis=1, ddof=1) / np.sqrt(np.maximum(n, 1)), 0.0)
    se = np.maximum(model_se, np.nan_to_num(spread_se))
    se = np.maximum(se, 1e-12)
    z = _st.norm.ppf(0.5 + level / 2.0)
    p = np.where(n > 0, 2 * _st.norm.sf(np.abs(mean) / se), np.nan)
    mean = np.where(n > 0, mean, np.nan)
    return {"log_ratio": mean, "lo": mean - z * se, "hi": mean + z * se, "p": p, "q": bh(p), "n": n}
