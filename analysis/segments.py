"""Changepoints along the budget axis and the choice of the normal regime.

* :func:`detect` cuts one series of log ratios into segments with ruptures
  (``pelt``, ``binseg``, ``dynp`` or ``kernel``; ``jump=1``, ``min_size=1`` so
  that a one-budget spike can be its own segment).
* :func:`group_levels` groups segments whose levels agree (the seeds of the
  candidate normal regimes, which the caller refits and compares).
* :func:`boundary_intervals` re-estimates every boundary on resampled data and
  reports where it lands.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import ruptures as rpt

__all__ = [
    "METHODS", "MIN_NORMAL_SHARE", "NORMAL_RULES", "boundary_intervals", "detect", "group_levels", "levels",
    "merge_departures",
]

METHODS: tuple[str, ...] = ("pelt", "binseg", "dynp", "kernel")
NORMAL_RULES: tuple[str, ...] = ("lowest", "highest", "majority")

#: The kernel method works on ``x / sigma`` with an RBF kernel of this bandwidth (in noise units).
KERNEL_BANDWIDTH = 3.0
#: Multiplies the kernel method's penalty (calibrated on null data, docs/performance.md).
KERNEL_PENALTY_FACTOR = 1.5
_DYNP_MAX_BKPS = 12
#: Neighbouring departures are joined when their log levels differ by at most this share of the larger.
MERGE_SHARE = 0.5
#: The normal regime must cover at least this share of the budgets (and at least 2) under ``lowest`` / ``highest``.
MIN_NORMAL_SHARE = 0.25


def detect(x: np.ndarray, method: str, pen: float, sigma: float) -> list[int]:
    """Segment ends (exclusive, the last is ``len(x)``) of a 1-D series.

    Parameters
    ----------
    x
        Finite values (log ratios to the baseline, one per budget).
    method
        ``pelt``: exact penalised search (PELT) on the l2 cost (the sum of
        squared deviations from each segment's mean), through ruptures' C
        implementation (``KernelCPD`` with the linear kernel, which is that
        same cost). ``binseg``: binary segmentation, l2 cost.
        ``dynp``: exact dynamic programming, l2 cost, the number of
        changepoints chosen by the same penalty. ``kernel``: ``KernelCPD``
        with an RBF kernel on ``x / sigma`` (bandwidth
        :data:`KERNEL_BANDWIDTH` noise units); its penalty is
        ``pen / sigma**2`` scaled to kernel units, times :data:`KERNEL_PENALTY_FACTOR`.
    pen
        Penalty per changepoint, in the units of the l2 cost (squared log ratio).
    sigma
        Noise of one value of ``x`` (for ``kernel`` only).
    """
    n = len(x)
    if n < 2:
        return [n]
    signal = np.asarray(x, dtype=float).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "pelt":
            bkps = rpt.KernelCPD(kernel="linear", min_size=1, jump=1).fit(signal).predict(pen=pen)
        elif method == "binseg":
            bkps = rpt.Binseg(model="l2", min_size=1, jump=1).fit(signal).predict(pen=pen)
        elif method == "dynp":
            bkps = _dynp(signal, pen)
        elif method == "kernel":
            z = signal / max(sigma, 1e-12)
            gamma = 1.0 / (2.0 * KERNEL_BANDWIDTH**2)
            # an isolated shift of d noise units costs about 1 - exp(-gamma d^2) ~ gamma d^2 per point in
            # kernel units; the extra factor keeps the null false-positive rate at the l2 methods' level
            pen_k = KERNEL_PENALTY_FACTOR * pen / max(sigma, 1e-12) ** 2 * gamma
            bkps = rpt.KernelCPD(kernel="rbf", params={"gamma": gamma}, min_size=1, jump=1).fit(z).predict(pen=pen_k)
        else:  # validated by the caller
            raise ValueError(f"unknown method {method!r}")
    return [int(b) for b in bkps]


def _dynp(signal: np.ndarray, pen: float) -> list[int]:
    n = len(signal)
    algo = rpt.Dynp(model="l2", min_size=1, jump=1).fit(signal)
    best = [n]
    best_cost = float(algo.cost.error(0, n))
    for k in range(1, min(_DYNP_MAX_BKPS, n - 1) + 1):
        bkps = algo.predict(n_bkps=k)
        cost = float(algo.cost.sum_of_costs(bkps)) + pen * k
        if cost < best_cost:
            best, best_cost = bkps, cost
    return [int(b) for b in best]


def levels(x: np.ndarray, ends: list[int]) -> np.ndarray:
    """Median of ``x`` in each segment."""
    starts = [0] + ends[:-1]
    return np.array([np.median(x[a:b]) for a, b in zip(starts, ends)])


def merge_departures(x: np.ndarray, ends: list[int], is_normal: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Join neighbouring non-normal segments that depart from the baseline the same way.

    A regime is a contiguous run of slow (or fast) budgets; the detector may cut it where its level
    wanders (noise, or a factor that changes inside it), and the pieces, each narrower, would then be
    tested one by one with less power. Neighbours are joined when their levels (log ratios) have the
    same sign and differ by at most :data:`MERGE_SHARE` of the larger one (a 21x regime is not joined
    to a 1.2x wobble beside it). Returns the new ends and normal flags.
    """
    lev = levels(x, ends)
    out_ends: list[int] = []
    out_norm: list[bool] = []
    prev = 0.0
    for e, nrm, lv in zip(ends, is_normal, lev):
        similar = abs(lv - prev) <= MERGE_SHARE * max(abs(lv), abs(prev))
        if out_ends and not nrm and not out_norm[-1] and np.sign(lv) == np.sign(prev) != 0 and similar:
            out_ends[-1] = int(e)
            continue
        out_ends.append(int(e))
        out_norm.append(bool(nrm))
        prev = float(lv)
    return out_ends, np.array(out_norm, dtype=bool)


def group_levels(lev: np.ndarray, tol: float) -> np.ndarray:
    """Group segments whose levels agree: sorted levels are cut where two neighbours differ by more
    than ``tol`` (single linkage). Returns a group id per segment, 0 for the lowest group."""
    k = len(lev)
    group = np.zeros(k, dtype=int)
    if k <= 1:
        return group
    order = np.argsort(lev, kind="stable")
    g = 0
    for a, b in itertools.pairwise(order):
        if lev[b] - lev[a] > tol:
            g += 1
        group[b] = g
    return group


def boundary_intervals(
    Xb: np.ndarray, ends: list[int], level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Where each boundary lands when the data are resampled.

    Parameters
    ----------
    Xb
        ``(n_boot, n)`` resampled series (per-budget medians of resampled trials).
    ends
        Segment ends of the original detection (the last is ``n``).

    Returns
    -------
    lo, hi : numpy.ndarray
        For each boundary (segment start after the first), the ``level``
        percentile interval of its position, as indices of the first value of
        the new segment. Each boundary is re-estimated in the window between
        its neighbouring boundaries (the best single split there, l2 cost),
        keeping the others fixed.
    """
    starts = [0] + ends[:-1]
    nb = len(ends) - 1
    lo = np.zeros(nb, dtype=int)
    hi = np.zeros(nb, dtype=int)
    a_q = (1.0 - level) / 2.0
    for j in range(nb):
        a, c = starts[j], ends[j + 1]
        w = Xb[:, a:c]
        m = w.shape[1]
        if m < 2:
            lo[j] = hi[j] = ends[j]
            continue
        s1 = np.cumsum(w, axis=1)
        s2 = np.cumsum(w**2, axis=1)
        tau = np.arange(1, m)  # split after tau values
        left = s2[:, tau - 1] - s1[:, tau - 1] ** 2 / tau
        right = (s2[:, -1:] - s2[:, tau - 1]) - (s1[:, -1:] - s1[:, tau - 1]) ** 2 / (m - tau)
        pos = a + tau[np.argmin(left + right, axis=1)]
        lo[j], hi[j] = np.quantile(pos, [a_q, 1.0 - a_q], method="inverted_cdf")
    return lo, hi
