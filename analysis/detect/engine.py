"""The per-series engine of :func:`analysis.regimes.regimes` (pure numpy).

Two passes over blocks of series ``(..., budget, trial)``:

* :func:`scale_block`: each series' own budget-level noise scale and its
  degrees of freedom (the caller pools them per origin into an empirical-Bayes
  prior, :func:`analysis.detect.inference.prior`);
* :func:`analyse_block`: the step-down scan of every series
  (:func:`analysis.detect.inference.test_series`) and what a result reports of it:
  per budget (baseline, ratio, segment id, normal flag), per segment (the
  partition of the budget axis into the rejected intervals and the normal
  stretches between them) and per series (p-value, noise, power).

Each series depends only on its inputs and its own seed (derived from its
coordinates), so eager and dask-parallel runs, and a file opened alone or
beside others, give the same numbers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as _sps

from analysis.core import stats as _st
from analysis.detect import baseline as _bl
from analysis.detect import inference as _inf
from analysis.detect import scan as _scan
from analysis.detect import segments as _sg

__all__ = [
    "FIELDS_BUDGET", "FIELDS_SEGMENT", "FIELDS_SERIES", "OUTPUTS", "POWER_DIM", "SEGMENT_DIM", "analyse_block",
    "reference_degree", "scale_block",
]

#: per budget
FIELDS_BUDGET: tuple[str, ...] = ("baseline", "ratio", "regime", "normal")
#: per segment (indices are positions on the budget axis)
FIELDS_SEGMENT: tuple[str, ...] = (
    "seg_start", "seg_end", "start_lo", "start_hi", "end_lo", "end_hi",
    "effect", "effect_lo", "effect_hi", "p", "reproducible", "tested", "n_cells",
)
#: per series
FIELDS_SERIES: tuple[str, ...] = (
    "sigma", "degree", "n_segments", "p_series", "mde", "mde_4", "scatter", "scale", "df",
)
#: Core dim of the per-segment outputs (as long as the budget axis: a series has at most one segment a budget).
SEGMENT_DIM = "_segment"
#: Core dim of the power curve (one entry per ratio of :data:`analysis.detect.inference.POWER_RATIOS`).
POWER_DIM = "_power"
#: Every output of :func:`analyse_block` and its core dims.
OUTPUTS: dict[str, tuple[str, ...]] = {
    **{name: ("budget",) for name in FIELDS_BUDGET},
    **{name: (SEGMENT_DIM,) for name in FIELDS_SEGMENT},
    **{name: () for name in FIELDS_SERIES},
    "power": (POWER_DIM,),
}
#: Decimals the scan's inputs are rounded to (log residuals and a normalised basis): far below any noise.
_DIGITS = 10
#: Budgets are fitted in units of this many tokens.
BUDGET_UNIT = 1024.0
#: Most null draws for one p-value.
_MAX_DRAWS = 200_000
#: Outputs of :func:`scale_block`.
SCALE_OUTPUTS: dict[str, tuple[str, ...]] = {"s2": (), "df": ()}


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """NaN-ignoring median over one axis (a sort-based fast path; numpy's nanmedian is slow on many short rows)."""
    moved = np.moveaxis(a, axis, -1)
    return _st.nanmedian_last(moved)


def _prepare(y: np.ndarray, degree: np.ndarray, budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Log runs, per-budget medians, run noise, degrees and the smooth reference of every series."""
    lead = y.shape[:-2]
    nb, T = y.shape[-2:]
    Y = np.asarray(y, dtype=float).reshape(-1, nb, T)
    deg = np.broadcast_to(np.asarray(degree), lead).reshape(-1).astype(int).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.where(np.isfinite(Y) & (Y > 0), np.log(np.where(Y > 0, Y, 1.0)), np.nan)
    m = _nanmedian(L, axis=-1)
    n_t = np.isfinite(L).sum(axis=-1)
    # a fixed unit (not the dataset's largest budget): a series' fit does not depend on the budgets other
    # series of a combined dataset add to the axis
    x = np.asarray(budgets, dtype=float) / BUDGET_UNIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n_typ = np.nan_to_num(np.nanmedian(np.where(n_t > 0, n_t, np.nan), axis=1), nan=1.0)
    sig_run = _st.replicate_sigma(L)
    sig_m = _st.median_sigma(np.maximum(np.nan_to_num(sig_run, nan=0.02), _st.SIGMA_FLOOR), n_typ)
    auto = deg < 0
    if auto.any():
        deg[auto] = _bl.choose_degree(m[auto], x, scale_floor=sig_m[auto])
    # the smooth reference: the baseline family fitted to all budgets with Huber weights (never zero, so an
    # edge budget with a large fixed cost is not dropped and left behind); the scan projects out every
    # direction in which that curve could move, a fixed-cost intercept included
    ref = fit_by_degree(m, x, deg, sig_m, loss="huber")
    return {"L": L, "m": m, "x": x, "deg": deg, "sig_run": sig_run, "sig_m": sig_m, "ref": ref, "lead": lead}


def _series_input(pre: dict[str, np.ndarray], s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(budget positions with data, E, basis)`` of series ``s``, or None with fewer than 3 budgets."""
    vi = np.flatnonzero(np.isfinite(pre["m"][s]) & np.isfinite(pre["ref"][s]))
    if vi.size < 3:
        return None
    E = pre["L"][s][vi] - np.log(pre["ref"][s][vi])[:, None]
    basis = _scan.tangent_basis(pre["x"][vi], pre["ref"][s][vi], int(pre["deg"][s]))
    # the reference fit is solved for many series at once, and its last bits depend on which series share the
    # batch; rounded far below any noise, a series' inputs (and so its Monte Carlo answer) do not
    basis = basis / np.maximum(np.abs(basis).max(axis=0), 1e-300)
    return vi, np.round(E, _DIGITS), np.round(basis, _DIGITS)


def scale_block(y: np.ndarray, degree: np.ndarray, *, budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Each series' own budget-level variance ``s2`` and degrees of freedom ``df`` (NaN / 0: too short)."""
    pre = _prepare(y, degree, budgets)
    S = pre["m"].shape[0]
    s2 = np.full(S, np.nan)
    df = np.zeros(S)
    for s in range(S):
        got = _series_input(pre, s)
        if got is None:
            continue
        _, E, basis = got
        sd, d = _inf.budget_scale(_scan.cell_mean(E) * _scan.weights(E))
        s2[s], df[s] = sd**2, d
    return {k: v.reshape(pre["lead"]) for k, v in (("s2", s2), ("df", df))}


def analyse_block(
    y: np.ndarray,
    degree: np.ndarray,
    series_id: np.ndarray,
    prior_s2: np.ndarray,
    prior_df: np.ndarray,
    n_series: np.ndarray,
    stated_sd: np.ndarray,
    *,
    budgets: np.ndarray,
    min_effect: float,
    seed: int,
    n_perm: int = 200,
    alpha: float = 0.05,
    level: float = 0.95,
    sign: int = 1,
) -> dict[str, np.ndarray]:
    """The step-down scan of every series in a block and what a result reports of it.

    Parameters
    ----------
    y
        ``(..., budget, trial)`` positive values (NaN: no data).
    degree
        ``(...)`` polynomial degree of the expected scaling (0, 1, 2; -1: choose linear or quadratic by fit).
    series_id
        ``(...)`` a stable integer per series, derived from its coordinates (seeds its random draws).
    prior_s2, prior_df
        ``(...)`` the empirical-Bayes prior of the series' origin (NaN / 0: none).
    budgets
        ``(budget,)`` increasing budget values.
    min_effect, seed, n_perm, alpha
        As in :func:`analysis.regimes.regimes`.
    level
        Confidence level of the effect intervals.
    sign
        The direction of a regime: +1 slowdowns, -1 drops, 0 either (from ``normal``).
    n_series
        ``(...)`` series tested in each series' origin (``m``): the power is simulated at ``alpha / m``, the
        level a regime alone among them faces after the correction across them, and p-values are drawn far
        enough to reach it (the origin's count, not the dataset's: a series' answer does not depend on the
        files opened beside it).
    stated_sd
        ``(...)`` the noise of a cell mean that the measurements themselves state (log units; NaN: none): a
        floor under every scale of the test (:func:`analysis.detect.inference.test_series`'s ``floor``).

    Returns
    -------
    dict
        One float array per name of :data:`OUTPUTS`.
    """
    pre = _prepare(y, degree, budgets)
    lead = pre["lead"]
    nb = len(budgets)
    S = pre["m"].shape[0]
    sid = np.broadcast_to(np.asarray(series_id), lead).reshape(-1).astype(np.int64)
    ps2 = np.broadcast_to(np.asarray(prior_s2, dtype=float), lead).reshape(-1)
    pdf = np.broadcast_to(np.asarray(prior_df, dtype=float), lead).reshape(-1)
    floor = np.nan_to_num(np.broadcast_to(np.asarray(stated_sd, dtype=float), lead).reshape(-1), nan=0.0)
    fb = {name: np.full((S, nb), np.nan) for name in FIELDS_BUDGET}
    fs = {name: np.full((S, nb), np.nan) for name in FIELDS_SEGMENT}
    fx = {name: np.full(S, np.nan) for name in FIELDS_SERIES}
    power = np.full((S, len(_inf.POWER_RATIOS)), np.nan)
    thr = float(np.log1p(min_effect))
    m_origin = np.maximum(np.broadcast_to(np.asarray(n_series, dtype=float), lead).reshape(-1), 1.0)
    fx["sigma"][:] = np.maximum(pre["sig_run"], _st.SIGMA_FLOOR)
    fx["degree"][:] = pre["deg"]
    for s in range(S):
        got = _series_input(pre, s)
        if got is None:
            continue
        vi, E, basis = got
        rng = np.random.default_rng([int(seed) & 0x7FFFFFFF, int(sid[s]) & 0x7FFFFFFFFFFF])
        res = _inf.test_series(E, basis, rng, prior_s2=float(ps2[s]), prior_df=float(pdf[s]), alpha=alpha,
                               min_log=thr, n_perm=n_perm, max_draws=_max_draws(n_perm, m_origin[s], alpha),
                               power_level=alpha / m_origin[s], sign=sign, floor=float(floor[s]))
        _fill(s, vi, E, res, pre, fb, fs, fx, nb, level, thr, sign)
        power[s] = res.power if res.power else np.nan
    if np.isnan(fx["sigma"]).any():  # one trial: the budget-level scale is all there is
        fx["sigma"] = np.where(np.isfinite(pre["sig_run"]), fx["sigma"], fx["scale"])
    out = {name: a.reshape(lead + a.shape[1:]) for name, a in (fb | fs | fx).items()}
    out["power"] = power.reshape(lead + power.shape[1:])
    return out


def _max_draws(n_perm: int, m: float, alpha: float) -> int:
    """Most draws for one p-value: enough that a series no draw reaches gets ``p <= alpha / (2 m)``, below the
    smallest level the correction across its origin's ``m`` series can ask for."""
    return int(min(max(10 * n_perm, math.ceil(2 * m / alpha)), _MAX_DRAWS))


def _regimes_of(res: _inf.Result, n: int, sign: int) -> tuple[list[tuple[int, int, float, float, float,
                                                                        tuple[int, int, int, int]]], np.ndarray]:
    """The series' tested intervals ``(i, j, log effect, se, p, bounds)`` and the cells of its normal level.

    Normally the rejected intervals, against the smooth curve through the rest. Where ``sign`` names a
    direction and the rejected steps the other way cover at least :data:`analysis.detect.segments.MIN_NORMAL_SHARE` of the budgets
    (a sweep zoomed in on a slow interval: 8 slow budgets of 12, the curve following the slow majority),
    the normal level is theirs: the stretches between them are the regimes (the same rejected difference,
    seen from the level the expected scaling calls normal), with ``effect`` and CI measured against the
    baseline fitted to that level (NaN here), ``p`` the largest of those steps' p-values, and boundaries as
    the stretches lie (no confidence set).
    """
    tested = [(i, j, res.effect[k], res.se[k], res.p_adjusted[k], res.bounds[k])
              for k, (i, j) in enumerate(res.intervals)]
    normal = np.ones(n, dtype=bool)
    for i, j, *_ in tested:
        normal[i : j + 1] = False
    if not sign:
        return tested, normal
    opposite = [t for t in tested if t[2] * sign < 0]
    cover = sum(j - i + 1 for i, j, *_ in opposite)
    if not opposite or cover < _sg.MIN_NORMAL_SHARE * n or cover >= n:
        return tested, normal
    level = np.zeros(n, dtype=bool)
    for i, j, *_ in opposite:
        level[i : j + 1] = True
    p = max(t[4] for t in opposite)
    flipped = []
    at = 0
    while at < n:
        if level[at]:
            at += 1
            continue
        end = at
        while end + 1 < n and not level[end + 1]:
            end += 1
        flipped.append((at, end, np.nan, np.nan, p, (at, at, end, end)))
        at = end + 1
    return flipped, level


def _fill(s: int, vi: np.ndarray, E: np.ndarray, res: _inf.Result, pre: dict, fb: dict, fs: dict, fx: dict,
          nb: int, level: float, thr: float, sign: int = 1) -> None:
    """Write one series' results into the block arrays."""
    n = vi.size
    m, x, deg = pre["m"][s], pre["x"], int(pre["deg"][s])
    tested, normal_cells = _regimes_of(res, n, sign)
    # the baseline: the robust fit to the normal level (the budgets outside every rejected interval)
    mask = np.zeros(nb, dtype=bool)
    mask[vi[normal_cells]] = True
    if not normal_cells.all() and mask.sum() >= 2:
        base = fit_by_degree(m[None], x, np.array([deg]), pre["sig_m"][s : s + 1], mask=mask[None])[0]
    else:
        base = fit_by_degree(m[None], x, np.array([deg]), pre["sig_m"][s : s + 1])[0]
    fb["baseline"][s] = base
    fb["ratio"][s] = np.exp(m - np.log(base))
    # segments: the tested intervals and the stretches between them, along the budget axis
    pieces: list[tuple[int, int, int]] = []  # (first, last, k: index into tested or -1)
    at = 0
    for k in sorted(range(len(tested)), key=lambda k: tested[k][0]):
        i, j = tested[k][:2]
        if i > at:
            pieces.append((at, i - 1, -1))
        pieces.append((i, j, k))
        at = j + 1
    if at < n:
        pieces.append((at, n - 1, -1))
    t = float(_sps.t.ppf(0.5 + level / 2, max(res.df, 1.0))) if res.df > 0 else np.nan
    Eb = pre["L"][s][vi] - np.log(base[vi])[:, None]
    regime = np.zeros(nb)
    normal = np.zeros(nb)
    for q, (a, b, k) in enumerate(pieces):
        fs["seg_start"][s, q], fs["seg_end"][s, q] = vi[a], vi[b]
        lo_b = vi[a]
        hi_b = vi[b + 1] if b + 1 < n else nb
        regime[lo_b:hi_b] = q
        fs["n_cells"][s, q] = np.isfinite(E[a : b + 1]).sum()
        fs["tested"][s, q] = 1.0 if k >= 0 else 0.0
        ref_rows = np.flatnonzero(normal_cells)
        ref_rows = ref_rows[(ref_rows < a) | (ref_rows > b)]
        fs["reproducible"][s, q] = _st.reproducibility(Eb[a : b + 1], Eb[ref_rows], min_log=thr)
        if k < 0:  # a normal stretch: its effect is the caller's (analysis.regimes._stretch_effects)
            normal[lo_b:hi_b] = 1.0
            continue
        # a regime's fitted step; a regime seen from the other level: its mean log ratio to the baseline
        _, _, est, se, p, (sl, sh, el, eh) = tested[k]
        if not np.isfinite(est):
            est = float(np.mean(np.log(fb["ratio"][s][vi[a : b + 1]])))
            se = res.scale / math.sqrt(b - a + 1) if np.isfinite(res.scale) else np.nan
        fs["p"][s, q] = p
        fs["start_lo"][s, q], fs["start_hi"][s, q] = vi[sl], vi[sh]
        fs["end_lo"][s, q], fs["end_hi"][s, q] = vi[el], vi[eh]
        fs["effect"][s, q] = math.exp(est)
        if np.isfinite(se) and np.isfinite(t):
            fs["effect_lo"][s, q] = math.exp(est - t * se)
            fs["effect_hi"][s, q] = math.exp(est + t * se)
    regime[: vi[0]] = 0
    fb["regime"][s] = regime
    fb["normal"][s] = normal
    fx["n_segments"][s] = len(pieces)
    fx["p_series"][s] = res.p_series
    fx["mde"][s] = res.mde.get(1, np.nan)
    fx["mde_4"][s] = res.mde.get(4, np.nan)
    fx["scatter"][s] = res.scale_own
    fx["scale"][s] = res.scale
    fx["df"][s] = res.df


def reference_degree(deg: np.ndarray) -> np.ndarray:
    """Degree of the baseline refitted to a series with no regime: quadratic for growing series (the
    per-token cost grows with the context, with the cache too), else as given."""
    return np.where(np.asarray(deg) >= 1, 2, deg)


def fit_by_degree(m: np.ndarray, x: np.ndarray, deg: np.ndarray, floor: np.ndarray,
                  mask: np.ndarray | None = None, loss: str = "biweight") -> np.ndarray:
    """Robust fits of the baseline family (:func:`analysis.detect.baseline.robust_fit`), rows grouped by degree and by
    their first budget with data.

    The fit's curve is written from its first budget on (``x - x_min``) and constrained at both ends of its
    range, so each series is fitted on the budget axis from its own first to its own last budget with data: a
    series' baseline does not depend on budgets that only other series of a combined dataset have (NaN
    outside its range).
    """
    base = np.full(m.shape, np.nan)
    has = np.isfinite(m)
    first = np.where(has.any(axis=1), np.argmax(has, axis=1), -1)
    last = np.where(has.any(axis=1), m.shape[1] - 1 - np.argmax(has[:, ::-1], axis=1), -1)
    for d in np.unique(deg):
        for f, e in {(int(a), int(b)) for a, b in zip(first[(deg == d) & (first >= 0)], last[(deg == d) & (first >= 0)])}:
            rows = np.flatnonzero((deg == d) & (first == f) & (last == e))
            cut = slice(f, e + 1)
            base[rows, cut] = _bl.robust_fit(m[rows, cut], x[cut], int(d), mask=None if mask is None else mask[rows, cut],
                                             scale_floor=floor[rows], loss=loss)[0]
    return base
