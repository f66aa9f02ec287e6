"""The statistic of the step scan: is a budget interval a step against any smooth curve?

Per series, on the log residuals ``E[b, t]`` of every run to a robust fit of
the baseline family to the whole series, each budget's runs give a cell mean
(:func:`cell_mean`), weighted by the square root of its share of runs
(:func:`weights`). Every direction in which the smooth curve could move is
projected out (:func:`tangent_basis`: a change of any of its coefficients,
such as a larger intercept from a fixed per-run cost; :func:`projector`): with
``X`` those directions over the budgets with data and ``P = I - X X^+``, the
means ``m`` become ``P m``. A step on the interval ``S`` (indicator ``c``) is
standardised as ``Z = c'Pm / sqrt(c'Pc)`` (:func:`interval_z`, with the
denominators of :func:`interval_denominators`): under budget-level white
noise of scale ``s`` every interval's ``Z`` has sd ``s``, whatever its width or
position. A smooth curve split in two gives a small ``Z``; a step a large one.

The test built on it (null draws, step-down, power) is :mod:`analysis.detect.inference`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_mean", "interval_denominators", "interval_z", "interval_z_flat", "projector", "tangent_basis", "weights"]


def tangent_basis(x: np.ndarray, reference: np.ndarray, degree: int) -> np.ndarray:
    """Directions in which the log of the smooth reference can move: ``[u^k / g for k <= degree]``.

    ``g`` is the reference curve (``u = x - x_min``) at the budgets; the derivatives of ``log g`` with
    respect to the coefficients of ``a + b u (+ c u^2)`` are ``u^k / g``, so projecting them out makes the
    scan blind to a change of those coefficients (a different intercept, for instance a fixed cost that
    dominates the smallest budgets, is not a step). ``degree`` is the expected scaling's (1 with the
    cache: a level and the fixed-cost direction; 2 without); more directions would also absorb a wide
    regime in the middle of a short sweep (8 slow budgets of 12 look like a bent curve).
    """
    u = x - x.min()
    g = np.maximum(np.asarray(reference, dtype=float), 1e-300)
    return np.stack([u**k / g for k in range(max(degree, 0) + 1)], axis=1)


def projector(X: np.ndarray) -> np.ndarray:
    """``P = I - X X^+``: removes the span of the columns of ``X`` (each scaled to unit norm first)."""
    n = X.shape[0]
    norms = np.linalg.norm(X, axis=0)
    X = X[:, norms > 0] / norms[norms > 0]
    X = X[:, : max(min(X.shape[1], n - 2), 0)]
    if X.shape[1] == 0:
        return np.eye(n)
    return np.eye(n) - X @ np.linalg.pinv(X, rcond=1e-10)


def interval_denominators(P: np.ndarray) -> np.ndarray:
    """``D[i, j] = c'Pc`` for the interval ``i..j`` (``j >= i``; NaN elsewhere and where ~0)."""
    n = P.shape[0]
    Q = np.zeros((n + 1, n + 1))
    Q[1:, 1:] = P.cumsum(0).cumsum(1)
    i, j = np.triu_indices(n)
    D = np.full((n, n), np.nan)
    d = Q[j + 1, j + 1] - Q[i, j + 1] - Q[j + 1, i] + Q[i, i]
    D[i, j] = np.where(d > 1e-9, d, np.nan)
    return D


def interval_z(Pm: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``Z`` of every interval for a stack of projected series ``Pm`` (..., n) -> (..., n, n)."""
    S = np.concatenate([np.zeros(Pm.shape[:-1] + (1,)), np.cumsum(Pm, axis=-1)], axis=-1)
    sums = S[..., None, 1:] - S[..., :-1, None]  # [i, j] = sum_{i..j}
    return sums / np.sqrt(D)


def interval_z_flat(Pm: np.ndarray, first: np.ndarray, last: np.ndarray, root_d: np.ndarray) -> np.ndarray:
    """``Z`` of the intervals ``first[x]..last[x]`` only (``root_d``: their ``sqrt(c'Pc)``), for a stack of
    projected series ``Pm`` (..., n) -> (..., len(first)): what :func:`interval_z` gives there, without the
    lower triangle and the intervals left out (a tenth of its time on 50 budgets)."""
    S = np.zeros(Pm.shape[:-1] + (Pm.shape[-1] + 1,))
    np.cumsum(Pm, axis=-1, out=S[..., 1:])
    # ``take`` and in-place arithmetic, in C order: fancy indexing along the last axis returns the transposed
    # layout (every later reduction over the intervals, argmax per draw, is several times slower on it), and
    # its copy and temporaries took twice this time (200 draws of 50 budgets); the same numbers
    Z = np.take(S, last + 1, axis=-1)
    Z -= np.take(S, first, axis=-1)
    Z /= root_d
    return Z


def cell_mean(E: np.ndarray) -> np.ndarray:
    """Per cell (last axis: its runs), the mean of its runs, dropping the lowest and highest from 5 runs on.

    A mean, not a median: with three trials, a median is reached by any two of a regime's three runs
    that a permutation puts together, which caps the evidence one budget can give; the permutation
    null already accounts for heavy tails. From five runs the extremes are trimmed.
    """
    T = E.shape[-1]
    if T and np.isfinite(E).all():  # every run present: a plain (or once-trimmed) mean, without the sort
        if T < 5:
            return E.mean(axis=-1)
        return (E.sum(axis=-1) - E.min(axis=-1) - E.max(axis=-1)) / (T - 2)
    a = np.sort(E, axis=-1)  # NaN last
    c = np.isfinite(a).sum(axis=-1, keepdims=True)
    idx = np.arange(a.shape[-1])
    keep = (idx < c) & ((c < 5) | ((idx >= 1) & (idx < c - 1)))
    k = keep.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, np.where(keep, a, 0.0).sum(axis=-1) / np.maximum(k, 1), np.nan)


def weights(E: np.ndarray) -> np.ndarray:
    """Per budget, ``sqrt(n_b / n_max)`` (``n_b``: its runs).

    Multiplying each budget's mean by it gives every budget the same noise whatever its number of
    runs, so a budget measured once (a missing run, a partial sweep) counts as the single run it is.
    """
    n = np.isfinite(E).sum(axis=1).astype(float)
    top = float(n.max()) if n.size and n.max() > 0 else 1.0
    return np.sqrt(n / top)
