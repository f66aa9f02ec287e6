"""Adaptive refinement of the budget grid: a bisection search for regime boundaries.

After the coarse grid of a series (one model x device x dtype x cache x
prompt_len) is measured, each budget gets a *level*: how far its median
latency lies from a smooth trend, ``e_b = log(median_b / f(b))``, where
``f`` is the analysis' baseline, :func:`collector.shared.trend.robust_fit` (a
polynomial in the budget, degree 2 from five coarse budgets on, else 1, that
never falls with the budget, fitted to the coarse medians with Tukey's
biweight), weighted by the fit and fitted leaning up and down, keeping the
fit whose coarse levels have the smaller MAD about 0, so a slow or fast
regime covering a minority of the grid does not bend the trend. Two
neighbouring budgets
*differ* when

    |e_a - e_b| > max(z * sqrt(v_a + v_b), log(1 + min_effect))

with ``v_b = (pi / 2) * sigma**2 / n_b`` the variance of the median of
``n_b`` ok runs, ``sigma`` the noise of log latency: the median over budgets of
the trial standard deviation (with one trial: the robust spread of the
coarse levels). ``z`` = 4 and ``min_effect`` = 0.1 by default.

Each pair of neighbours (among all budgets measured so far) that differs and
lies more than ``resolution`` tokens apart gets its midpoint measured next;
pairs inside one regime do not differ and cost nothing. The search is
stateless: it is recomputed from the data after each round, so a resumed
sweep makes the same decisions. It stops when every differing pair is at
most ``resolution`` apart (each boundary located), or when the sweep's run
limit is reached. A regime lying entirely between two coarse budgets is
invisible to it; the coarse grid must be finer than the narrowest regime
one wants to find.

This module is numpy/scipy only; the collector never imports the analysis.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from collector.shared.errors import ConfigError
from collector.shared.trend import mad_sd, robust_fit

__all__ = ["Boundary", "Levels", "levels", "find_boundaries", "next_budgets", "MIN_COARSE"]

#: Fewest coarse budgets with ok runs for which a series is refined.
MIN_COARSE = 4


@dataclass(frozen=True)
class Levels:
    """Levels of one series: ``budgets`` (sorted), ``level`` (log excess over the
    trend), ``n`` (ok runs per budget), ``sigma`` (noise of log latency)."""

    budgets: tuple[int, ...]
    level: tuple[float, ...]
    n: tuple[int, ...]
    sigma: float


@dataclass(frozen=True)
class Boundary:
    """Two neighbouring budgets whose latencies differ more than their noise allows.

    ``jump`` is the ratio of the upper to the lower budget's latency relative
    to the trend (> 1: entering a slow regime); ``located`` is True when
    ``hi - lo <= resolution``.
    """

    lo: int
    hi: int
    jump: float
    located: bool


def levels(samples: Mapping[int, Sequence[float]], *, grid: Collection[int]) -> Levels | None:
    """Levels of every budget with at least one ok latency; None when fewer than
    :data:`MIN_COARSE` grid budgets have one (too few to tell a trend from a regime)."""
    data = {int(b): np.asarray([v for v in vals if math.isfinite(v) and v > 0], float)
            for b, vals in samples.items()}
    data = {b: v for b, v in data.items() if v.size}
    coarse = sorted(b for b in data if b in set(grid))
    if len(coarse) < MIN_COARSE:
        return None
    budgets = sorted(data)
    med = np.array([np.log(np.median(data[b])) for b in budgets])
    n = np.array([data[b].size for b in budgets])
    sds = [float(np.std(np.log(data[b]), ddof=1)) for b in budgets if data[b].size >= 2]
    sigma_trial = float(np.median(sds)) if sds else float("nan")
    in_grid = np.isin(budgets, coarse)
    # leaning up (a slow regime) and down (a fast one); the trend is the fit most grid budgets lie close to
    fits = [robust_fit(med[None], np.asarray(budgets, float) / budgets[-1], 2 if len(coarse) >= 5 else 1,
                       mask=in_grid[None], scale_floor=sigma_trial if math.isfinite(sigma_trial) else 0.01,
                       lean=side, weigh_by_fit=True)[0][0] for side in (1, -1)]
    level = min((med - np.log(f) for f in fits), key=lambda e: float(mad_sd(e[in_grid], center=0.0)))
    sigma = sigma_trial if math.isfinite(sigma_trial) else float(mad_sd(level[in_grid]))
    return Levels(tuple(budgets), tuple(float(v) for v in level), tuple(int(k) for k in n), sigma)


def find_boundaries(samples: Mapping[int, Sequence[float]], *, grid: Collection[int], resolution: int,
                    z: float = 4.0, min_effect: float = 0.1) -> list[Boundary]:
    """Neighbouring measured budgets that differ (see the module docstring).

    Parameters
    ----------
    samples
        Budget -> latencies (s) of the ok runs at that budget.
    grid
        The coarse budgets (the trend is fitted to these).
    resolution
        Tokens to which a boundary must be located.
    z, min_effect
        Noise multiple and smallest relative jump that count as a difference.

    Returns
    -------
    list of Boundary
        In budget order.
    """
    if resolution < 1:
        raise ConfigError(f"resolution must be >= 1 token, got {resolution!r}")
    if z <= 0 or min_effect < 0:
        raise ConfigError(f"z must be > 0 and min_effect >= 0, got z={z!r}, min_effect={min_effect!r}")
    lv = levels(samples, grid=grid)
    if lv is None:
        return []
    floor = math.log1p(min_effect)
    out = []
    for i in range(len(lv.budgets) - 1):
        va = (math.pi / 2) * lv.sigma**2 / lv.n[i]
        vb = (math.pi / 2) * lv.sigma**2 / lv.n[i + 1]
        diff = lv.level[i + 1] - lv.level[i]
        if abs(diff) > max(z * math.sqrt(va + vb), floor):
            lo, hi = lv.budgets[i], lv.budgets[i + 1]
            out.append(Boundary(lo, hi, float(math.exp(diff)), hi - lo <= resolution))
    return out


def next_budgets(samples: Mapping[int, Sequence[float]], *, grid: Collection[int], resolution: int,
                 measured: Collection[int] = (), z: float = 4.0, min_effect: float = 0.1) -> list[int]:
    """Budgets to measure next: the midpoint of each differing pair not yet located.

    ``measured`` holds every budget already tried (failed ones included), which is never proposed again.
    The list is in priority order: widest gap first, then the strongest jump.
    """
    tried = set(int(b) for b in measured) | set(int(b) for b in samples)
    found = find_boundaries(samples, grid=grid, resolution=resolution, z=z, min_effect=min_effect)
    found.sort(key=lambda bd: (-(bd.hi - bd.lo), -abs(math.log(bd.jump)), bd.lo))
    out: list[int] = []
    for bd in found:
        if bd.located:
            continue
        mid = (bd.lo + bd.hi) // 2
        if mid not in tried and mid not in out:
            out.append(mid)
    return out
