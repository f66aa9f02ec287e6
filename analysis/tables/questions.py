"""Tables of the per-question analyses: phases, memory, KV speedup, monotonicity, steps, boundaries, backends."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.core.labels import clean_text, fmt_interval, fmt_num, na
from analysis.tables.table import Table, flat, labels, select_rows

__all__ = ["backends", "boundaries", "kv", "memory", "monotonicity", "phases", "steps"]


def _dims(res: xr.Dataset, var: str, inner: tuple[str, ...] = ()) -> list[str]:
    return [str(d) for d in res[var].dims if d not in inner]


def _pct(x: float) -> str:
    return fmt_num(100 * x, ".0f") + "%" if np.isfinite(x) else ""


def _seconds(x: float, lo: float, hi: float) -> str:
    """``+3.21 s [2.97, 3.45]`` or ``-121 us [-308, 66]``: the unit chosen by the estimate, the CI in the same unit."""
    if not np.isfinite(x):
        return ""
    mag = abs(x) if x != 0 else max(abs(lo), abs(hi), 1.0)
    unit, scale = ("s", 1.0) if mag >= 1 else ("ms", 1e3) if mag >= 1e-3 else ("us", 1e6)
    ci = fmt_interval(lo * scale, hi * scale, ".3g")
    return f"{x * scale:+.3g} {unit} {ci}".strip()


def phases(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per regime: excess decode and prefill time with CIs and the decode share."""
    dims = _dims(res, "n_regimes")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in res.data_vars if "regime" in res[k].dims}
    rows = []
    def ci(name: str, s: int, r: int) -> str:
        return _seconds(g[name][s, r], g[name + "_lo"][s, r], g[name + "_hi"][s, r])

    split = flat(res, "n_split_runs", dims) if "n_split_runs" in res else None
    for s, r in zip(*np.nonzero(np.isfinite(g["regime_start"]))):
        a, b = g["regime_start"][s, r], g["regime_end"][s, r]
        ratio = g["regime_ratio"][s, r]
        if np.isfinite(g["excess_decode"][s, r]):
            share_ci = fmt_interval(100 * g["decode_share_lo"][s, r], 100 * g["decode_share_hi"][s, r], ".0f")
            fitted = (ci("excess_decode", s, r), ci("excess_prefill", s, r),
                      f"{_pct(g['decode_share'][s, r])} {share_ci}".strip(),
                      fmt_num(g["q_decode"][s, r], ".2g") or na(), fmt_num(g["q_prefill"][s, r], ".2g") or na())
        else:  # why the split could not be fitted: no phase times, or too few budgets around the regime
            why = ("no phase times" if split is not None and split[s] == 0
                   else "too few budgets outside")
            fitted = (na(why), na(), na(), na(), na())
        rows.append((names[s], fmt_num(a) if a == b else f"{fmt_num(a)}-{fmt_num(b)}",
                     f"x{fmt_num(ratio, '.2f')}" if np.isfinite(ratio) else na(), *fitted))
    rows_t, flags, note = select_rows(rows, ["hit"] * len(rows), [True] * len(rows), only_interesting=False,
                                      max_rows=max_rows, what="regimes")
    return Table(title="phases: where each regime's excess time goes",
                 columns=("series", "regime", "ratio", "excess decode", "excess prefill", "decode share",
                          "q decode", "q prefill"),
                 rows=rows_t, flags=flags, note=note, right=(False, True, True, True, True, True, True, True),
                 key=("series", "regime", "ratio", "excess decode", "decode share"),
                 legend=("regime: its budgets; ratio: latency / expected inside; excess decode / prefill: mean extra "
                         "seconds of each phase inside the regime [95% CI]; decode share: share of the excess in the "
                         "decode phase; q: corrected p-value of 'no excess' in that phase; n/a (no phase times): the "
                         "runs have no prefill_time / decode_time; n/a (too few budgets outside): too few budgets "
                         "with both phase times outside the regime to fit the trend"))


def memory(res: xr.Dataset, *, max_rows: int | None = None, show_all: bool = False) -> Table:
    """One row per series with a regime: how much of its excess memory explains, and what changes inside."""
    dims = _dims(res, "has_regime")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("has_regime", "r2_memory", "r2_added", "p", "q")}
    jump, changes, used = (flat(res, k, dims) for k in ("mem_jump", "mem_changes", "used"))
    covs = [clean_text(c) for c in res["covariate"].values.tolist()]
    rows, interesting = [], []
    for s in range(len(names)):
        has, n_used = bool(g["has_regime"][s]), int(used[s].sum())
        ch = ", ".join(f"{c} {fmt_num(100 * jump[s, k], '+.1f')}%" for k, c in enumerate(covs) if changes[s, k])
        if not has:  # nothing to explain
            cells = (na("no regime"), na(), na(), na())
        else:
            no_mem = n_used == 0 or not np.isfinite(g["r2_memory"][s])
            fitted = np.isfinite(g["r2_added"][s])
            cells = (na("no usable memory readings") if no_mem else _pct(g["r2_memory"][s]),
                     _pct(g["r2_added"][s]) if fitted else na("too few runs to fit"),
                     fmt_num(g["q"][s], ".2g") or na(),
                     na() if no_mem else (ch or "smooth"))
        rows.append((names[s], "yes" if has else "no", *cells, str(n_used)))
        interesting.append(has)
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=not show_all, max_rows=max_rows, what="series")
    return Table(title="memory: does memory explain the regimes?",
                 columns=("series", "regime", "memory explains", "regime adds", "q", "memory inside regime",
                          "covariates"),
                 rows=rows_t, flags=flags, note=note, right=(False, False, True, True, True, False, True),
                 key=("series", "regime", "memory explains", "regime adds", "q"),
                 legend=("memory explains: share of the excess latency (beyond a smooth budget trend) the memory "
                         "covariates explain; regime adds: share the regime explains on top; q: corrected p-value of "
                         "the regime's contribution; memory inside regime: covariates that jump inside the regime "
                         "beyond their trend (smooth: none); covariates: how many were usable; n/a: no value, with the "
                         "reason"))


def kv(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per series (every dim but cache): speedup outside and inside the collapse."""
    dims = _dims(res, "speedup_outside")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("speedup_outside", "speedup_inside", "n_collapsed", "collapse_start",
                                         "collapse_end")}
    lo, hi = flat(res, "speedup_lo", dims), flat(res, "speedup_hi", dims)
    rows, interesting = [], []
    speedup = flat(res, "speedup", dims)
    measured = np.isfinite(speedup).any(axis=1)  # both cache settings ran at some budget
    for s in range(len(names)):
        n = int(g["n_collapsed"][s])
        a, b = g["collapse_start"][s], g["collapse_end"][s]
        where = (fmt_num(a) if a == b else f"{fmt_num(a)}-{fmt_num(b)}") if n else "-"
        rng = na("too few trials")
        if np.isfinite(lo[s]).any():
            rng = f"{fmt_num(np.nanmin(lo[s]), '.2g')}-{fmt_num(np.nanmax(hi[s]), '.2g')}x"
        out = g["speedup_outside"][s]
        rows.append((names[s], f"{fmt_num(out, '.2f')}x" if np.isfinite(out) else na("no budget outside"),
                     f"{fmt_num(g['speedup_inside'][s], '.2f')}x" if n else "-", where, str(n), rng))
        interesting.append(n > 0)
    rows_t, flags, note = select_rows(rows, ["slow" if i else "" for i in interesting], interesting,
                                      only_interesting=False, max_rows=max_rows, what="series",
                                      measured=measured.tolist(), absent_why="no cache on/off pair")
    return Table(title="KV-cache speedup (latency cache off / cache on)",
                 columns=("series", "speedup outside", "inside collapse", "collapse budgets", "collapsed",
                          "CI range"),
                 rows=rows_t, flags=flags, note=note, right=(False, True, True, True, True, True),
                 key=("series", "speedup outside", "inside collapse", "collapse budgets"),
                 legend=("speedup outside: median speedup over budgets without a collapse; inside collapse: median "
                         "where the speedup falls significantly below its trend; collapse budgets: the largest "
                         "collapse; collapsed: budgets collapsed; CI range: lowest and highest 95% bound over budgets"))


def monotonicity(res: xr.Dataset, *, max_rows: int | None = None, show_all: bool = False) -> Table:
    """One row per series: monotone or not, inversions, the largest spike."""
    dims = _dims(res, "monotone")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("monotone", "n_inversions", "spike_ratio", "spike_budget",
                                         "spike_recovery_budget", "unexplained_share", "noise_sd")}
    rows, interesting = [], []
    for s in range(len(names)):
        mono = bool(g["monotone"][s])
        spike = (f"x{fmt_num(g['spike_ratio'][s], '.2f')} ({fmt_num(g['spike_budget'][s])} slower than "
                 f"{fmt_num(g['spike_recovery_budget'][s])})") if not mono else "-"
        rows.append((names[s], "yes" if mono else "no", str(int(g["n_inversions"][s])), spike,
                     _pct(g["unexplained_share"][s]) or na(),
                     fmt_num(100 * g["noise_sd"][s], ".2g") or na("too few trials")))
        interesting.append(not mono)
    center = flat(res, "center", dims)
    n_budgets = np.isfinite(center).sum(axis=1)
    measured = (n_budgets >= 2).tolist()  # a curve needs two budgets (a series with none is no series)
    rows_t, flags, note = select_rows(rows, ["slow" if i else "" for i in interesting], interesting,
                                      only_interesting=not show_all, max_rows=max_rows, what="monotone series",
                                      measured=measured, absent_what="series", absent_why="one measured budget",
                                      absent_count=int(np.sum(n_budgets == 1)))
    return Table(title="monotonicity: does more tokens ever take less time?",
                 columns=("series", "monotone", "inversions", "largest spike", "not monotone", "noise %"),
                 rows=rows_t, flags=flags, note=note, right=(False, False, True, False, True, True),
                 key=("series", "monotone", "largest spike"),
                 legend=("inversions: pairs of budgets where the smaller one is significantly slower; largest "
                         "spike: the biggest such ratio; not monotone: share of the variance the best non-decreasing "
                         "curve leaves unexplained; noise: per-run noise (% of the value)"))


def steps(res: xr.Dataset, *, max_rows: int | None = None, show_all: bool = False) -> Table:
    """One row per series: execution modes of the per-step times and what its slow budgets do."""
    dims = _dims(res, "n_modes")
    names = labels(res, dims)
    n_modes, noise = flat(res, "n_modes", dims), flat(res, "step_noise", dims)
    ratio = flat(res, "mode_ratio", dims)
    pattern, onset = flat(res, "pattern", dims), flat(res, "onset_step", dims)
    budgets = np.asarray(res["budget"].values)
    rows, interesting = [], []
    for s in range(len(names)):
        modes = ", ".join(f"{fmt_num(r, '.2f')}x" for r in np.sort(ratio[s][np.isfinite(ratio[s])]))
        parts = []
        for kind in ("whole", "enters", "leaves", "mixed"):
            hit = pattern[s] == kind
            if hit.any():
                txt = f"{kind}: " + ", ".join(fmt_num(b) for b in budgets[hit])
                if kind == "enters":
                    with np.errstate(all="ignore"):
                        txt += f" (from step ~{fmt_num(np.nanmedian(onset[s][hit]), '.0f')})"
                parts.append(txt)
        rows.append((names[s], str(int(n_modes[s])), modes or na("no per-step times"),
                     fmt_num(100 * noise[s], ".2g") or na(), "; ".join(parts) or "-"))
        interesting.append(bool(parts))
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=not show_all, max_rows=max_rows, what="series")
    return Table(title="per-step modes: is a slow run slow at every step?",
                 columns=("series", "modes", "mode ratios", "step noise %", "slow budgets"),
                 rows=rows_t, flags=flags, note=note, right=(False, True, False, True, False),
                 key=("series", "modes", "slow budgets"),
                 legend=("modes: distinct per-step speeds found; mode ratios: each mode's step time over the most "
                         "common one; step noise: per-step noise (%); slow budgets: budgets whose runs are in a slower "
                         "mode at every step (whole), switch into one part-way (enters), start slow (leaves) or mix"))


def boundaries(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per group (every series dim but prompt_len): onset and recovery axes and thresholds."""
    dims = _dims(res, "onset_axis")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("n_prompts", "onset_axis", "recovery_axis", "onset_threshold_lo",
                                         "onset_threshold_hi", "recovery_threshold_lo", "recovery_threshold_hi",
                                         "onset_slope_lo", "onset_slope_hi")}
    rows, interesting = [], []
    for s in range(len(names)):
        n = int(g["n_prompts"][s])
        rows.append((names[s], str(n), str(g["onset_axis"][s]),
                     fmt_interval(g["onset_threshold_lo"][s], g["onset_threshold_hi"][s], "g") or "-",
                     str(g["recovery_axis"][s]),
                     fmt_interval(g["recovery_threshold_lo"][s], g["recovery_threshold_hi"][s], "g") or "-",
                     fmt_interval(g["onset_slope_lo"][s], g["onset_slope_hi"][s], ".2f") or "-"))
        interesting.append(n > 0)
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=True, max_rows=max_rows, what="groups")
    return Table(title="boundaries: do onset and recovery follow the budget or the total length?",
                 columns=("group", "prompts", "onset axis", "onset threshold", "recovery axis", "recovery threshold",
                          "onset slope"),
                 rows=rows_t, flags=flags, note=note, right=(False, True, False, True, False, True, True),
                 key=("group", "onset axis", "onset threshold", "recovery axis"),
                 legend=("prompts: prompt lengths showing the regime; axis: budget (same budget for every prompt), "
                         "total (prompt + budget), ambiguous (the grid cannot tell) or neither; threshold: interval "
                         "holding the boundary in that axis' units; onset slope: slopes of the first anomalous budget "
                         "in prompt length compatible with the data (0: budget, -1: total length)"))


def backends(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per model x device (x other dims): do regimes appear, and how strong."""
    dims = _dims(res, "shows_regimes")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("shows_regimes", "n_series", "n_series_with_regime", "n_regimes",
                                         "share_anomalous", "max_ratio", "min_ratio", "anomalous_budgets")}
    rows, interesting = [], []
    for s in range(len(names)):
        hit = bool(g["shows_regimes"][s])
        rows.append((names[s], "yes" if hit else "no", f"{int(g['n_series_with_regime'][s])}/{int(g['n_series'][s])}",
                     str(int(g["n_regimes"][s])), _pct(g["share_anomalous"][s]) or na(),
                     f"x{fmt_num(g['max_ratio'][s], '.2f')}" if np.isfinite(g["max_ratio"][s]) else "-",
                     clean_text(g["anomalous_budgets"][s]) or "-"))
        interesting.append(hit)
    # a cell of no series is not worth a word; a device that a measured model was not run on is
    ran = res["n_series"] > 0
    elsewhere = (np.asarray((~ran & ran.any("device")).transpose(*dims).values).ravel()
                 if "device" in ran.dims and set(ran.dims) == set(dims) else None)
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=False, max_rows=max_rows, what="backends",
                                      measured=(g["n_series"] > 0).tolist(), absent_what="model x device cells",
                                      absent_why="the model not run on that device",
                                      absent_count=None if elsewhere is None else int(np.sum(elsewhere)))
    return Table(title="backends: which devices show regimes",
                 columns=("model device", "regimes", "series", "count", "cells inside", "max ratio",
                          "anomalous budgets"),
                 rows=rows_t, flags=flags, note=note, right=(False, False, True, True, True, True, False),
                 key=("model device", "regimes", "max ratio", "anomalous budgets"),
                 legend=("regimes: any series of this model on this device has one; series: with a regime / all "
                         "(dtypes, caches, prompts pooled); count: regimes; cells inside: share of (series, budget) "
                         "cells inside a regime; max ratio: largest latency / expected inside a slow regime"))
