"""One inference procedure for regimes along the budget axis: a step-down max-|Z| scan.

Per series, on the log residuals ``E[b, t]`` of every run to a robust smooth fit
of the baseline family (see :mod:`analysis.detect.scan` for the statistic ``Z`` of an
interval: a step against any smooth curve, projected so that a change of the
curve's coefficients is not a step):

1. **Null model** (the reduced model, Freedman and Lane 1983): cell means are
   the smooth curve plus noise at two levels, runs within a cell and cells
   (a state shared by a cell's runs: a slow host period, a process-local cell
   effect). A null draw permutes the series' runs over its cells (the real
   run distribution: heavy tails, slow run states, several slow runs landing
   in one cell; the runs of a candidate interval of at most a third of the
   budgets enter the pool less the level all of them share, so that a regime's own level does not make
   it look like noise while a slow run among them stays) and
   adds a Gaussian cell level making up the series' budget-level variance:
   the Qn scale of the successive differences of its cell means
   (:func:`budget_scale`), moderated towards the scale of the other series
   of its origin (empirical Bayes, Smyth 2004; never below the series' own).
   With one trial only the cell level exists. The statistic is
   *studentized*: the largest ``|Z|`` over the scale of the cells outside its
   interval (a narrow one), in the data and in every null draw alike, so the
   null holds the uncertainty of a scale read off a few budgets.
2. **Test of "a step anywhere"**: the largest ``|Z|`` over every interval
   against the maxima of the null draws (a max-T test: the interval is chosen
   by the data, so the null scans too). Monte Carlo p-values are sequential
   (Besag and Clifford 1991): draws stop once :data:`HITS` maxima reach the
   observed one; otherwise ``(hits + 1) / (draws + 1)`` (never below
   ``1 / (n_max + 1)``: no p-value is smaller than the draws support). The
   scan is two-sided whatever direction the caller reports: a large step the
   other way must join the reduced model, or the projection would show its
   mirror image as a step this way.
3. **Step-down** (Westfall and Young 1993): the strongest interval rejected,
   its step joins the reduced model (its runs are moved back by the fitted
   step) and the scan is repeated over the intervals disjoint from those
   already rejected; adjusted p-values are made monotone. Within a series the
   family-wise error rate of the rejected intervals is controlled at the level
   used (approximately: the reduced model is estimated, as in every
   Freedman-Lane test).
4. Across series (in :func:`analysis.regimes.regimes`): Benjamini-Hochberg on
   the series' first-step p-values, and within the ``R`` selected series of
   ``m`` the step-down at level ``alpha R / m`` (Benjamini and Bogomolov 2014).
5. **Effects and CIs**: the steps of the rejected intervals are fitted jointly
   (least squares on the projected cell means); their standard error comes
   from the moderated budget-level scale (every level of noise a cell mean
   carries), with a t quantile on the moderated degrees of freedom.
6. **Power by simulation through the decision rule**: steps of a given ratio
   planted into the null draws (noise only: every rejected step removed) at
   interior positions; found when the scan rejects at the level a regime alone
   among the origin's series faces (``alpha / m``), its strongest interval
   covers at least half the planted budgets and its step is at least
   ``min_effect`` in the reported direction. ``mde`` is the ratio found with
   80 % power (a bracketing search, :func:`_mde`); ``power`` the share found at :data:`POWER_RATIOS`.

Everything is numpy for one series at a time; the caller seeds ``rng`` by the
series' coordinates, so a series' answer depends on its own runs and its
origin's noise only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special as _special
from scipy import stats as _sps

from analysis.detect import scan as _scan

__all__ = [
    "HITS", "MAX_STEPS", "MDE_WIDTHS", "POWER", "POWER_RATIOS", "Result", "budget_scale", "moderate", "prior",
    "test_series",
]

#: Besag-Clifford: Monte Carlo draws stop once this many null maxima reach the observed value.
HITS = 10
#: Most regimes tested in one series (step-down steps).
MAX_STEPS = 8
#: Widths (budgets) of the steps whose minimum detectable ratio is reported (``mde``, ``mde_4``).
MDE_WIDTHS: tuple[int, ...] = (1, 4)
#: Widest step, as a share of the series' budgets, whose minimum detectable ratio is stated (``mde_4``: 12 budgets).
MAX_SHARE = 1.0 / 3.0
#: Power for the minimum detectable ratio.
POWER = 0.8
#: Ratios of a one-budget step at which the power curve is reported.
POWER_RATIOS: tuple[float, ...] = (1.1, 1.2, 1.5, 2.0, 3.0, 5.0)
#: Null draws used for the power simulation.
_POWER_DRAWS = 200
#: Most null maxima drawn for the critical value of the power simulation (a Gumbel fit beyond).
_CRIT_DRAWS = 1000
#: Most step positions tried per width in the power simulation (evenly spread over the interior).
_POWER_POSITIONS = 4
#: Chi-square quantile (2 df, 95 %) of the profile-likelihood confidence set of a regime's boundaries.
_CHI2_2 = float(_sps.chi2.ppf(0.95, 2))
#: Largest log ratio searched for the minimum detectable ratio (x1000); beyond: not detectable (inf).
_MAX_LOG = math.log(1000.0)
#: Precision of the minimum detectable ratio (log units: 0.5 % in ratio, below the Monte Carlo error of a power
#: estimated from 200 draws at 4 positions).
_MDE_TOL = math.log(1.005)


#: Qn's consistency constant at the normal distribution, ``1 / (sqrt 2 * Phi^-1(5/8))`` (Rousseeuw and Croux 1993).
_QN = float(1.0 / (math.sqrt(2.0) * _sps.norm.ppf(5.0 / 8.0)))
#: Gaussian rows simulated (once per length, seeded) for the small-sample factors of :func:`budget_scale`.
_CALIBRATION_ROWS = 20_000
#: Most interval statistics held at once by a scan of null draws (memory: 8 bytes each, a few copies).
_SCAN_CELLS = 8_000_000
#: Most pairwise distances held at once while simulating them (memory).
_CALIBRATION_CHUNK = 4_000_000
#: Longest series whose small-sample factors are simulated; longer ones follow the large-sample laws.
_SIMULATED_LENGTH = 64


def _diff_scale(m: np.ndarray) -> np.ndarray:
    """:func:`budget_scale`'s scale for each row of ``m`` (rows without NaN), vectorised: Qn of the successive
    differences (the ``C(h, 2)``-th smallest of their pairwise distances, ``h = n // 2 + 1``), over sqrt 2."""
    # the pairwise distances in single precision (a relative error of 1e-7 in a scale; a sixth of the time of
    # the double-precision partition, which is most of the null draws' cost)
    d = (m[..., 1:] - m[..., :-1]).astype(np.float32)
    i, j, k = _pairs(d.shape[-1])
    pair = np.abs(d[..., i] - d[..., j])
    return _QN / math.sqrt(2.0) * np.partition(pair, k - 1, axis=-1)[..., k - 1].astype(float)


@functools.lru_cache(maxsize=None)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Index pairs ``i < j`` of ``n`` values and Qn's order statistic ``C(n // 2 + 1, 2)``."""
    i, j = np.triu_indices(n, 1)
    h = n // 2 + 1
    return i, j, h * (h - 1) // 2


def _loo_scale(m: np.ndarray, lo: np.ndarray, hi: np.ndarray, prior_s2: float, prior_df: float) -> np.ndarray:
    """Per row of weighted cell means ``m`` (k, n), the moderated budget-level scale without the cells
    ``lo..hi`` of that row (its strongest interval): :func:`budget_scale` then :func:`moderate`, vectorised
    over rows with different lengths. Only a narrow interval (at most a quarter of the cells, and 3 cells
    left) is left out: a wide one would leave too few cells for a stable scale (a scale from five cells is
    sometimes near zero, and the studentized null's tail would swallow every large regime)."""
    k, n = m.shape
    idx = np.arange(n)[None, :]
    out = (idx >= lo[:, None]) & (idx <= hi[:, None])
    width = hi - lo + 1
    out &= ((width <= max(1, n // 4)) & (n - width >= 3))[:, None]
    # the kept cells of each row, in order, packed to the left (NaN after)
    order = np.argsort(out, axis=1, kind="stable")
    packed = np.take_along_axis(np.where(out, np.nan, m), order, axis=1)
    counts = n - out.sum(axis=1)
    scale = np.empty(k)
    for c in np.unique(counts):
        rows = counts == c
        bias, df = _small_sample(int(c))
        scale[rows] = np.sqrt(moderate(_diff_scale(packed[rows, :c]) ** 2 / bias, df, prior_s2, prior_df)[0])
    return np.maximum(scale, 1e-300)


def budget_scale(m: np.ndarray) -> tuple[float, float]:
    """Robust scale of budget-level noise from successive differences, and its degrees of freedom.

    ``m`` holds the cell means' residuals to the smooth curve (weighted, every fitted step removed), in budget
    order. The scale is the Qn estimator (Rousseeuw and Croux 1993; 50 % breakdown, about 80 % Gaussian
    efficiency) of the successive differences over sqrt 2: a robust form of von Neumann's successive-
    difference estimator. A regime of any width moves only the two differences at its edges, so it barely
    widens the noise it is tested against, and a smooth misfit of the curve cancels. Its small-sample bias is
    removed, and its degrees of freedom are those of a chi-square of the same relative variance (both
    simulated once per length, :func:`_small_sample`; about 0.46 per difference at 16 budgets).
    """
    v = m[np.isfinite(m)]
    if v.size < 3:
        return float("nan"), 0.0
    bias, df = _small_sample(v.size)
    return float(_diff_scale(v[None])[0]) / math.sqrt(bias), df


@functools.lru_cache(maxsize=None)
def _small_sample(n: int) -> tuple[float, float]:
    """For ``n`` values, the mean of the squared raw scale of white unit noise (its bias, removed) and its
    degrees of freedom ``2 E(s^2)^2 / Var(s^2)`` (so that ``s^2 df / E(s^2)`` is about chi-square), by
    simulation (seeded: the same numbers every time), as Rousseeuw and Croux's small-sample factors were.

    Beyond :data:`_SIMULATED_LENGTH` values both follow their large-sample laws from there: the bias decays as
    ``1 / n`` and the degrees of freedom grow in proportion to the differences (simulated: bias - 1 times n
    5.1-5.5 and 0.54 degrees of freedom a difference at 100 and 200 values, 2000 rows each)."""
    if n > _SIMULATED_LENGTH:
        bias, df = _small_sample(_SIMULATED_LENGTH)
        return 1.0 + (bias - 1.0) * _SIMULATED_LENGTH / n, df * (n - 1) / (_SIMULATED_LENGTH - 1)
    rng = np.random.default_rng([0x5CA1E, n])
    # drawn in chunks of bounded memory (the same numbers as one draw: the generator fills rows in order)
    chunk = max(1, _CALIBRATION_CHUNK // max((n - 1) * (n - 2) // 2, 1))
    s2 = np.concatenate([_diff_scale(rng.standard_normal((min(chunk, _CALIBRATION_ROWS - i), n))) ** 2
                         for i in range(0, _CALIBRATION_ROWS, chunk)])
    mean = float(s2.mean())
    return mean, float(max(1.0, 2.0 * mean**2 / float(s2.var())))


def prior(s2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior variance and prior degrees of freedom of a group of series (Smyth 2004, ``fitFDist``).

    ``log s2`` of the series, corrected for their degrees of freedom, give by the
    method of moments the prior ``s0^2`` and ``d0``: the more alike the series'
    scales beyond their sampling noise, the larger ``d0``. Fewer than three
    usable series, or series whose scales vary more than their degrees of
    freedom allow, give ``d0 = 0`` (no moderation); a group whose scales
    vary less than sampling alone gives a large ``d0`` (capped at 1000).
    """
    s2 = np.asarray(s2, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = np.isfinite(s2) & (s2 > 0) & np.isfinite(df) & (df > 0)
    if ok.sum() < 3:
        return float("nan"), 0.0
    s2, df = s2[ok], df[ok]
    e = np.log(s2) - _special.digamma(df / 2) + np.log(df / 2)
    emean = float(np.mean(e))
    evar = float(np.var(e, ddof=1)) - float(np.mean(_special.polygamma(1, df / 2)))
    if evar <= 0:
        d0 = 1000.0
    else:
        d0 = 2.0 * _trigamma_inverse(evar)
        d0 = float(min(d0, 1000.0))
    s02 = float(np.exp(emean + _special.digamma(d0 / 2) - np.log(d0 / 2)))
    return s02, d0


def _trigamma_inverse(y: float) -> float:
    """``x`` with ``trigamma(x) = y`` (Newton's method, Smyth 2004's starting point)."""
    if y > 1e7:
        return 1.0 / math.sqrt(y)
    if y < 1e-6:
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(50):
        tri = float(_special.polygamma(1, x))
        dif = tri * (1 - tri / y) / float(_special.polygamma(2, x))
        x += dif
        if -dif / x < 1e-8:
            break
    return x


#: Below these degrees of freedom (about 6 budgets) a series' own scale is not used: one regime moves most of
#: its few differences, so its origin's scale stands in for it.
MIN_OWN_DF = 1.5


def moderate(s2: float | np.ndarray, df: float, s02: float, d0: float) -> tuple[float | np.ndarray, float]:
    """Moderated variance and its degrees of freedom: ``(d0 s0^2 + df s^2) / (d0 + df)`` on ``d0 + df``, never
    below the series' own ``s^2`` (pooling may only widen a series' noise: a short series that happens to
    line up is not precise, a noisy one stays noisy). A series with fewer than :data:`MIN_OWN_DF` degrees of
    freedom of its own (or no scale) takes its origin's ``s0^2`` on ``d0``. ``s2`` may be an array of
    variances on the same ``df`` (the rows of null draws)."""
    if not (np.isfinite(s02) and d0 > 0):
        return s2, df
    if df < MIN_OWN_DF:
        return (np.full_like(s2, s02) if np.ndim(s2) else s02), d0
    pooled = np.where(np.isfinite(s2), np.maximum((d0 * s02 + df * s2) / (d0 + df), s2), s02)
    return (float(pooled) if np.ndim(pooled) == 0 else pooled), d0 + df


@dataclass
class Result:
    """The inference on one series (indices are positions among the budgets with data)."""

    p_series: float = np.nan
    intervals: list[tuple[int, int]] = field(default_factory=list)
    p_adjusted: list[float] = field(default_factory=list)
    effect: list[float] = field(default_factory=list)  # log step, fitted jointly
    se: list[float] = field(default_factory=list)
    bounds: list[tuple[int, int, int, int]] = field(default_factory=list)  # start_lo, start_hi, end_lo, end_hi
    scale: float = np.nan  # moderated sd of a cell mean around the smooth curve (log units)
    scale_own: float = np.nan  # the series' own budget-level scale
    df: float = 0.0
    mde: dict[int, float] = field(default_factory=dict)
    power: list[float] = field(default_factory=list)


class _Scan:
    """The projected scan of one series and its null draws."""

    def __init__(self, E: np.ndarray, basis: np.ndarray, rng: np.random.Generator):
        self.n, self.T = E.shape
        # generalised least squares in the whitened cell means m w (w = sqrt(n_b / n_max): each of them has the
        # noise of n_max runs): the smooth directions and a step on an interval are whitened alike, so a step
        # of a cell with a missing run is a step of w, and the interval that fits it best is its own
        self.w = _scan.weights(E)
        self.P = _scan.projector(basis * self.w[:, None])
        self.D = _scan.interval_denominators(self.w[:, None] * self.P * self.w[None, :])
        # the intervals with a step direction (finite D), flattened in row-major order (``flat`` into ``n * n``):
        # the null draws are scanned over these only
        self.flat = np.flatnonzero(np.isfinite(self.D))
        self.first, self.last = np.divmod(self.flat, self.n)
        self.root_d = np.sqrt(self.D.ravel()[self.flat])
        self.rng = rng
        self.ok = np.isfinite(E)
        self.floor = 0.0  # the stated noise of a cell mean: no scale below it (test_series)
        # the run level: the series' runs (the test takes the level the candidate interval's runs share out
        # of them, so that a regime's level, put together again by a permutation, does not make it look like
        # noise)
        self.set_pool(E)

    def set_pool(self, E: np.ndarray, exclude: tuple[int, int] | None = None) -> None:
        """The run level's pool: the runs (residuals to the reduced model) of every cell, those of the
        candidate interval ``exclude`` less the level all of them share (residuals of the full model, ter Braak
        1992, with the candidate's step estimated by its smallest run for a step up, its largest for a step
        down): a regime's level leaves the pool, while one or two slow runs that made a cell extreme stay in
        it whole, as the noise they may be (centring them on their mean kept 0.71 of a slow run of two, and
        the shuffled null rejected 0.077 of the time at 0.05 with 2 trials, 0.081 with 3; now 0.05 / 0.069)."""
        keep = self.ok.copy()
        pool = E
        if exclude is not None and keep.shape[0] - (exclude[1] - exclude[0] + 1) >= 3:
            a, b = exclude[0], exclude[1] + 1
            inside = E[a:b][self.ok[a:b]]
            pool = E.copy()
            if inside.size >= 2:
                pool[a:b] = E[a:b] - (inside.min() if inside.mean() >= 0 else inside.max())
            else:
                keep[a:b] = False
        self.pool = pool[keep]
        self.permutable = self.T >= 2 and self.pool.size > keep.any(axis=1).sum()
        self._s_run = self._run_scale() if self.permutable else 0.0

    def means(self, E: np.ndarray) -> np.ndarray:
        """Weighted cell means (NaN: no data)."""
        return _scan.cell_mean(E) * self.w

    def projected(self, E: np.ndarray) -> np.ndarray:
        """``P`` times the whitened cell means of ``E``."""
        m = _scan.cell_mean(E)
        m = np.where(np.isfinite(m), m, 0.0)
        return self.P @ (m * self.w)

    def z(self, Pm: np.ndarray) -> np.ndarray:
        """``Z`` of every interval (its whitened indicator ``c w``) for projected whitened means ``Pm``."""
        return _scan.interval_z(Pm * self.w, self.D)

    def z_flat(self, Pm: np.ndarray) -> np.ndarray:
        """:meth:`z` of the intervals ``flat`` only: (..., n) -> (..., len(flat))."""
        return _scan.interval_z_flat(Pm * self.w, self.first, self.last, self.root_d)

    def _run_part(self, k: int) -> np.ndarray:
        """``k`` draws of the cell means' run-level noise: the pool's runs permuted over the runs (drawn again
        where the pool is smaller than the series)."""
        need = int(self.ok.sum())
        reps = -(-need // self.pool.size)
        pool = np.broadcast_to(np.tile(self.pool, reps), (k, reps * self.pool.size))
        runs = self.rng.permuted(pool, axis=1)[:, :need]
        if need == self.ok.size:  # every run present: the cells are the runs in order
            mp = _scan.cell_mean(runs.reshape(k, self.n, self.T))
        else:
            cells = np.full((k, self.n, self.T), np.nan)
            cells[:, self.ok] = runs
            mp = _scan.cell_mean(cells)
        return np.where(np.isfinite(mp), mp, 0.0)

    def _run_scale(self) -> float:
        """Budget-level scale of the run level alone (0 with one trial)."""
        g = (self._run_part(100) * self.w) @ self.P
        lev = np.clip(np.diag(self.P), 1e-6, None)
        okl = lev > 1e-3
        return float(_sps.median_abs_deviation((g[:, okl] / np.sqrt(lev[okl])).ravel(), scale="normal"))

    def draws(self, k: int, s2: float) -> np.ndarray:
        """``k`` null rows of weighted cell means with budget-level variance ``s2``: the run level (the pool's
        runs permuted over the cells) plus a Gaussian cell level making up the rest (project them with ``@ P``).
        """
        mp = self._run_part(k) if self.permutable else np.zeros((k, self.n))
        v_add = max(s2 - self._s_run**2, 0.0) if np.isfinite(s2) else 0.0
        if v_add > 0:
            mp = mp + self.rng.standard_normal((k, self.n)) * math.sqrt(v_add)
        return mp * self.w


def _student_max(sc: "_Scan", g: np.ndarray, allowed: np.ndarray, prior_s2: float, prior_df: float,
                 Z: np.ndarray | None = None) -> np.ndarray:
    """Per row of null cell means ``g`` (k, n): the largest ``|Z|`` over the allowed intervals (an ``(n, n)``
    mask within ``isfinite(sc.D)``) over the row's own scale without that interval (:func:`_loo_scale`).
    ``Z`` (k, len(sc.flat)): the rows' :meth:`_Scan.z_flat` if known."""
    if Z is None:
        rows = max(1, _SCAN_CELLS // max(sc.flat.size, 1))
        if g.shape[0] > rows:  # long series: the (rows, intervals) scan in chunks of bounded memory
            return np.concatenate([_student_max(sc, g[i:i + rows], allowed, prior_s2, prior_df)
                                   for i in range(0, g.shape[0], rows)])
        Z = sc.z_flat(g @ sc.P)
    a = np.abs(Z)
    keep = allowed.ravel()[sc.flat]
    if not keep.all():
        a = np.where(keep, a, 0.0)
    arg = a.argmax(axis=1)
    return a[np.arange(g.shape[0]), arg] / np.maximum(
        _loo_scale(g, sc.first[arg], sc.last[arg], prior_s2, prior_df), sc.floor)


def _sequential_p(obs: float, draw_max, batch: int, n_max: int) -> float:
    """Besag-Clifford sequential Monte Carlo p-value of ``obs`` against maxima drawn ``batch`` at a time."""
    hits = 0
    n = 0
    while n < n_max:
        k = min(batch, n_max - n)
        hits += int(np.sum(draw_max(k) >= obs))
        n += k
        if hits >= HITS:
            return hits / n
    return (hits + 1) / (n + 1)


def test_series(
    E: np.ndarray,
    basis: np.ndarray,
    rng: np.random.Generator,
    *,
    prior_s2: float = float("nan"),
    prior_df: float = 0.0,
    alpha: float = 0.05,
    min_log: float = 0.0,
    n_perm: int = 200,
    max_draws: int | None = None,
    power_level: float | None = None,
    sign: int = 1,
    floor: float = 0.0,
) -> Result:
    """The step-down scan of one series.

    Parameters
    ----------
    E
        ``(n, trial)`` log residuals of the runs of the budgets with data to the smooth reference (NaN: a
        missing run).
    basis
        ``(n, k)`` smooth directions projected out (:func:`analysis.detect.scan.tangent_basis`).
    rng
        The series' generator (seeded by its coordinates).
    prior_s2, prior_df
        The origin's prior for the budget-level variance (:func:`prior`; NaN / 0: none).
    alpha
        The within-series level of the step-down (the caller keeps, per series, the prefix of intervals
        whose adjusted p-value passes its own, smaller, level).
    min_log
        ``log(1 + min_effect)``: a regime's step must be at least this large (in the power simulation too).
    n_perm
        Null draws per batch of the sequential p-value (and for the power simulation).
    max_draws
        Most draws for one p-value (default ``10 * n_perm``).
    sign
        The direction of a regime: +1 a step up (a slowdown: the default for latency), -1 a step down, 0
        either way. The scan is two-sided whatever it is (a large step the other way must join the reduced
        model, or the projection would show its mirror image as a step this way); only the power simulation
        (which steps are planted and found) and the caller's report depend on it.
    power_level
        The level at which the power simulation decides (default ``alpha``); the caller passes the level a
        regime alone among its dataset's series would face (``alpha / m`` after the correction across series).
    floor
        The smallest noise of a cell mean the series' own measurements state (log units; 0: none): the
        spread each value was averaged over, where a file keeps it (``stated_sd`` of
        :func:`analysis.regimes.regimes`). Every scale the test, the null draws, the effects and the power
        use is at least this, so no p-value is smaller than the stated run-to-run noise supports.
    """
    res = Result()
    n, T = E.shape
    if n < 3:
        return res
    # independent streams for the run-level scale, the p-values and the power simulation: how many draws a
    # p-value took must not move the power's draws (a last-digit difference of the data would change them)
    rng_scale, rng_p, rng_power = rng.spawn(3)
    sc = _Scan(E, basis, rng_scale)
    sc.floor = max(float(floor), 0.0) if np.isfinite(floor) else 0.0
    if not np.isfinite(sc.D).any():
        return res
    sc.rng = rng_p
    n_max = int(max_draws or 10 * n_perm)
    allowed = np.isfinite(sc.D)
    # after the first rejection, a further interval must leave outside every step at least k + 1 budgets
    # (k: the smooth curve's directions): then no combination of the steps lies in the curve's span and the
    # joint model of the steps is identified (a polynomial of k terms vanishing at k points is zero), with one
    # degree of freedom to spare. Without it the steps absorb the curve's level: on an 8-budget null series
    # three rejections covered every budget and their joint effects came out x2.5e7
    lo, hi = np.arange(n)[:, None], np.arange(n)[None, :]
    width = hi - lo + 1
    need = basis.shape[1] + 1
    normal = n
    steps = np.zeros(n)
    cur = E
    p_prev = 0.0
    s2, df = np.nan, 0.0
    for _ in range(MAX_STEPS):
        # the reduced model: the smooth curve and the steps rejected so far
        z = sc.z(sc.projected(cur))
        if res.intervals:
            allowed = allowed & (normal - width >= need)
        za = np.where(allowed, np.abs(np.nan_to_num(z, nan=0.0)), 0.0)
        if not np.any(za > 0):
            break
        i, j = np.unravel_index(int(np.argmax(za)), za.shape)
        # studentized: the strongest step over the budget-level scale of the other cells (a regime does not
        # widen the noise it is tested against), moderated; every null draw is studentized the same way (its
        # own strongest interval left out), so the null holds the scale's uncertainty and the leave-out's bias
        means = np.nan_to_num(sc.means(cur))
        scale = max(float(_loo_scale(means[None], np.array([i]), np.array([j]), prior_s2, prior_df)[0]), sc.floor)
        sc.set_pool(cur, (int(i), int(j)) if (j - i + 1) <= max(1.0, MAX_SHARE * n) else None)
        obs = float(za[i, j]) / scale
        keep = np.ones(n, dtype=bool)
        keep[i : j + 1] = False
        s_own, df_own = budget_scale(sc.means(cur)[keep] if keep.sum() >= 3 else sc.means(cur))
        if not res.intervals:
            res.scale_own = s_own
        s2, df = moderate(s_own**2, df_own, prior_s2, prior_df)
        s2 = max(s2, sc.floor**2)
        mask = allowed

        def draw_max(k: int, s2=s2, mask=mask) -> np.ndarray:
            return _student_max(sc, sc.draws(k, s2), mask, prior_s2, prior_df)

        p = max(_sequential_p(obs, draw_max, n_perm, n_max), p_prev)
        if not res.intervals:
            res.p_series = p
        if p > alpha:
            break
        p_prev = p
        res.intervals.append((int(i), int(j)))
        res.p_adjusted.append(p)
        normal -= j - i + 1
        # the step joins the reduced model: its runs move back by the fitted (least-squares) step
        delta = float((sc.w * sc.projected(cur))[i : j + 1].sum()) / float(sc.D[i, j])
        steps[i : j + 1] += delta
        cur = E - steps[:, None]
        # only intervals disjoint from every rejected one stay in the scan
        allowed = allowed & ((hi < i) | (lo > j))
    # the noise alone (every rejected step removed): scale, effects, boundaries, power
    _noise_alone(sc, cur, res, prior_s2, prior_df)
    if res.intervals:
        _effects(sc, E, res)
    sc.rng = rng_power
    sc.set_pool(cur)
    if np.isfinite(res.scale) and res.scale > 0:
        _power(sc, res, level=alpha if power_level is None else power_level, min_log=min_log, sign=sign,
               prior=(prior_s2, prior_df))
    return res


def _noise_alone(sc: _Scan, cur: np.ndarray, res: Result, prior_s2: float, prior_df: float) -> None:
    """``res.scale`` and ``res.df`` from the runs ``cur`` with every rejected step removed (moderated, never
    below the stated floor); ``res.scale_own`` too where the scan never set it."""
    s_own, df_own = budget_scale(sc.means(cur))
    s2, df = moderate(s_own**2, df_own, prior_s2, prior_df)
    s2 = max(s2, sc.floor**2) if np.isfinite(s2) else (sc.floor**2 if sc.floor > 0 else s2)
    if not np.isfinite(res.scale_own):
        res.scale_own = s_own
    res.scale = math.sqrt(s2) if np.isfinite(s2) else np.nan
    res.df = df


def _effects(sc: _Scan, E: np.ndarray, res: Result) -> None:
    """Joint least-squares steps of the rejected intervals, their standard errors and boundary sets."""
    n = sc.n
    C = np.zeros((n, len(res.intervals)))
    for k, (i, j) in enumerate(res.intervals):
        C[i : j + 1, k] = 1.0
    PC = sc.P @ (C * sc.w[:, None])  # whitened, as the means
    coef, *_ = np.linalg.lstsq(PC, sc.projected(E), rcond=None)
    cov = np.linalg.pinv(PC.T @ PC)
    s = res.scale if np.isfinite(res.scale) else 0.0
    res.effect = [float(c) for c in coef]
    res.se = [float(s * math.sqrt(max(cov[k, k], 0.0))) for k in range(len(coef))]
    # boundaries: every interval whose step model fits nearly as well as the chosen one (profile likelihood,
    # chi-square 2 df), the other regimes' steps removed; same sign, overlapping the chosen interval
    for k, (i, j) in enumerate(res.intervals):
        others = C[:, [x for x in range(len(coef)) if x != k]] @ np.delete(coef, k) if len(coef) > 1 else 0.0
        Pm = sc.projected(E - np.asarray(others)[:, None] if len(coef) > 1 else E)
        z = sc.z(Pm) / s if s > 0 else np.zeros((n, n))
        zi = z[i, j]
        lo = np.arange(n)[:, None]
        hi = np.arange(n)[None, :]
        ok = np.isfinite(z) & (np.sign(z) == np.sign(zi)) & (zi**2 - np.nan_to_num(z) ** 2 <= _CHI2_2) & (lo <= j) & (hi >= i)
        for x, (a, b) in enumerate(res.intervals):
            if x != k:
                ok &= (hi < a) | (lo > b)
        rows, cols = np.nonzero(ok)
        if rows.size:
            res.bounds.append((int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())))
        else:
            res.bounds.append((i, i, j, j))


def _gumbel_quantile(maxima: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a Gumbel distribution fitted to ``maxima`` by moments (empirical where it is enough)."""
    if (1.0 - q) * maxima.size >= 10:
        return float(np.quantile(maxima, q))
    mu, sd = float(np.mean(maxima)), float(np.std(maxima, ddof=1))
    scale = sd * math.sqrt(6.0) / math.pi
    return float(mu - np.euler_gamma * scale - scale * math.log(-math.log(q)))


#: A bracket of :func:`_mde`: log ratios ``lo < hi`` and the power at each where known (None: not simulated).
_Bracket = tuple[float, float, "float | None", "float | None"]


def _bracket(w: int, res: Result, power: Callable[[float], float]) -> _Bracket:
    """Log ratios between which a ``w``-budget step's power crosses 80 %, with the power at each end where known:
    for one budget where its curve (``res.power``) crosses it, for wider steps around the one-budget ratio
    (they are found at smaller ratios); otherwise from no step to x1000."""
    if w == 1 and res.power:
        above = [k for k, p in enumerate(res.power) if p >= POWER]
        if not above:
            return math.log(POWER_RATIOS[-1]), _MAX_LOG, res.power[-1], None
        k = above[0]
        return ((math.log(POWER_RATIOS[k - 1]), math.log(POWER_RATIOS[k]), res.power[k - 1], res.power[k]) if k > 0
                else (0.0, math.log(POWER_RATIOS[0]), None, res.power[0]))
    one = res.mde.get(1, np.nan)
    if w != 1 and np.isfinite(one):
        at = power(math.log(one))
        return (0.0, math.log(one), None, at) if at >= POWER else (math.log(one), _MAX_LOG, at, None)
    return 0.0, _MAX_LOG, None, None


def _mde(power: Callable[[float], float], bracket: _Bracket) -> float:
    """The smallest ratio whose step is found with 80 % power (``power(log ratio)``: the simulated share found)
    to :data:`_MDE_TOL` in ``bracket``; inf when not even x1000 is.

    A bracketing search (the answer is the upper end of a bracket no wider than the tolerance whose lower end
    has less than 80 % power and upper end at least 80 %, as a bisection's): where the power at both ends is
    known, the next point is where the line between them crosses 80 % on the probit scale (regula falsi; a
    z-test's power is linear in the step there, ``Phi(delta / s - z)``); where its power is near 80 %, the
    point one tolerance beyond it, on the side the crossing should be, is tried next, so that a crossing
    predicted to within the tolerance closes the bracket (a bisection from the power curve's bracket takes
    six simulations, this two to four). Every third point is the midpoint unless the bracket closed: it at
    least halves every three simulations, whatever the curve's shape.
    """
    lo, hi, p_lo, p_hi = bracket
    if hi == _MAX_LOG and p_hi is None:
        p_hi = power(hi)
    if p_hi is not None and p_hi < POWER:
        return np.inf
    probe: float | None = None
    since_mid = 0
    while hi - lo > _MDE_TOL:
        if probe is not None and lo < probe < hi and since_mid < 2:
            x = probe
        elif since_mid < 2 and p_lo is not None and p_hi is not None and p_hi > p_lo:
            a, b, c = _sps.norm.ppf(np.clip([p_lo, p_hi, POWER], 1e-3, 1 - 1e-3))
            x = min(max(lo + (c - a) / (b - a) * (hi - lo), lo + 0.5 * _MDE_TOL), hi - 0.5 * _MDE_TOL)
        else:
            x, since_mid = 0.5 * (lo + hi), -1
        since_mid += 1
        p = power(x)
        near = x != probe and abs(p - POWER) < 0.1
        if p >= POWER:
            hi, p_hi, probe = x, p, (x - _MDE_TOL if near else None)
        else:
            lo, p_lo, probe = x, p, (x + _MDE_TOL if near else None)
    return float(math.exp(hi))


def _power(sc: _Scan, res: Result, *, level: float, min_log: float, sign: int,
           prior: tuple[float, float] = (np.nan, 0.0)) -> None:
    """Power of the decision rule for steps planted into the null draws; ``mde`` per width and the curve.

    The critical value at ``level`` is the quantile of the null maxima (a Gumbel fit to them where the draws
    are too few for that quantile); a plant is found when the largest ``|Z|`` reaches it, its interval
    covers at least half the planted budgets and its step is at least ``min_log``.
    """
    n = sc.n
    allowed = np.isfinite(sc.D)
    lo, hi = sc.first, sc.last  # the plants are scanned over the intervals with a step direction, flattened
    s2 = res.scale**2
    G = sc.draws(_POWER_DRAWS, s2)
    Zc = sc.z_flat(G @ sc.P)
    n_crit = int(min(max(10 / level, 4 * _POWER_DRAWS), _CRIT_DRAWS))

    def null_max(k: int) -> np.ndarray:
        return _student_max(sc, sc.draws(k, s2), allowed, *prior)

    maxima = np.concatenate([_student_max(sc, G, allowed, *prior, Z=Zc)] + [
        null_max(min(_POWER_DRAWS * 5, n_crit - a)) for a in range(_POWER_DRAWS, n_crit, _POWER_DRAWS * 5)])
    crit = _gumbel_quantile(maxima, 1.0 - level)

    def plants(width: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        w = min(width, n)
        first = 1 if n - w - 1 >= 1 else 0
        last = n - w - 1 if n - w - 1 >= 1 else n - w
        starts = np.unique(np.linspace(first, last, min(_POWER_POSITIONS, last - first + 1)).round().astype(int))
        out = []
        for s0 in starts:
            c = np.zeros(n)
            c[s0 : s0 + w] = 1.0
            A = sc.z_flat(sc.P @ (c * sc.w)).astype(np.float32)
            # an interval counts as finding the plant when it covers at least half its budgets
            cover = np.clip(np.minimum(hi, s0 + w - 1) - np.maximum(lo, s0) + 1, 0, None) >= math.ceil(w / 2)
            # the scale without the planted interval itself (the usual strongest interval) does not depend on
            # the step: computed once (NaN where the plant is too wide to be left out)
            narrow = w <= max(1, n // 4) and n - w >= 3
            k = G.shape[0]
            own = (np.maximum(_loo_scale(G, np.full(k, s0), np.full(k, s0 + w - 1), *prior), sc.floor) if narrow
                   else np.full(k, np.nan))
            at = int(np.searchsorted(sc.flat, s0 * n + s0 + w - 1))  # the planted interval itself
            out.append((A, cover, c * sc.w, at, own))
        return out

    direction = -1.0 if sign < 0 else 1.0  # the steps planted: slowdowns, or drops where those are the regimes

    # the planted draws' Z in single precision (the argmax over every interval of every draw is most of the
    # simulation's time; 1e-7 relative is far below its Monte Carlo error), in buffers reused by every rate
    Zc32 = Zc.astype(np.float32)
    buf, absZ = np.empty_like(Zc32), np.empty_like(Zc32)
    rows = np.arange(Zc.shape[0])

    def rate(delta: float, cases: list[tuple]) -> float:
        found = 0.0
        for A, cover, cw, at, own in cases:
            Z = np.add(Zc32, A * np.float32(direction * delta), out=buf)
            arg = np.abs(Z, out=absZ).argmax(axis=1)
            zsel = Z[rows, arg].astype(float)
            est = zsel / sc.root_d[arg]  # the chosen interval's step, log units
            # only a draw whose strongest interval covers the plant with a large enough step can find it
            hit = cover[arg] & (est * direction >= min_log)
            scale = np.where(arg == at, own, np.nan)
            todo = hit & np.isnan(scale)
            if todo.any():
                # studentized as the data are: the scale of the cells outside the draw's strongest interval
                scale[todo] = np.maximum(_loo_scale(G[todo] + direction * delta * cw, lo[arg[todo]],
                                                    hi[arg[todo]], *prior), sc.floor)
            found += float(np.mean(hit & (np.abs(zsel) >= crit * scale)))
        return found / max(len(cases), 1)

    # a step over a third of the series or more is a change of the curve as much as a regime (the smooth
    # reference bends to it and may change degree): its power is not simulated faithfully, so none is stated
    cases = {w: plants(w) if MAX_SHARE * n >= w else [] for w in MDE_WIDTHS}
    res.power = [rate(math.log(r), cases[1]) for r in POWER_RATIOS] if cases[1] else [np.nan] * len(POWER_RATIOS)
    for w, cw in cases.items():
        if not cw:
            res.mde[w] = np.nan
            continue

        def power(delta: float, cw: list[tuple] = cw) -> float:
            return rate(delta, cw)

        res.mde[w] = _mde(power, _bracket(w, res, power))
