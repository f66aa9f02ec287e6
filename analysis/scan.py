"""The step scan: is a budget interval a discontinuity, or noise around a smooth curve?

Per series, on the log residuals ``E[b, t]`` of every run to a robust fit of
the baseline family to the *whole* series (any smooth monotone curve):

* Each budget's runs give a cell mean (:func:`cell_mean`), weighted by the
  square root of its share of runs (:func:`weights`). Every direction in
  which the smooth curve could move is projected out (:func:`tangent_basis`:
  a change of any of its coefficients, such as a larger intercept from a
  fixed per-run cost, and a slope in log units): with ``X`` those directions
  over the budgets with data and ``P = I - X X^+``, the means ``m`` become
  ``P m``. A
  step on the interval ``S`` (indicator ``c``) is estimated as
  ``delta = c'Pm / c'Pc`` and standardised as ``Z = c'Pm / sqrt(c'Pc)``:
  under budget-level white noise of scale ``s`` every interval's ``Z`` has
  sd ``s``, whatever its width or position. A smooth curve split in two gives
  a small ``Z``; a step gives a large one.
* The null distribution of the **largest** ``|Z|`` over every interval (the
  detector picked the interval, so the test must scan too) comes from two
  sources, and an interval must beat both:

  - *run level*: the runs of the series are permuted over its cells (budget x
    trial positions with data) and the means recomputed. This keeps the real
    shape of the run noise (heavy tails, a share of runs in a slow run-level
    state): with ``k`` trials, a cell whose ``k`` runs all landed in the slow
    state is as likely in the permutations as in the data, so it is not
    evidence of a regime. Needs at least 2 trials. From 3 trials, a segment
    beyond the critical ``|Z|`` of the noise alone enters the pool moved
    back by the part of its step beyond that value, so that a large regime's
    own runs do not make it look like noise (:func:`segment_p`).
  - *budget level*: Gaussian white noise with the robust scale of the
    budget-level residuals once the detected steps are removed (the
    budget-to-budget scatter, which also holds budget-level effects that run
    permutation destroys). With one trial this is the only test.

  The p-value is the tail share of the permutation maxima; where fewer than a
  few permutations reach the observed value, ten times more are drawn, and
  beyond those a Gumbel tail fitted to the maxima gives the p-value.
* The **minimum detectable ratio** of the series: the step over one budget
  (and over four budgets) that would reach the critical ``|Z|`` with 80 %
  power at level ``alpha``, with the noise of one interval taken from the
  permutations (heavy tails count).

Everything here is numpy for one series at a time; the caller seeds ``rng``
per series, so results do not depend on how series are blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _sps


__all__ = [
    "ScanNull", "budget_scatter", "critical", "interval_denominators", "mde", "prepare_null", "projector", "segment_p",
    "tangent_basis",
    "series_scan", "weights", "cell_mean",
    "step",
]

#: Permutations are processed in blocks of at most this many values (permutations x intervals).
_BLOCK_VALUES = 4_000_000
#: Below this many permutation maxima beyond the observed value, the p-value comes from a Gumbel tail fit.
_TAIL_COUNT = 10
#: A segment that few permutations reach gets this many times more before its p-value is read.
_MORE_PERM = 10
#: Widths (budgets) of the steps whose minimum detectable ratio is reported.
MDE_WIDTHS: tuple[int, ...] = (1, 4)
#: From this many trials on, a segment's own runs are moved back by the part of its step beyond the
#: critical ``|Z|`` before they are permuted (:func:`segment_p`). With two, a cell whose two runs both
#: landed in a slow run-level state is the very case the exact test guards against.
SHRINK_MIN_TRIALS = 3
#: Power for the minimum detectable ratio.
POWER = 0.8


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


def _interval_z(Pm: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``Z`` of every interval for a stack of projected series ``Pm`` (..., n) -> (..., n, n)."""
    S = np.concatenate([np.zeros(Pm.shape[:-1] + (1,)), np.cumsum(Pm, axis=-1)], axis=-1)
    sums = S[..., None, 1:] - S[..., :-1, None]  # [i, j] = sum_{i..j}
    return sums / np.sqrt(D)


def _max_abs(z: np.ndarray) -> np.ndarray:
    return np.nanmax(np.abs(z.reshape(z.shape[:-2] + (-1,))), axis=-1)


@dataclass(frozen=True)
class ScanNull:
    """The scan of one series (see :func:`prepare_null`)."""

    E: np.ndarray  # (n, trial) log residuals of the runs (NaN: missing)
    Praw: np.ndarray  # (n,) projected unweighted means (for the step estimate in log units)
    P: np.ndarray  # (n, n)
    D: np.ndarray  # (n, n) c'Pc of interval i..j
    Pm: np.ndarray  # (n,) projected weighted per-budget means (for Z)
    steps: np.ndarray  # (n,) fitted steps of the detected segments (0 elsewhere)
    segments: tuple[tuple[int, int], ...]  # index ranges (i, j) of the detected segments
    resid: np.ndarray  # (n,) Pm with those steps removed (noise only)
    run_max: np.ndarray | None  # (n_perm,) permutation maxima of |Z| of the runs as they are (None: < 2 trials)
    unit_max: np.ndarray  # (n_perm,) maxima of |Z| for unit Gaussian budget-level noise
    run_mid: dict[int, np.ndarray]  # width -> Z of the middle interval in each permutation
    n_perm: int
    seed: tuple[int, ...]
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # results derived once per series


def cell_mean(E: np.ndarray) -> np.ndarray:
    """Per cell (last axis: its runs), the mean of its runs, dropping the lowest and highest from 5 runs on.

    A mean, not a median: with three trials, a median is reached by any two of a regime's three runs
    that a permutation puts together, which caps the evidence one budget can give; the permutation
    null already accounts for heavy tails. From five runs the extremes are trimmed.
    """
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


def _middle(n: int, width: int) -> tuple[int, int]:
    """The interval of ``width`` budgets in the middle of ``n``."""
    w = min(width, max(n - 2, 1))
    i = (n - w) // 2
    return i, i + w - 1


def _run_maxima(E: np.ndarray, P: np.ndarray, D: np.ndarray, n_perm: int,
                rng: np.random.Generator) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    """Maxima of |Z| over every interval when the runs are permuted over the cells.

    Also returns, for the widths in :data:`MDE_WIDTHS`, the ``Z`` of the middle interval in each
    permutation (the noise of one interval, heavy tails and all, for the power calculation).
    """
    n, T = E.shape
    ok = np.isfinite(E)
    pool = E[ok]
    wt = weights(E)
    if T < 2 or pool.size <= n:
        return None, {}
    block = max(1, _BLOCK_VALUES // max(n * n, 1))
    maxima: list[np.ndarray] = []
    mids: dict[int, list[np.ndarray]] = {w: [] for w in MDE_WIDTHS}
    for a in range(0, n_perm, block):
        b = min(block, n_perm - a)
        perm = np.argsort(rng.random((b, pool.size)), axis=1)
        cells = np.full((b, n, T), np.nan)
        cells[:, ok] = pool[perm]
        mp = cell_mean(cells)
        z = _interval_z((np.where(np.isfinite(mp), mp, 0.0) * wt) @ P, D)
        maxima.append(_max_abs(z))
        for w in MDE_WIDTHS:
            i, j = _middle(n, w)
            mids[w].append(z[:, i, j])
    return np.concatenate(maxima), {w: np.concatenate(v) for w, v in mids.items()}


def prepare_null(
    E: np.ndarray,
    x: np.ndarray,
    n_perm: int,
    rng: np.random.Generator,
    segments: list[tuple[int, int]] = (),  # type: ignore[assignment]
    basis: np.ndarray | None = None,
) -> ScanNull:
    """Projector, interval denominators and the null distributions of one series.

    Parameters
    ----------
    E
        ``(n, trial)`` log residuals of the budgets with data (NaN: a missing run) to a robust fit of the
        baseline family to the whole series (not only to its normal regime: the question is whether the
        series departs from *any* smooth curve).
    x
        ``(n,)`` scaled budgets.
    n_perm
        Permutations (and Gaussian draws) for the null maxima.
    rng
        The series' random generator.
    segments
        Index ranges ``(i, j)`` of the detected non-normal segments. Their
        steps are fitted jointly (with the smooth misfit) and removed before
        the budget-level scatter is measured, so a wide regime does not
        inflate the scatter it is tested against; :func:`segment_p` also
        removes the *other* segments' steps from the runs it permutes.
    basis
        ``(n, k)`` smooth directions projected out (:func:`tangent_basis`); default ``[1, x]``.
    """
    n, T = E.shape
    P = projector(np.stack([np.ones_like(x), x], axis=1) if basis is None else basis)
    D = interval_denominators(P)
    m = cell_mean(E)
    m = np.where(np.isfinite(m), m, 0.0)
    wt = weights(E)
    Pm = P @ (m * wt)
    steps = np.zeros(n)
    if len(segments):
        C = np.zeros((n, len(segments)))
        for k, (i, j) in enumerate(segments):
            C[i : j + 1, k] = 1.0
        steps = C @ np.linalg.lstsq(P @ C, P @ m, rcond=None)[0]
    seed = tuple(int(v) for v in rng.integers(0, 2**31 - 1, size=2))
    run_max, mid = _run_maxima(E, P, D, n_perm, rng)
    unit = []
    block = max(1, _BLOCK_VALUES // max(n * n, 1))
    for a in range(0, n_perm, block):
        b = min(block, n_perm - a)
        g = rng.standard_normal((b, n))
        unit.append(_max_abs(_interval_z(g @ P, D)))
    return ScanNull(E=E, Praw=P @ m, P=P, D=D, Pm=Pm, steps=steps, segments=tuple((int(i), int(j)) for i, j in segments),
                    resid=P @ ((m - steps) * wt),
                    run_max=run_max,
                    unit_max=np.concatenate(unit), run_mid=mid, n_perm=n_perm, seed=seed)


def _tail_p(maxima: np.ndarray, z: float) -> float:
    """Share of null maxima >= z, with a Gumbel tail (method of moments) where fewer than a few exceed it."""
    n = maxima.size
    k = int(np.sum(maxima >= z))
    if k >= _TAIL_COUNT:
        return (1.0 + k) / (1.0 + n)
    mu, sd = float(np.mean(maxima)), float(np.std(maxima, ddof=1))
    if not np.isfinite(sd) or sd <= 0:
        return (1.0 + k) / (1.0 + n)
    scale = sd * np.sqrt(6.0) / np.pi
    loc = mu - np.euler_gamma * scale
    return float(min((1.0 + k) / (1.0 + n), _sps.gumbel_r.sf(z, loc=loc, scale=scale)))


def budget_scatter(null: ScanNull) -> float:
    """Robust scale of budget-level white noise: MAD of the noise-only residuals, leverage-corrected."""
    lev = np.clip(np.diag(null.P), 1e-6, None)
    return float(_sps.median_abs_deviation(null.resid / np.sqrt(lev), scale="normal"))


def step(null: ScanNull, i: int, j: int) -> tuple[float, float]:
    """``(delta, Z)`` of the interval ``i..j``: step estimate (log units) and its standardised size."""
    d = null.D[i, j]
    if not np.isfinite(d):
        return np.nan, 0.0
    return float(null.Praw[i : j + 1].sum()) / d, float(null.Pm[i : j + 1].sum()) / np.sqrt(d)


def segment_p(null: ScanNull, i: int, j: int, floor: float, alpha: float = 0.05) -> tuple[float, float, float]:
    """p-value of a step on ``i..j`` against both nulls: ``(p, p_run, p_scatter)``, ``p = max`` of the two.

    The runs are permuted as they are, with two exceptions, each moving runs back by the part of a step
    beyond a critical ``|Z|`` (:func:`critical` at ``alpha``):

    * another detected segment of the series whose ``|Z|`` is beyond the scan's own critical value (the
      runs as they are: it is significant by itself) is not part of this segment's noise. The detector's
      spurious segments stay in the pool: removing them whole, as before, made the pool thinner than the
      noise (docs/methods.md).
    * with :data:`SHRINK_MIN_TRIALS` or more trials, the segment's own runs, beyond the critical value
      of the noise alone: left as they are, the runs of a large regime (x5 or x21 over a few budgets)
      fill the permutations with cells as extreme as the regime and make it look like noise, most of
      all near an edge of the sweep, where the projection takes part of its step. A step within the
      critical value keeps its runs as they are, so the test stays exact where it decides at
      ``alpha``.

    ``floor`` bounds the budget-level scatter from below (the per-budget noise), so a series
    whose budgets happen to line up perfectly does not make every step significant.
    """
    delta, z = step(null, i, j)
    z = abs(z)
    s = max(budget_scatter(null), floor)
    p_scatter = _tail_p(null.unit_max * s, z)
    p_run = np.nan
    if null.run_max is not None:
        # a step beyond what the noise reaches is not noise: the runs of another detected segment that is
        # significant by itself are moved back by the part of its step beyond the critical |Z| of the scan,
        # and so are the segment's own (from SHRINK_MIN_TRIALS trials) beyond the critical |Z| of the noise
        # alone; a step within it stays in the pool as it is
        others = np.zeros_like(null.steps)
        if null.segments:
            c_other = critical(null, alpha, floor, noise_only=False)  # another segment significant by itself
            for a, b in null.segments:
                if (a, b) == (i, j):
                    continue
                za = abs(step(null, a, b)[1])
                if za > c_other:
                    others[a : b + 1] = null.steps[a : b + 1] * (1.0 - c_other / za)
        others[i : j + 1] = 0.0
        if null.E.shape[1] >= SHRINK_MIN_TRIALS and np.isfinite(delta):
            c = critical(null, alpha, floor)
            if z > c:
                others[i : j + 1] = delta * (1.0 - c / z)
        runs = null.E - others[:, None]
        rng = np.random.default_rng(list(null.seed) + [i, j])
        if np.any(others != 0):  # other regimes of the series are not part of this segment's noise
            maxima = _run_maxima(runs, null.P, null.D, null.n_perm, rng)[0]
        else:
            maxima = null.run_max
        if maxima is not None and np.sum(maxima >= z) < _TAIL_COUNT:
            # few permutations reach it: draw more before trusting the tail (sequential Monte Carlo)
            more = _run_maxima(runs, null.P, null.D, (_MORE_PERM - 1) * null.n_perm, rng)[0]
            maxima = np.concatenate([maxima, more]) if more is not None else maxima
        p_run = _tail_p(maxima, z) if maxima is not None else np.nan
    p = p_scatter if not np.isfinite(p_run) else max(p_run, p_scatter)
    return float(p), float(p_run), float(p_scatter)


def _noise_only(null: ScanNull) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    """Run-permutation maxima and middle-interval Z with every detected step removed (the noise alone)."""
    if null.run_max is None or not np.any(null.steps != 0):
        return null.run_max, null.run_mid
    if "noise_only" not in null.memo:
        rng = np.random.default_rng(list(null.seed) + [-1 & 0x7FFFFFFF])
        null.memo["noise_only"] = _run_maxima(null.E - null.steps[:, None], null.P, null.D, null.n_perm, rng)
    return null.memo["noise_only"]


def critical(null: ScanNull, alpha: float, floor: float, noise_only: bool = True) -> float:
    """The critical ``|Z|`` at level ``alpha``: the larger of the two nulls' quantiles.

    ``noise_only``: the run permutations with every detected step removed (the noise alone, as for
    :func:`mde`); otherwise with the runs as they are (the scan's own test: a segment beyond it is
    significant at ``alpha`` by itself).
    """
    s = max(budget_scatter(null), floor)
    c = float(np.quantile(null.unit_max * s, 1.0 - alpha))
    run_max = _noise_only(null)[0] if noise_only else null.run_max
    if run_max is not None:
        c = max(c, float(np.quantile(run_max, 1.0 - alpha)))
    return c


def mde(null: ScanNull, alpha: float, floor: float, width: int = 1) -> float:
    """Minimum detectable ratio of a step over ``width`` budgets (one of :data:`MDE_WIDTHS`) mid-series.

    The step ``delta`` whose ``Z = delta * sqrt(c'Pc) + noise`` exceeds the critical value with 80 %
    probability, the noise of one interval's ``Z`` taken from the run permutations (so heavy tails and
    run-level states count) or from Gaussian budget-level scatter, whichever needs the larger step.
    Returned as a ratio ``exp(delta)``; NaN when the series is too short.
    """
    n = null.Pm.size
    if n < 3:
        return np.nan
    i, j = _middle(n, width)
    d = null.D[i, j]
    if not np.isfinite(d):
        return np.nan
    s = max(budget_scatter(null), floor)
    margin = _sps.norm.ppf(POWER) * s
    mid = _noise_only(null)[1].get(width)
    if mid is not None and mid.size:
        margin = max(margin, -float(np.quantile(mid, 1.0 - POWER)))
    delta = (critical(null, alpha, floor) + margin) / np.sqrt(d)
    with np.errstate(over="ignore"):  # inf: no ratio could be seen at this noise
        return float(np.exp(delta))


def series_scan(null: ScanNull, alpha: float, floor: float) -> tuple[float, float, float, float]:
    """Per series: ``(p, mde_1, mde_4, scatter)``.

    ``p`` is the scan p-value of the strongest interval (the answer to "is there any step at all?",
    uniform under the null: the calibration check uses it), ``mde_1`` / ``mde_4`` the minimum detectable
    ratios over one and four budgets, ``scatter`` the robust budget-level scatter.
    """
    z = np.abs(_interval_z(null.Pm, null.D))
    if not np.isfinite(z).any():
        return np.nan, np.nan, np.nan, np.nan
    i, j = np.unravel_index(int(np.nanargmax(z)), z.shape)
    p = segment_p(null, int(i), int(j), floor, alpha)[0]
    return p, mde(null, alpha, floor, 1), mde(null, alpha, floor, 4), budget_scatter(null)
