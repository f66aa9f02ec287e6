"""The robust trend of latency over the budget: the analysis' baseline and the refinement's trend.

A polynomial in the budget with a free intercept that never falls with the budget
(:func:`monotone_design`), fitted for many series at once in the original units with weights
``1 / y^2`` (relative, i.e. log-scale, errors) and made robust by reweighting with Tukey's biweight
on the log residuals. numpy and scipy only: the collector uses it without the analysis.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["LEAN_C", "design", "mad_sd", "monotone_design", "nanmedian_last", "robust_fit"]

#: Normal quantile 3/4: the MAD of N(0, 1), the factor scipy's ``median_abs_deviation(scale="normal")`` divides by.
_Q75 = float(special.ndtri(0.75))

_BIWEIGHT_C = 4.685
_HUBER_C = 1.345
#: Biweight tuning constant on the leaning side (see ``lean``).
LEAN_C = 1.5
_N_ITER = 12


def design(x: np.ndarray, degree: int) -> np.ndarray:
    """``(budget, degree + 1)`` design matrix ``[1, x, x^2][: degree + 1]`` of scaled budgets ``x``."""
    return np.stack([x**k for k in range(degree + 1)], axis=-1)


def monotone_design(u: np.ndarray, degree: int) -> np.ndarray:
    """Design in ``u = x - x_min`` whose non-negative coefficients span exactly the monotone fits.

    Degree 0 and 1: ``[1, u]`` (value at the smallest budget and slope, both >= 0). Degree 2:
    ``[1, u - u^2 / (2 U), u^2 / (2 U)]`` with ``U = max(u)``: the coefficients are the value at the
    smallest budget and the slopes at both ends, so ``>= 0`` says "positive and non-decreasing over the
    sweep" while the curvature stays free (a fixed per-step cost makes a cache-off total
    ``a + b n + c n^2`` with a large linear part; noise can make it look slightly concave).
    """
    if degree < 2:
        return design(u, degree)
    U = float(np.max(u)) or 1.0
    q = u**2 / (2.0 * U)
    return np.stack([np.ones_like(u), u - q, q], axis=-1)


def _solve_free(W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Batched weighted least squares: ``W, Y`` are ``(S, n)``, ``X`` ``(n, p)``; returns ``(S, p)``."""
    A = np.einsum("sn,np,nq->spq", W, X, X)
    rhs = np.einsum("sn,np,sn->sp", W, X, Y)
    p = X.shape[1]
    ridge = 1e-10 * np.maximum(np.trace(A, axis1=1, axis2=2), 1e-300)[:, None, None] * np.eye(p)
    return np.linalg.solve(A + ridge, rhs[..., None])[..., 0]


def _solve(W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Weighted least squares with every coefficient constrained to be >= 0.

    With :func:`monotone_design` this says: latency is positive at the
    smallest budget and does not fall with the budget anywhere in the sweep
    (a one-column fit is left free). With at most
    three columns the constrained optimum is found exactly by solving on every
    face (subsets of the columns set to zero) and keeping the feasible
    solution with the smallest weighted error.
    """
    p = X.shape[1]
    free = _solve_free(W, X, Y)
    if p == 1:
        return free
    bad = np.flatnonzero(np.any(free < -1e-12, axis=1))
    if bad.size == 0:  # the unconstrained optimum is feasible: it is the constrained one
        return free
    free[bad] = _solve_faces(W[bad], X, Y[bad])
    return free


def _solve_faces(W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    p = X.shape[1]
    best = np.full((W.shape[0], p), np.nan)
    best_err = np.full(W.shape[0], np.inf)
    constrained = list(range(p))
    for k in range(1 << len(constrained)):
        zero = [c for i, c in enumerate(constrained) if k >> i & 1]
        keep = [c for c in range(p) if c not in zero]
        coef = np.zeros((W.shape[0], p))
        if not keep:
            continue
        coef[:, keep] = _solve_free(W, X[:, keep], Y)
        feasible = np.all(coef[:, constrained] >= -1e-12, axis=1)
        err = np.sum(W * (Y - coef @ X.T) ** 2, axis=1)
        better = feasible & (err < best_err - 1e-15 * np.abs(best_err).clip(max=1e300))
        best[better] = coef[better]
        best_err[better] = err[better]
    return best


def robust_fit(
    m: np.ndarray,
    x: np.ndarray,
    degree: int,
    *,
    mask: np.ndarray | None = None,
    scale_floor: np.ndarray | float = 0.01,
    single_term: np.ndarray | bool = False,
    lean: int = 0,
    loss: str = "biweight",
    weigh_by_fit: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust fit of ``exp(m)`` by a polynomial of ``degree`` in ``x``, for many series at once.

    Parameters
    ----------
    m
        ``(series, budget)`` log of the per-budget median (NaN: no data).
    x
        ``(budget,)`` scaled budgets (budget / largest budget).
    degree
        0, 1 or 2: the model is ``a + b x + c x^2`` up to that degree.
    single_term
        (scalar or per series) Fit only the leading term ``k x**degree``
        (constant, proportional, or proportional to ``x^2``) instead: used
        when the budgets in the fit span too little of the axis to pin down
        an intercept and a slope, so extrapolating the baseline stays sane.
        Series with fewer usable budgets than ``degree + 2`` get it too.
    lean
        0: symmetric biweight. +1: residuals above the fit are rejected sooner
        (tuning constant :data:`LEAN_C` instead of 4.685), so the fit leans to
        the lowest level that most budgets share (a first guess under the
        "lowest per-token cost" rule); -1: the mirror image.
    mask
        ``(series, budget)`` budgets allowed into the fit (default: all finite). A fit whose mask leaves
        out the smallest budget with data extrapolates down to it; its curve is then written in ``x``
        instead of ``x - x_min``, so the constraints say "positive at budget 0 and non-decreasing".
    scale_floor
        Lower bound (scalar or per series) of the residual scale used by the
        biweight, normally the noise of ``m``, so that residuals of noise size
        keep full weight.
    loss
        ``biweight`` (Tukey: far residuals get weight 0) or ``huber`` (weight
        ``min(1, 1.345 s / |r|)``: never 0, so a budget at the edge of a wide
        range, where a misfit is largest in relative terms, cannot be dropped
        and leave the curve to run away from it; the smooth reference of the
        step scan uses it) or ``none`` (plain weighted least squares).
    weigh_by_fit
        Weights ``1 / fit^2`` of the previous iteration instead of ``1 / y^2``
        after the first fit, so budgets far below the trend (a fast regime)
        do not outweigh the rest; the collector's refinement uses it.

    Returns
    -------
    baseline : numpy.ndarray
        ``(series, budget)`` fitted values at every budget (original units, > 0).
    weights : numpy.ndarray
        ``(series, budget)`` final robustness weights in [0, 1] (0: rejected).
    """
    S, n = m.shape
    ok = np.isfinite(m) if mask is None else (mask & np.isfinite(m))
    Y = np.where(ok, np.exp(np.where(ok, m, 0.0)), 0.0)
    base = np.full((S, n), np.nan)
    weights = np.zeros((S, n))
    counts = ok.sum(axis=1)
    floor = np.broadcast_to(np.asarray(scale_floor, dtype=float), (S,))
    single = np.broadcast_to(np.asarray(single_term, dtype=bool), (S,)) | (counts < degree + 2)
    # a fit that leaves out the smallest budget with data extrapolates down to it
    finite = np.isfinite(m)
    below = finite.any(axis=1) & ~ok[np.arange(S), np.argmax(finite, axis=1)]
    for use_single, extrapolate in ((False, False), (False, True), (True, False)):
        # a one-term fit has no intercept to anchor: its rows are one group whatever ``below`` says
        rows = np.flatnonzero((single == use_single) & (counts >= 1) & (use_single | (below == extrapolate)))
        if rows.size == 0:
            continue
        # the full model is written in x - x_min, so its intercept is the value at the smallest budget; a
        # fit extrapolating below its budgets is anchored at budget 0 instead (a latency is never negative
        # there), so the curve cannot dive towards zero at the small budgets it does not see
        X = design(x, degree)[:, -1:] if use_single else monotone_design(x if extrapolate else x - np.min(x), degree)
        deg = 0 if use_single else degree
        mm, okr, Yr, fl = m[rows], ok[rows], Y[rows], floor[rows]
        inv2 = np.where(okr, 1.0 / np.where(okr, Yr, 1.0) ** 2, 0.0)
        w = okr.astype(float)
        # keeps the fit positive: a thousandth of the smallest value (of the largest, it clipped the small
        # budgets of sweeps spanning more than 1000x, e.g. cache off from 4 to 1000 tokens)
        pos_floor = 1e-3 * np.nanmin(np.where(okr, Yr, np.nan), axis=1, keepdims=True)
        active = np.ones(len(rows), dtype=bool)
        for _ in range(_N_ITER):
            coef = _solve(w * inv2, X, Yr)
            fit = coef @ X.T
            fit = np.maximum(fit, pos_floor)
            if weigh_by_fit:
                inv2 = np.where(okr, 1.0 / fit**2, 0.0)
            r = np.where(okr, mm - np.log(fit), np.nan)
            s = mad_sd(r, center=0.0)
            s = np.maximum(np.nan_to_num(s, nan=0.0), fl)[:, None]
            if loss == "none":
                w_new = okr.astype(float)
            elif loss == "huber":
                ar = np.abs(np.where(okr, r, 0.0))
                w_new = np.where(okr, np.minimum(1.0, _HUBER_C * s / np.maximum(ar, 1e-300)), 0.0)
            else:
                c = _BIWEIGHT_C if lean == 0 else np.where(lean * r > 0, LEAN_C, _BIWEIGHT_C)
                u = np.where(okr, r / (c * s), 0.0)
                w_new = np.where(okr & (np.abs(u) < 1.0), (1.0 - u**2) ** 2, 0.0)
            # keep at least deg + 1 points in every fit
            few = (w_new > 0).sum(axis=1) < deg + 1
            w_new[few] = okr[few]
            # rows stop on their own (never on their neighbours' convergence), so a series' fit does not
            # depend on which other series share its block (eager and dask results are identical)
            done = np.all(np.abs(w_new - w) <= 1e-6, axis=1)
            w = np.where(active[:, None], w_new, w)
            active &= ~done
            if not active.any():
                break
        coef = _solve(w * inv2, X, Yr)
        fit = coef @ X.T
        base[rows] = np.maximum(fit, pos_floor)
        weights[rows] = w
    return base, weights


def mad_sd(a: np.ndarray, *, center: float | None = None) -> np.ndarray:
    """Normal-consistent MAD over the last axis, ignoring NaN (NaN where a row has none).

    The same as ``scipy.stats.median_abs_deviation(a, axis=-1, scale="normal", nan_policy="omit")``
    (with ``center``: deviations from that value instead of the row median), on the fast
    :func:`nanmedian_last` path: scipy's NaN-omitting path is about 200x slower on many short rows,
    and the robust baseline fit calls this in every iteration.
    """
    a = np.asarray(a, dtype=np.float64)
    mid = nanmedian_last(a)[..., None] if center is None else center
    return nanmedian_last(np.abs(a - mid)) / _Q75


def nanmedian_last(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where a row has none); a fast path for small rows."""
    a = np.sort(np.asarray(a, dtype=float), axis=-1)  # NaN sort last
    n = np.sum(~np.isnan(a), axis=-1)
    lo = np.take_along_axis(a, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(a, np.minimum(n // 2, a.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)
