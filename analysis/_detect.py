"""The per-series engine of :func:`analysis.regimes.regimes` (pure numpy).

:func:`analyse_block` takes a block of series ``(..., budget, trial)`` and
returns named float arrays (:data:`OUTPUTS`): per series, the per-budget
results (baseline, ratio, regime id, normal flag), the per-segment results
padded to as many entries as budgets, and a few per-series scalars. It depends
only on its inputs (random draws are seeded per series), so the result of a
block does not depend on how the series were split into blocks: eager and
dask-parallel runs give the same numbers.
"""

from __future__ import annotations

import warnings

import numpy as np

from analysis import baseline as _bl
from analysis import scan as _scan
from analysis import segments as _sg
from analysis import stats as _st

__all__ = [
    "FIELDS_BUDGET", "FIELDS_SEGMENT", "FIELDS_SERIES", "OUTPUTS", "SEGMENT_DIM", "analyse_block", "reference_degree",
]

#: per budget
FIELDS_BUDGET: tuple[str, ...] = ("baseline", "ratio", "regime", "normal")
#: per segment (indices are positions on the budget axis)
FIELDS_SEGMENT: tuple[str, ...] = (
    "seg_start", "seg_end", "start_lo", "start_hi", "end_lo", "end_hi",
    "level", "effect", "effect_lo", "effect_hi", "p", "reproducible", "in_normal", "n_cells",
    "step", "p_run", "p_scatter",
)
#: per series
FIELDS_SERIES: tuple[str, ...] = (
    "sigma", "penalty", "degree", "n_segments", "detected", "p_series", "mde", "mde_4", "scatter",
)
#: Core dim of the per-segment outputs (as long as the budget axis: a series has at most one segment a budget).
SEGMENT_DIM = "_segment"
#: Every output of :func:`analyse_block` and its core dims.
OUTPUTS: dict[str, tuple[str, ...]] = {
    **{name: ("budget",) for name in FIELDS_BUDGET},
    **{name: (SEGMENT_DIM,) for name in FIELDS_SEGMENT},
    **{name: () for name in FIELDS_SERIES},
}
#: The per-series results of the step scan (:func:`analysis.scan.series_scan`), in its order.
_SCAN_FIELDS: tuple[str, ...] = ("p_series", "mde", "mde_4", "scatter")
_MAX_BOOT_CELLS = 4_000_000
_MAX_BOUNDARY_BOOT = 200


def _nanmedian(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """NaN-ignoring median (a sort-based fast path; numpy's nanmedian is slow on many short rows)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(ax % a.ndim for ax in axes)
    rest = [d for d in range(a.ndim) if d not in axes]
    moved = np.transpose(a, rest + list(axes))
    return _st.nanmedian_last(moved.reshape(moved.shape[: len(rest)] + (-1,)))


def analyse_block(
    y: np.ndarray,
    degree: np.ndarray,
    series_id: np.ndarray,
    *,
    budgets: np.ndarray,
    method: str,
    penalty: float | None,
    min_effect: float,
    n_boot: int,
    seed: int,
    normal_rule: str,
    n_perm: int = 200,
    alpha: float = 0.05,
) -> np.ndarray:
    """Baseline, segments and segment statistics of every series in a block.

    Parameters
    ----------
    y
        ``(..., budget, trial)`` positive values (NaN: no data).
    degree
        ``(...)`` polynomial degree of the expected scaling (0, 1, 2; -1:
        choose linear or quadratic by fit).
    series_id
        ``(...)`` a stable integer per series (seeds its random draws).
    budgets
        ``(budget,)`` increasing budget values.
    method, penalty, min_effect, n_boot, seed, normal_rule, n_perm, alpha
        As in :func:`analysis.regimes.regimes`.

    Returns
    -------
    dict
        One float array per name of :data:`OUTPUTS`: ``FIELDS_BUDGET`` ``(..., budget)``,
        ``FIELDS_SEGMENT`` ``(..., budget)`` (segment entries, NaN past the series' number),
        ``FIELDS_SERIES`` ``(...)``.
    """
    lead = y.shape[:-2]
    nb, T = y.shape[-2:]
    Y = np.asarray(y, dtype=float).reshape(-1, nb, T)
    deg_in = np.broadcast_to(np.asarray(degree), lead).reshape(-1).astype(int)
    sid = np.broadcast_to(np.asarray(series_id), lead).reshape(-1).astype(np.int64)
    S = Y.shape[0]
    fb = {name: np.full((S, nb), np.nan) for name in FIELDS_BUDGET}
    fs = {name: np.full((S, nb), np.nan) for name in FIELDS_SEGMENT}
    fx = {name: np.full(S, np.nan) for name in FIELDS_SERIES}

    def named() -> dict[str, np.ndarray]:
        return {name: a.reshape(lead + a.shape[1:]) for name, a in (fb | fs | fx).items()}

    if S == 0:
        return named()
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.where(np.isfinite(Y) & (Y > 0), np.log(np.where(Y > 0, Y, 1.0)), np.nan)
    m = _nanmedian(L, axis=-1)
    n_t = np.isfinite(L).sum(axis=-1)
    has = np.isfinite(m)
    n_valid = has.sum(axis=1)
    x = np.asarray(budgets, dtype=float) / float(np.max(budgets))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n_typ = np.nan_to_num(np.nanmedian(np.where(n_t > 0, n_t, np.nan), axis=1), nan=1.0)

    # ---- noise: replicates where there are any, neighbour differences otherwise
    sig_run = _st.replicate_sigma(L)
    sig_m = _st.median_sigma(np.maximum(np.nan_to_num(sig_run, nan=0.02), _st.SIGMA_FLOOR), n_typ)
    deg = deg_in.copy()
    auto = deg < 0
    if auto.any():
        deg[auto] = _bl.choose_degree(m[auto], x, scale_floor=sig_m[auto])
    lean = {"lowest": 1, "highest": -1}.get(normal_rule, 0)
    base = _fit_by_degree(m, x, deg, sig_m)
    single = ~np.isfinite(sig_run)
    if single.any():
        r0 = m - np.log(base)
        sig_run[single] = _st.neighbour_sigma(r0[single])
        sig_run = np.maximum(np.nan_to_num(sig_run, nan=0.02), _st.SIGMA_FLOOR)
        sig_m = _st.median_sigma(sig_run, n_typ)
        base[single] = _fit_by_degree(m[single], x, deg[single], sig_m[single])
    sig_run = np.maximum(sig_run, _st.SIGMA_FLOOR)
    sig_m = _st.median_sigma(sig_run, n_typ)
    # the step scan's smooth reference: the baseline family fitted to all budgets with Huber weights (never
    # zero, so an edge budget with a large fixed cost is not dropped and left behind); the scan then
    # projects out every direction in which that curve could move, a fixed-cost intercept included
    base_ref = _fit_by_degree(m, x, deg, sig_m, loss="huber")
    pen = 2.0 * sig_m**2 * np.log(np.maximum(n_valid, 2)) if penalty is None else np.full(S, float(penalty))

    thr = float(np.log1p(min_effect))
    r0 = m - np.log(base)
    # first guess for the detector: a fit leaning towards the level the normal rule prefers
    base_lean = _fit_by_degree(m, x, deg, sig_m, lean=lean) if lean else base
    with np.errstate(invalid="ignore"):
        evidence = np.nanmax(np.abs(np.where(has, r0, 0.0)), axis=1) >= thr
        evidence |= np.nanmax(np.abs(np.where(has, m - np.log(base_lean), 0.0)), axis=1) >= thr
    run = evidence & (n_valid >= 3)

    # ---- series without evidence: one normal segment, no detector run
    quiet = np.flatnonzero(~run & (n_valid > 0))
    if quiet.size:
        E = L[quiet] - np.log(base_ref[quiet])[:, :, None]
        first = np.argmax(has[quiet], axis=1)
        last = nb - 1 - np.argmax(has[quiet][:, ::-1], axis=1)
        fb["baseline"][quiet] = base[quiet]
        fb["ratio"][quiet] = np.exp(r0[quiet])
        fb["regime"][quiet] = 0.0
        fb["normal"][quiet] = 1.0
        fs["seg_start"][quiet, 0] = first
        fs["seg_end"][quiet, 0] = last
        fs["level"][quiet, 0] = _nanmedian(np.where(has[quiet], r0[quiet], np.nan), axis=1)
        est, lo, hi = _bootstrap_many(E, n_boot, seed)
        fs["effect"][quiet, 0] = est
        fs["effect_lo"][quiet, 0] = lo
        fs["effect_hi"][quiet, 0] = hi
        fs["in_normal"][quiet, 0] = 1.0
        fs["n_cells"][quiet, 0] = np.isfinite(E).sum(axis=(1, 2))
        fx["n_segments"][quiet] = 1.0
        for k, s in enumerate(quiet):
            vs = np.flatnonzero(has[s])
            if vs.size < 3:
                continue
            rng = np.random.default_rng([int(seed), int(sid[s]) & 0x7FFFFFFF])
            basis = _scan.tangent_basis(x[vs], base_ref[s][vs], int(deg[s]))
            null = _scan.prepare_null(E[k][vs], x[vs], n_perm, rng, basis=basis)
            floor = max(float(sig_m[s]), _st.SIGMA_FLOOR)
            for name, v in zip(_SCAN_FIELDS, _scan.series_scan(null, alpha, floor)):
                fx[name][s] = v

    # ---- series with evidence: detect, choose normal, refit, test
    for s in np.flatnonzero(run):
        rng = np.random.default_rng([int(seed), int(sid[s]) & 0x7FFFFFFF])
        res = _one_series(L[s], m[s], x, base_lean[s], base_ref[s], int(deg[s]), float(sig_run[s]), float(sig_m[s]), float(pen[s]),
                          method=method, thr=thr, n_boot=n_boot, rng=rng, normal_rule=normal_rule,
                          tol=max(0.5 * thr, 2.0 * float(sig_m[s])), n_perm=n_perm, alpha=alpha)
        b, segs, series_stats = res
        for name, v in zip(_SCAN_FIELDS, series_stats):
            fx[name][s] = v
        for name in FIELDS_BUDGET:
            fb[name][s] = b[name]
        for name, vals in segs.items():
            fs[name][s, : len(vals)] = vals
        fx["n_segments"][s] = len(segs["seg_start"])
        fx["detected"][s] = 1.0

    fx["sigma"][:] = sig_run
    fx["penalty"][:] = pen
    fx["degree"][:] = deg
    return named()


def reference_degree(deg: np.ndarray) -> np.ndarray:
    """Degree of the baseline refitted to a series with no regime: quadratic for growing series (the
    per-token cost grows with the context, with the cache too), else as given."""
    return np.where(np.asarray(deg) >= 1, 2, deg)


def _fit_by_degree(m: np.ndarray, x: np.ndarray, deg: np.ndarray, floor: np.ndarray,
                   mask: np.ndarray | None = None, single_term: bool = False, lean: int = 0,
                   loss: str = "biweight") -> np.ndarray:
    base = np.full(m.shape, np.nan)
    for d in np.unique(deg):
        rows = np.flatnonzero(deg == d)
        base[rows] = _bl.robust_fit(m[rows], x, int(d), mask=None if mask is None else mask[rows],
                                    scale_floor=floor[rows], single_term=single_term, lean=lean, loss=loss)[0]
    return base


#: A seed of the normal regime first takes in segments within this many tolerances of its own fit.
GROW_TOL = 3.0
#: A normal regime spanning less than this share of the budget range gets a one-term baseline.
NARROW_SPAN = 0.5


def _narrow(x: np.ndarray, used: np.ndarray, valid: np.ndarray) -> bool:
    full = x[valid].max() - x[valid].min()
    part = x[used].max() - x[used].min() if used.any() else 0.0
    return bool(full > 0 and part < NARROW_SPAN * full)


def _bootstrap_many(E: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median ratio and trial-resampling CI of whole series at once (``E``: (S, budget, trial))."""
    S, nb, T = E.shape
    est = np.exp(_nanmedian(E.reshape(S, -1), axis=1))
    lo = np.full(S, np.nan)
    hi = np.full(S, np.nan)
    if n_boot <= 0 or T < 2:
        return est, lo, hi
    idx = np.random.default_rng([int(seed), 0x5EED]).integers(0, T, size=(n_boot, T))
    step = max(1, _MAX_BOOT_CELLS // max(nb * T * n_boot, 1))
    for a in range(0, S, step):
        lo[a : a + step], hi[a : a + step] = _st.median_ci(E[a : a + step], idx)
    return est, lo, hi


def _one_series(L, m, x, base0, base_all, deg, sig_run, sig_m, pen, *, method, thr, n_boot, rng, normal_rule, tol, n_perm,
                alpha):
    nb, T = L.shape
    valid = np.isfinite(m)
    vi = np.flatnonzero(valid)
    n = len(vi)
    need = n if normal_rule == "majority" else max(2, int(np.ceil(_sg.MIN_NORMAL_SHARE * n)))

    memo: dict[bytes, np.ndarray] = {}

    def refit(seg_sel: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        used = np.zeros(nb, dtype=bool)
        used[vi[np.repeat(seg_sel, sizes)]] = True
        key = used.tobytes()
        if key not in memo:
            memo[key] = _refit(used)
        return memo[key]

    def _refit(used: np.ndarray) -> np.ndarray:
        # too narrow to pin down intercept and slope: a one-term model (constant cost per token, or per
        # token squared), which extrapolates sanely
        return _fit_by_degree(m[None], x, np.array([deg]), np.array([sig_m]), mask=used[None],
                              single_term=_narrow(x, used, valid))[0]

    def choose(base: np.ndarray, ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Seed a candidate normal regime from each level group, grow it to every segment that lies
        on the curve refitted to it, and keep the one the rule prefers."""
        sizes = np.diff([0] + ends)
        lev0 = _sg.levels(m[vi] - np.log(base[vi]), ends)
        group = _sg.group_levels(lev0, tol)
        group_level = np.array([np.median(lev0[group == k]) for k in range(int(group.max()) + 1)])
        group_size = np.bincount(group, weights=sizes)
        covered = np.zeros(len(sizes), dtype=bool)
        best = None
        for g in range(int(group.max()) + 1):
            sel = group == g
            if np.all(covered[sel]):
                continue
            b = refit(sel, sizes)
            for it in range(5):
                # first grow loosely (a seed's own fit extrapolates poorly), then keep what lies on the refit
                near = np.abs(_sg.levels(m[vi] - np.log(b[vi]), ends)) <= (GROW_TOL * tol if it == 0 else tol)
                if not near.any() or np.array_equal(near, sel):
                    break
                sel = near
                b = refit(sel, sizes)
            # grow: try to add each other level group (largest first, so the fit is anchored by many
            # budgets before small groups are judged), kept when every chosen segment stays on the refit
            for h in np.lexsort((np.abs(group_level - group_level[g]), -group_size)):
                add = (group == h) & ~sel
                if not add.any():
                    continue
                trial = sel | add
                bt = refit(trial, sizes)
                if np.all(np.abs(_sg.levels(m[vi] - np.log(bt[vi]), ends)[trial]) <= tol):
                    sel, b = trial, bt
            covered |= sel
            if not np.all(np.abs(_sg.levels(m[vi] - np.log(b[vi]), ends)[sel]) <= 1.5 * tol):
                continue
            cover = int(sizes[sel].sum())
            if normal_rule == "majority":
                score = -float(cover)
            elif cover < min(need, n):
                continue
            else:
                score = float(np.mean(np.log(b[vi]))) * (1.0 if normal_rule == "lowest" else -1.0)
            if best is None or score < best[0] - 1e-12:
                best = (score, sel, b)
        if best is None:  # nothing consistent: the level group covering most budgets
            sel = group == int(np.argmax(np.bincount(group, weights=sizes)))
            return sel, refit(sel, sizes)
        return best[1], best[2]

    base = base0
    prev = None
    ends: list[int] = [n]
    is_norm = np.ones(1, dtype=bool)
    for _ in range(6):
        ends = _sg.detect(m[vi] - np.log(base[vi]), method, pen, sig_m)
        is_norm, new_base = choose(base, ends)
        nmask = np.repeat(is_norm, np.diff([0] + ends))
        if prev is not None and np.array_equal(nmask, prev):
            base = new_base
            break
        prev, base = nmask, new_base
    r = m[vi] - np.log(base[vi])
    ends, is_norm = _sg.merge_departures(r, ends, is_norm)
    sizes = np.diff([0] + ends)
    lev = _sg.levels(r, ends)
    nmask = np.repeat(is_norm, sizes)
    starts_v = np.array([0] + ends[:-1])
    ends_v = np.array(ends) - 1
    k = len(ends)

    E = L - np.log(base)[:, None]
    # budget -> segment (budgets without data join the segment of the previous budget with data)
    seg_of_valid = np.repeat(np.arange(k), sizes)
    regime = np.zeros(nb)
    pos = np.searchsorted(vi, np.arange(nb), side="right") - 1
    regime[:] = seg_of_valid[np.maximum(pos, 0)]
    normal_b = is_norm[regime.astype(int)].astype(float)

    # boundaries: resample trials (or, with one trial, the noise) and re-estimate each one
    start_lo = np.full(k, np.nan)
    start_hi = np.full(k, np.nan)
    end_lo = np.full(k, np.nan)
    end_hi = np.full(k, np.nan)
    if k > 1:
        nbb = min(max(n_boot, 0), _MAX_BOUNDARY_BOOT)
        if nbb > 0:
            if T >= 2:
                idx = rng.integers(0, T, size=(nbb, T))
                Xb = _nanmedian(E[vi][:, idx], axis=-1).T  # (nbb, nv)
                Xb = np.where(np.isfinite(Xb), Xb, r[None, :])
            else:
                fitted = np.repeat(lev, sizes)
                Xb = fitted[None, :] + rng.normal(0.0, sig_m, size=(nbb, len(vi)))
            lo, hi = _sg.boundary_intervals(Xb, ends)
        else:
            lo = hi = np.array(ends[:-1])
        start_lo[1:], start_hi[1:] = vi[lo], vi[hi]
        end_lo[:-1], end_hi[:-1] = vi[lo - 1], vi[hi - 1]

    full_start = vi[starts_v]
    full_end = vi[ends_v]
    normal_rows = vi[nmask]
    effect = np.full(k, np.nan)
    e_lo = np.full(k, np.nan)
    e_hi = np.full(k, np.nan)
    p = np.full(k, np.nan)
    p_run = np.full(k, np.nan)
    p_sc = np.full(k, np.nan)
    stp = np.full(k, np.nan)
    repro = np.full(k, np.nan)
    n_cells = np.zeros(k)
    # the step scan: each segment is tested as a discontinuity against a smooth curve, with null
    # distributions that scan every interval (run permutation and budget-level scatter)
    flagged = [(int(starts_v[j]), int(ends_v[j])) for j in range(k) if not is_norm[j]]
    E_all = L - np.log(base_all)[:, None]
    basis = _scan.tangent_basis(x[vi], base_all[vi], deg)
    null = _scan.prepare_null(E_all[vi], x[vi], n_perm, rng, flagged, basis=basis)
    floor = max(sig_m, _st.SIGMA_FLOOR)
    series_stats = _scan.series_scan(null, alpha, floor)
    noise_m = max(floor, series_stats[3] if np.isfinite(series_stats[3]) else 0.0)
    for j in range(k):
        rows = np.arange(full_start[j], full_end[j] + 1)
        Es = E[rows]
        ref = np.setdiff1d(normal_rows, rows, assume_unique=True)
        repro[j] = _st.reproducibility(Es, E[ref], min_log=thr)
        effect[j], e_lo[j], e_hi[j] = _st.bootstrap_median(Es, n_boot, rng)
        n_cells[j] = np.isfinite(Es).sum()
        if not is_norm[j]:
            with np.errstate(over="ignore"):
                stp[j] = np.exp(_scan.step(null, int(starts_v[j]), int(ends_v[j]))[0])
            p[j], p_run[j], p_sc[j] = _scan.segment_p(null, int(starts_v[j]), int(ends_v[j]), floor, alpha)
        # never narrower than the budget-level noise allows (two equal runs are not a precise estimate)
        if np.isfinite(effect[j]):
            hw = 1.96 * noise_m / np.sqrt(max(int(sizes[j]), 1))
            e_lo[j] = np.fmin(e_lo[j], effect[j] * np.exp(-hw))
            e_hi[j] = np.fmax(e_hi[j], effect[j] * np.exp(hw))
    budgets_out = {
        "baseline": base,
        "ratio": np.exp(m - np.log(base)),
        "regime": regime,
        "normal": normal_b,
    }
    segs = {
        "seg_start": full_start.astype(float), "seg_end": full_end.astype(float),
        "start_lo": start_lo, "start_hi": start_hi, "end_lo": end_lo, "end_hi": end_hi,
        "level": lev, "effect": effect, "effect_lo": e_lo, "effect_hi": e_hi, "p": p,
        "reproducible": repro, "in_normal": is_norm.astype(float), "n_cells": n_cells,
        "step": stp, "p_run": p_run, "p_scatter": p_sc,
    }
    return budgets_out, segs, series_stats
