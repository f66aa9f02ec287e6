"""Execution time as a confounder of budget regimes.

A host can have slow periods. Whether a slow budget interval is a property of
the budget or of *when* its runs were executed can only be told apart when its
runs are interleaved in time with runs of other budgets (a randomised sweep).
For each candidate segment this module

1. measures whether its runs **cluster in time**: the number of other runs
   executed between its first and last run, against the number expected if
   its runs were placed at random in the execution sequence;
2. builds a **time term**: for every run, the median log ratio (to its own
   series' baseline) of the ``k`` runs of normal budgets executed nearest to
   it, from any series (leave-one-out for normal runs);
3. fits ``e = b0 + b_budget * in_segment + b_time * time_term`` by OLS
   (statsmodels) on the segment's runs and the normal runs of its series and
   asks whether the budget effect survives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["TimeCheck", "check_segment", "prepare", "sequential_share", "time_key"]

#: Runs of normal budgets on each side used for the time term.
HALF_WINDOW = 4
#: A segment clusters in time when fewer than this share of the expected foreign runs fall inside its span.
CLUSTER_SHARE = 0.25


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


@dataclass(frozen=True)
class TimeCheck:
    """Prepared execution-order arrays of a whole dataset (see :func:`prepare`)."""

    pos: np.ndarray  # (S, nb, T) rank in execution order, -1 where unknown
    n_runs: int
    normal_pos: np.ndarray  # sorted positions of normal runs
    normal_e: np.ndarray  # their log ratios, in time order
    g_cells: np.ndarray  # (S, nb, T) time term of every run


def prepare(tkey: np.ndarray, E: np.ndarray, normal: np.ndarray) -> TimeCheck:
    """Rank runs in execution order and compute the time term of every run.

    Parameters
    ----------
    tkey
        ``(series, budget, trial)`` execution-time key (NaN: unknown).
    E
        Log ratio of each run to its series' baseline (NaN: no data).
    normal
        Runs of budgets in their series' normal regime.
    """
    ok = np.isfinite(tkey) & np.isfinite(E)
    flat_ok = np.flatnonzero(ok.ravel())
    t = tkey.ravel()[flat_ok]
    srt = flat_ok[np.argsort(t, kind="stable")]
    pos = np.full(E.size, -1, dtype=np.int64)
    pos[srt] = np.arange(srt.size)
    pos = pos.reshape(E.shape)
    nrm_sorted = srt[normal.ravel()[srt]]
    npos = pos.ravel()[nrm_sorted]
    ne = E.ravel()[nrm_sorted]
    h = HALF_WINDOW
    g = np.full(E.size, np.nan)
    if ne.size:
        padded = np.concatenate([np.full(h, np.nan), ne, np.full(h, np.nan)])
        win = sliding_window_view(padded, 2 * h + 1)
        loo = np.delete(win, h, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            g[nrm_sorted] = np.nanmedian(loo, axis=1)
        other = flat_ok[~normal.ravel()[flat_ok]]
        if other.size:
            j = np.searchsorted(npos, pos.ravel()[other])
            cols = j[:, None] + np.arange(-h, h)[None, :]
            inside = (cols >= 0) & (cols < ne.size)
            vals = np.where(inside, ne[np.clip(cols, 0, ne.size - 1)], np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                g[other] = np.nanmedian(vals, axis=1)
    return TimeCheck(pos=pos, n_runs=int(srt.size), normal_pos=npos, normal_e=ne, g_cells=g.reshape(E.shape))


def check_segment(tc: TimeCheck, E: np.ndarray, normal: np.ndarray, s: int, rows: np.ndarray,
                  log_effect: float, *, alpha: float) -> tuple[bool, float, bool]:
    """Time check of one segment (series ``s``, budget positions ``rows``).

    Returns
    -------
    clustered : bool
        Its runs cluster in execution time (fewer than
        :data:`CLUSTER_SHARE` of the expected other runs lie between its first
        and last run): budget and time cannot be separated for it.
    p_time : float
        Two-sided p-value of the budget term in the model with a time term.
    survives : bool
        The budget term stays significant (``p_time < alpha``), has the
        segment's sign and at least half its size once time is in the model.
    """
    pos_seg = tc.pos[s, rows].ravel()
    e_seg = E[s, rows].ravel()
    g_seg = tc.g_cells[s, rows].ravel()
    keep = (pos_seg >= 0) & np.isfinite(e_seg)
    pos_seg, e_seg, g_seg = pos_seg[keep], e_seg[keep], g_seg[keep]
    n = pos_seg.size
    clustered = False
    if n >= 2 and tc.n_runs > n:
        foreign = (pos_seg.max() - pos_seg.min() + 1) - n
        expected = (tc.n_runs - n) * (n - 1) / (n + 1)
        clustered = bool(foreign < CLUSTER_SHARE * expected)
    ref_mask = normal[s].copy()
    ref_mask[rows] = False
    ref_mask &= (tc.pos[s] >= 0) & np.isfinite(E[s])
    e_ref = E[s][ref_mask]
    g_ref = tc.g_cells[s][ref_mask]
    y = np.concatenate([e_seg, e_ref])
    ind = np.concatenate([np.ones(n), np.zeros(e_ref.size)])
    g = np.concatenate([g_seg, g_ref])
    ok = np.isfinite(y) & np.isfinite(g)
    if ok.sum() < 4 or ind[ok].sum() < 1 or (1 - ind[ok]).sum() < 2:
        return clustered, np.nan, True
    X = np.column_stack([np.ones(ok.sum()), ind[ok], g[ok]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.OLS(y[ok], X).fit()
    beta = float(fit.params[1])
    p_time = float(fit.pvalues[1])
    if not np.isfinite(p_time):
        return clustered, np.nan, True
    survives = bool(p_time < alpha and np.sign(beta) == np.sign(log_effect) and abs(beta) >= 0.5 * abs(log_effect))
    return clustered, p_time, survives


def sequential_share(pos: np.ndarray) -> float:
    """Share of series whose runs were executed in budget order (|correlation| of rank and budget > 0.9).

    ``pos`` is ``(series, budget, trial)`` execution rank (-1: unknown).
    """
    nb = pos.shape[1]
    b = np.broadcast_to(np.arange(nb)[None, :, None], pos.shape).astype(float)
    ok = pos >= 0
    p = np.where(ok, pos, 0).astype(float)
    n = ok.sum(axis=(1, 2)).astype(float)
    good = n >= 3
    if not good.any():
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = (p * ok).sum(axis=(1, 2)) / n
        mb = (b * ok).sum(axis=(1, 2)) / n
        cov = (((p - mp[:, None, None]) * (b - mb[:, None, None])) * ok).sum(axis=(1, 2))
        vp = (((p - mp[:, None, None]) ** 2) * ok).sum(axis=(1, 2))
        vb = (((b - mb[:, None, None]) ** 2) * ok).sum(axis=(1, 2))
        rho = cov / np.sqrt(vp * vb)
    rho = rho[good & np.isfinite(rho)]
    return float(np.mean(np.abs(rho) > 0.9)) if rho.size else 0.0
