"""Execution time as a confounder of budget regimes, and the host state of every run.

A host can have slow periods. Whether a slow budget interval is a property of
the budget or of *when* its runs were executed can only be told apart when its
runs are interleaved in time with runs of other budgets of the same series (a
randomised sweep). For each candidate segment this module

1. **tests whether its runs cluster in time** (:func:`segment_clustering`): an
   exact permutation test of execution positions. The statistic is the span of
   the segment's runs in the execution order of its series (the number of runs
   of the series from its first to its last run); its null distribution is that
   of the span of the same number of runs drawn at random from the series' runs,
   which is what a randomised sweep does. Under random run order a segment is
   called clustered with probability at most :data:`ALPHA_CLUSTERED`. A series
   executed in budget order (a sequential sweep) has no randomisation to test:
   every segment of it is clustered. A series whose cells each ran as one block
   (isolation per cell) is tested with cells as the units, and a one-cell
   segment of it is clustered;
2. builds the **host state** of every run (:func:`host_state`): the median
   residual of the ``k`` runs of normal cells, from any series, executed nearest
   to it, leaving out its own cell;
3. fits ``e = b0 + b_budget * in_segment + b_time * host_state`` by OLS
   (statsmodels) on the runs of the segment and the normal runs of its series,
   and asks whether the budget effect survives.

:func:`adjust_host_state` removes a robustly fitted multiple of the host state
from the residuals (random-order sweeps only: in a sequential sweep the host
state is a function of the budget, see :func:`sequential_share`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps
from scipy.special import gammaln

from analysis.core.stats import ols

__all__ = [
    "ALPHA_CLUSTERED",
    "HOST_K",
    "NEAREST",
    "Clustering",
    "TimeCheck",
    "adjust_host_state",
    "budget_ordered",
    "check_segment",
    "host_state",
    "prepare",
    "segment_clustering",
    "sequential_share",
    "span_p",
    "time_key",
]

#: Level of the clustering test: the chance that a segment of a randomised series is called clustered.
ALPHA_CLUSTERED = 0.01
#: Runs of normal cells whose median residual is a run's host state (the time term of :func:`check_segment`).
HOST_K = 8
#: How :func:`host_state` finds the runs nearest to a run: in execution order (as many before as after), or by time.
NEAREST: tuple[str, ...] = ("order", "time")
#: A series ran in budget order when the correlation of its execution ranks with its budgets exceeds this.
ORDERED_RHO = 0.9
#: ... and it has at least this many runs (random order exceeds ORDERED_RHO in 1.6-2.2 % of 6-run series, <= 0.5 % of 8-run).
ORDERED_MIN_RUNS = 8


def time_key(order: np.ndarray | None, started_at: np.ndarray | None) -> tuple[np.ndarray, str] | None:
    """A float execution-time key per cell (NaN: unknown) and its source: ``started_at`` if usable, else ``order``."""
    if started_at is not None:
        sa = np.asarray(started_at)
        if np.issubdtype(sa.dtype, np.datetime64):
            nat = np.isnat(sa)
            if not nat.all():
                return np.where(nat, np.nan, sa.astype("datetime64[ns]").astype(np.int64).astype(float)), "started_at"
    if order is not None:
        o = np.asarray(order, dtype=float)
        o = np.where(o >= 0, o, np.nan)
        if np.isfinite(o).any():
            return o, "order"
    return None


def span_p(span: int, n: int, m: int) -> float:
    """Exact ``P(span <= span)`` of ``n`` positions drawn without replacement from ``m`` consecutive ones.

    The span is ``max - min + 1``. The number of ``n``-subsets of ``{1..m}``
    with span at most ``L`` is ``m C(L-1, n-1) - (n-1) C(L, n)`` (sum over the
    span ``l`` of ``(m - l + 1) C(l - 2, n - 2)``), so the probability is
    ``C(L, n) / C(m, n) * (n m / L - n + 1)``. ``1.0`` for ``n <= 1``.
    """
    if n <= 1 or span >= m:
        return 1.0
    if span < n:
        return 0.0
    log_ratio = gammaln(span + 1) - gammaln(span - n + 1) - gammaln(m + 1) + gammaln(m - n + 1)
    return float(min(1.0, np.exp(log_ratio) * (n * m / span - n + 1)))


def _series_ranks(pos: np.ndarray) -> np.ndarray:
    """``(S, nb, T)`` rank of each run in its series' execution order (-1: unknown), from global ranks."""
    S = pos.shape[0]
    flat = pos.reshape(S, -1).astype(float)
    flat = np.where(flat >= 0, flat, np.inf)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1, kind="stable")
    return np.where(np.isfinite(flat), ranks, -1).reshape(pos.shape)


def _budget_rho(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series: correlation of execution rank with budget index, and the number of runs with a rank."""
    nb = pos.shape[1]
    b = np.broadcast_to(np.arange(nb)[None, :, None], pos.shape).astype(float)
    ok = pos >= 0
    p = np.where(ok, pos, 0).astype(float)
    n = ok.sum(axis=(1, 2)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = (p * ok).sum(axis=(1, 2)) / n
        mb = (b * ok).sum(axis=(1, 2)) / n
        cov = (((p - mp[:, None, None]) * (b - mb[:, None, None])) * ok).sum(axis=(1, 2))
        vp = (((p - mp[:, None, None]) ** 2) * ok).sum(axis=(1, 2))
        vb = (((b - mb[:, None, None]) ** 2) * ok).sum(axis=(1, 2))
        rho = cov / np.sqrt(vp * vb)
    return rho, n


def budget_ordered(pos: np.ndarray) -> np.ndarray:
    """``(S,)`` bool: series executed in budget order (no randomisation between budgets to test).

    A series is ordered when the correlation of its runs' execution ranks with
    their budget index exceeds :data:`ORDERED_RHO` in absolute value and it has at
    least :data:`ORDERED_MIN_RUNS` runs. Under random run order this happens in
    at most 0.5 % of series of 8 runs and never in practice from 16 runs on.
    ``pos`` is ``(series, budget, trial)`` execution rank (-1: unknown).
    """
    rho, n = _budget_rho(pos)
    return np.isfinite(rho) & (np.abs(rho) > ORDERED_RHO) & (n >= ORDERED_MIN_RUNS)


def _cell_blocked(rank: np.ndarray, alpha: float) -> np.ndarray:
    """``(S,)`` bool: every cell's runs are consecutive in its series' order, improbably so under random order.

    Under random order of ``M`` runs in ``K`` cells of ``n_c`` runs, every cell
    is one block with probability ``K! prod(n_c!) / M!``; the series counts as
    cell-blocked (isolation per cell) when all cells are blocks and that
    probability is at most ``alpha``.
    """
    ok = rank >= 0
    cnt = ok.sum(axis=2)
    r = rank.astype(float)
    hi = np.where(ok, r, -np.inf).max(axis=2)
    lo = np.where(ok, r, np.inf).min(axis=2)
    contiguous = np.where(cnt > 0, hi - lo + 1 == cnt, True).all(axis=1)
    K = (cnt > 0).sum(axis=1)
    M = cnt.sum(axis=1)
    log_p = gammaln(K + 1) + gammaln(cnt + 1).sum(axis=1) - gammaln(M + 1)
    return contiguous & ((cnt >= 2).sum(axis=1) >= 1) & (log_p <= np.log(alpha))


@dataclass(frozen=True)
class TimeCheck:
    """Prepared execution-order arrays of a whole dataset (see :func:`prepare`)."""

    pos: np.ndarray  # (S, nb, T) rank in execution order of the dataset, -1 where unknown or no data
    n_runs: int
    normal_pos: np.ndarray  # sorted positions of normal runs
    normal_e: np.ndarray  # their log ratios, in time order
    g_cells: np.ndarray  # (S, nb, T) host state (time term) of every run
    rank: np.ndarray | None = None  # (S, nb, T) rank in its series' execution order, -1 where unknown
    ordered: np.ndarray | None = None  # (S,) series executed in budget order
    blocked: np.ndarray | None = None  # (S,) series whose cells each ran as one block


@dataclass(frozen=True)
class Clustering:
    """Result of the clustering test of one segment (see :func:`segment_clustering`).

    Attributes
    ----------
    p : float
        Exact permutation p-value: the probability that as many units of the
        series, drawn at random, span at most as few units of its execution
        order as the segment's. 1.0 when the segment has one unit (or none).
    unit : str
        ``"run"`` (runs randomised one by one), ``"cell"`` (each cell ran as
        one block) or ``"series"`` (the series ran in budget order: nothing was
        randomised).
    clustered : bool
        ``p <= alpha_clustered``, or nothing random separates the segment's
        runs from its series' other runs in time (unit ``"series"``, or a
        one-cell segment with unit ``"cell"``).
    """

    p: float
    unit: str
    clustered: bool


def prepare(tkey: np.ndarray, E: np.ndarray, normal: np.ndarray, *, sequential: np.ndarray | None = None,
            group: np.ndarray | None = None) -> TimeCheck:
    """Rank runs in execution order, find each series' unit of randomisation, compute every run's host state.

    Parameters
    ----------
    tkey
        ``(series, budget, trial)`` execution-time key (NaN: unknown).
    E
        Log ratio of each run to its series' baseline (NaN: no data).
    normal
        Runs of budgets in their series' normal regime.
    sequential
        Optional ``(series,)`` bool: series declared to have run in grid order
        (the sweep's ``run_order``); they count as ordered whatever their size.
    group
        Optional ``(series,)`` labels of the sweeps the series come from: host
        states use only runs of the same sweep (see :func:`host_state`).

    Returns
    -------
    TimeCheck
        ``pos`` (rank in the dataset's execution order), ``rank`` (rank in
        the series' order), ``ordered`` and ``blocked`` (per series: ran in
        budget order; every cell ran as one block), ``g_cells`` (host state of
        every run, :data:`HOST_K` runs) and the normal runs' positions and
        residuals in time order.
    """
    ok = np.isfinite(tkey) & np.isfinite(E)
    flat_ok = np.flatnonzero(ok.ravel())
    srt = flat_ok[np.argsort(tkey.ravel()[flat_ok], kind="stable")]
    pos: np.ndarray = np.full(E.size, -1, dtype=np.int64)
    pos[srt] = np.arange(srt.size)
    pos = pos.reshape(E.shape)
    nrm_sorted = srt[normal.ravel()[srt]]
    rank = _series_ranks(pos)
    ordered = budget_ordered(pos)
    if sequential is not None:
        ordered = ordered | np.asarray(sequential, dtype=bool)
    return TimeCheck(pos=pos, n_runs=int(srt.size), normal_pos=pos.ravel()[nrm_sorted], normal_e=E.ravel()[nrm_sorted],
                     g_cells=host_state(tkey, E, normal & ok, k=HOST_K, group=group), rank=rank, ordered=ordered,
                     blocked=_cell_blocked(rank, ALPHA_CLUSTERED))


def segment_clustering(tc: TimeCheck, E: np.ndarray, s: int, rows: np.ndarray, *,
                       alpha_clustered: float = ALPHA_CLUSTERED) -> Clustering:
    """Exact permutation test: are the runs of segment ``rows`` of series ``s`` closer in time than chance?

    The statistic is the span of the segment's units in the execution order of
    its series' units; the null is that the segment's units are a random
    subset of the series' units (what random run order does), under which the
    span's distribution is known exactly (:func:`span_p`), so the test needs no
    resampling. Units are runs, or cells when every cell of the series ran as
    one block (``tc.blocked``); a series that ran in budget order
    (``tc.ordered``) has no randomisation and every segment of it is clustered.
    Only runs with a finite residual and execution key count. With unit
    ``"series"`` the reported ``p`` is that of the cell (or run) units, for
    information only.
    """
    rank = tc.rank if tc.rank is not None else _series_ranks(tc.pos)
    ordered = bool(tc.ordered[s]) if tc.ordered is not None else False
    blocked = bool(tc.blocked[s]) if tc.blocked is not None else False
    r = rank[s]
    usable = (r >= 0) & np.isfinite(E[s])
    in_seg = np.zeros(r.shape[0], dtype=bool)
    in_seg[rows] = True
    if blocked:
        cells = usable.any(axis=1)
        first = np.where(usable, r, np.iinfo(np.int64).max).min(axis=1)
        order = np.argsort(np.where(cells, first, np.iinfo(np.int64).max), kind="stable")
        unit_rank = np.empty_like(order)
        unit_rank[order] = np.arange(order.size)
        seg_units = unit_rank[cells & in_seg]
        m = int(cells.sum())
        unit = "cell"
    else:
        seg_units = r[usable & in_seg[:, None]]
        m = int(usable.sum())
        unit = "run"
    n = int(seg_units.size)
    p = span_p(int(seg_units.max() - seg_units.min() + 1), n, m) if n >= 2 else 1.0
    if ordered:
        return Clustering(p=p, unit="series", clustered=n >= 1)
    one_unit = blocked and n == 1
    return Clustering(p=p, unit=unit, clustered=bool(one_unit or (n >= 2 and p <= alpha_clustered)))


def check_segment(tc: TimeCheck, E: np.ndarray, normal: np.ndarray, s: int, rows: np.ndarray,
                  log_effect: float, *, alpha: float,
                  alpha_clustered: float = ALPHA_CLUSTERED) -> tuple[bool, float, bool]:
    """Time check of one segment (series ``s``, budget positions ``rows``).

    Returns
    -------
    clustered : bool
        :func:`segment_clustering` at level ``alpha_clustered``: budget and
        time cannot be separated for it. Under random run order a true regime
        is called clustered with probability at most ``alpha_clustered``.
    p_time : float
        Two-sided p-value of the budget term in the OLS model of runs
        ``e = b0 + b_budget [run in segment] + b_time g`` (``g`` the run's
        host state, :data:`HOST_K` runs), fitted on the segment's runs and the
        normal runs of its series. Runs are its units because the host state
        varies from run to run; cell-level variance is not in the model.
    survives : bool
        The budget term stays significant (``p_time < alpha``), has the
        segment's sign and at least half its size once time is in the model.
    """
    clustered = segment_clustering(tc, E, s, rows, alpha_clustered=alpha_clustered).clustered
    usable = (tc.pos[s] >= 0) & np.isfinite(E[s]) & np.isfinite(tc.g_cells[s])
    seg = np.zeros(E.shape[1], dtype=bool)
    seg[rows] = True
    in_seg = seg[:, None] & usable
    ref = normal[s] & ~seg[:, None] & usable
    y = np.concatenate([E[s][in_seg], E[s][ref]])
    g = np.concatenate([tc.g_cells[s][in_seg], tc.g_cells[s][ref]])
    ind = np.concatenate([np.ones(int(in_seg.sum())), np.zeros(int(ref.sum()))])
    if y.size < 4 or ind.sum() < 1 or (1 - ind).sum() < 2:
        return clustered, np.nan, True
    X = np.column_stack([np.ones(y.size), ind, g])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ols(y, X).fit()
    beta = float(fit.params[1])
    p_time = float(fit.pvalues[1])
    if not np.isfinite(p_time):
        return clustered, np.nan, True
    survives = bool(p_time < alpha and np.sign(beta) == np.sign(log_effect) and abs(beta) >= 0.5 * abs(log_effect))
    return clustered, p_time, survives


def sequential_share(pos: np.ndarray) -> float:
    """Share of series whose runs were executed in budget order (|correlation| of rank and budget > 0.9).

    ``pos`` is ``(series, budget, trial)`` execution rank (-1: unknown). Series
    with fewer than 3 runs are left out. Descriptive; the clustering test uses
    :func:`budget_ordered`, which also needs :data:`ORDERED_MIN_RUNS` runs.
    """
    rho, n = _budget_rho(pos)
    rho = rho[(n >= 3) & np.isfinite(rho)]
    return float(np.mean(np.abs(rho) > ORDERED_RHO)) if rho.size else 0.0


def host_state(tkey: np.ndarray, E: np.ndarray, normal: np.ndarray, k: int = 6, *,
               group: np.ndarray | None = None, nearest: str = "order") -> np.ndarray:
    """The host state of every run: median residual of the ``k`` normal runs of other cells executed nearest to it.

    Parameters
    ----------
    tkey
        ``(series, budget, trial)`` execution key (``started_at`` as a number,
        or ``order``; NaN: unknown).
    E
        ``(series, budget, trial)`` log residual of each run to its series'
        smooth baseline (NaN: no data).
    normal
        ``(series, budget, trial)`` bool: runs usable as reference (cells
        outside any suspected regime).
    k
        How many reference runs (>= 1).
    group
        Optional ``(series,)`` labels: only runs of series with the same label
        are neighbours (one label per sweep, so that files measured apart, or
        ``order`` keys of different files, never mix). Default: one sweep.
    nearest
        ``"order"`` (default): nearest in execution order, taking the
        reference runs just before and just after it in turn (``k / 2`` on
        each side, the earlier first; the other side's when one runs out).
        ``"time"``: the ``k`` smallest ``|tkey|`` differences (the earlier on a
        tie); with ``started_at``, slow runs are far apart in start time, so
        at the edge of a slow episode this leans to the fast side.

    Returns
    -------
    numpy.ndarray
        ``(series, budget, trial)``: for every run with a finite key, the
        median of ``E`` over its ``k`` nearest reference runs from any series
        of its group, excluding every run of its own cell (same series and
        budget); the median of all of them when its group has fewer than
        ``k``; NaN where the key is unknown or there is no reference run.
    """
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if nearest not in NEAREST:
        raise ValueError(f"nearest must be one of {list(NEAREST)}, got {nearest!r}")
    tkey = np.asarray(tkey, dtype=float)
    E = np.asarray(E, dtype=float)
    normal = np.asarray(normal, dtype=bool)
    if not (tkey.shape == E.shape == normal.shape) or E.ndim != 3:
        raise ValueError(f"tkey, E and normal must be (series, budget, trial) of one shape, got "
                         f"{tkey.shape!r}, {E.shape!r}, {normal.shape!r}")
    S, nb, T = E.shape
    labels = np.zeros(S, dtype=np.int64) if group is None else np.unique(np.asarray(group), return_inverse=True)[1]
    if labels.shape != (S,):
        raise ValueError(f"group must have one label per series ({S}), got shape {np.asarray(group).shape!r}")
    cell = np.broadcast_to((np.arange(S)[:, None] * nb + np.arange(nb)[None, :])[:, :, None], E.shape).ravel()
    lab = np.broadcast_to(labels[:, None, None], E.shape).ravel()
    t, e = tkey.ravel(), E.ravel()
    ref = normal.ravel() & np.isfinite(t) & np.isfinite(e)
    query = np.isfinite(t)
    out = np.full(E.size, np.nan)
    for g in np.unique(lab[query]):
        ri = np.flatnonzero(ref & (lab == g))
        qi = np.flatnonzero(query & (lab == g))
        if ri.size == 0:
            continue
        ri = ri[np.argsort(t[ri], kind="stable")]
        out[qi] = _nearest_median(t[ri], e[ri], cell[ri], t[qi], cell[qi], k, T, by_time=nearest == "time")
    return out.reshape(E.shape)


def _nearest_median(rt: np.ndarray, re_: np.ndarray, rc: np.ndarray, qt: np.ndarray, qc: np.ndarray, k: int,
                    T: int, *, by_time: bool) -> np.ndarray:
    """Median of ``re_`` over the ``k`` entries of sorted ``rt`` nearest to each ``qt``, skipping cell ``qc``.

    Walks outwards from each query's place in ``rt`` for at most ``k + T``
    steps, vectorised over the queries still short of ``k`` values (a query's
    own cell has at most ``T`` runs to skip). ``by_time``: the nearer side in
    ``rt`` first (the earlier on a tie); else the side with fewer entries taken
    so far (the earlier on a tie), i.e. nearest in execution order.
    """
    n = rt.size
    srt = np.argsort(qt, kind="stable")
    qt, qc = qt[srt], qc[srt]
    lo = np.searchsorted(rt, qt) - 1
    hi = lo + 1
    vals = np.full((qt.size, k), np.nan)
    got = np.zeros(qt.size, dtype=np.int64)
    act = np.arange(qt.size)
    n_left = np.zeros(qt.size, dtype=np.int64)
    n_right = np.zeros(qt.size, dtype=np.int64)
    rt_pad = np.concatenate([[-np.inf], rt, [np.inf]])  # index i + 1: lo = -1 and hi = n fall on the pads
    for _ in range(k + T):
        lo_a, hi_a, q = lo[act], hi[act], qt[act]
        dl = q - rt_pad[lo_a + 1]
        dh = rt_pad[hi_a + 1] - q
        left = (dl <= dh) if by_time else np.isinf(dh) | (np.isfinite(dl) & (n_left[act] <= n_right[act]))
        idx = np.where(left, lo_a, hi_a)
        live = np.isfinite(np.where(left, dl, dh))
        take = live & (rc[np.clip(idx, 0, n - 1)] != qc[act])
        at = act[take]
        vals[at, got[at]] = re_[idx[take]]
        got[at] += 1
        n_left[at] += left[take]
        n_right[at] += ~left[take]
        lo[act] = np.where(live & left, lo_a - 1, lo_a)
        hi[act] = np.where(live & ~left, hi_a + 1, hi_a)
        act = act[live & (got[act] < k)]
        if act.size == 0:
            break
    full = got == k
    med = np.full(qt.size, np.nan)
    med[full] = np.median(vals[full], axis=1)
    part = (got > 0) & ~full
    if part.any():
        med[part] = np.nanmedian(vals[part], axis=1)
    out = np.empty_like(med)
    out[srt] = med
    return out


def adjust_host_state(E: np.ndarray, g: np.ndarray, normal: np.ndarray, *,
                      by: np.ndarray | None = None, min_runs: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Remove the host state from the residuals: ``E - beta g`` with a robust (Theil-Sen) ``beta``.

    Parameters
    ----------
    E
        ``(series, budget, trial)`` log residuals.
    g
        ``(series, budget, trial)`` host state from :func:`host_state`.
    normal
        ``(series, budget, trial)`` bool: runs on which ``beta`` is fitted.
    by
        Optional ``(series,)`` labels: one ``beta`` per label, fitted on the
        normal runs of all its series (e.g. one per file). Default: one per
        series.
    min_runs
        Fewest normal runs with finite ``E`` and ``g`` to fit a ``beta``.

    Returns
    -------
    E_adj : numpy.ndarray
        ``(series, budget, trial)``: ``E - beta g``; ``E`` itself where ``g``
        or ``beta`` is undefined.
    beta : numpy.ndarray
        ``(series,)`` the Theil-Sen slope (median of pairwise slopes, Sen 1968)
        of ``E`` on ``g`` over the normal runs of the series' label; NaN where
        fewer than ``min_runs`` runs or no spread in ``g``.

    Notes
    -----
    Only for sweeps in random order. In a sequential sweep the runs executed
    nearest to a run are those of the neighbouring budgets, so the host state
    is a smooth function of the budget and removing it removes regimes too;
    check :func:`sequential_share` (or :func:`budget_ordered`) first.
    """
    E = np.asarray(E, dtype=float)
    g = np.asarray(g, dtype=float)
    S = E.shape[0]
    labels = np.arange(S) if by is None else np.unique(np.asarray(by), return_inverse=True)[1]
    if labels.shape != (S,):
        raise ValueError(f"by must have one label per series ({S}), got shape {np.asarray(by).shape!r}")
    fit = np.asarray(normal, dtype=bool) & np.isfinite(E) & np.isfinite(g)
    beta = np.full(S, np.nan)
    for lab in np.unique(labels):
        ss = labels == lab
        x, y = g[ss][fit[ss]], E[ss][fit[ss]]
        if x.size >= min_runs and np.ptp(x) > 0:
            beta[ss] = _sps.theilslopes(y, x).slope
    b = np.where(np.isfinite(beta), beta, 0.0)[:, None, None]
    return np.where(np.isfinite(g), E - b * g, E), beta
