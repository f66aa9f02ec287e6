"""Fit collector.shared.sim's noise parameters to the real null corpus.

Data: every measured file (``attrs["simulated"] == 0``) in ``tests/data/real/``
and the published measured sweeps ``datasets/cuda-*.nc`` and ``datasets/cpu-*.nc``, plus any files
named on the command line. A *series* is one combination of every dim but
``budget`` and ``trial`` (model, device, dtype, cache, ...); its *kind* is its
device (cpu, cuda, ...). None of these files has a regime, so what is left
around a smooth curve is noise. Each estimator mirrors how
:class:`collector.shared.sim.LatencyModel` draws that noise (collector/shared/sim.py: a run's
time is a smooth curve times ``exp(N(-s**2/2, s))`` with
``noise_cv = sqrt(exp(s**2) - 1)``, times ``1 + drift * q``, times
``run_state_factor`` with probability ``run_state_prob``; each step times an
independent log-normal factor of CV ``step_cv``):

* **residuals**: per series, a median (L1) regression of latency on
  ``1, n, n**2`` (``n`` = budget), each run weighted by the inverse of its
  budget's median latency so that the fit is about relative error (robust to
  up to half the runs of a budget being slow); a run's residual is
  ``r = log(latency / curve)``, the log of the sim's run factor.
* **run-level states and run noise** (``run_state_prob``,
  ``run_state_factor``, ``noise_cv``): the sim's own model fitted by maximum
  likelihood (EM) to every series of a kind at once: in series ``i`` a run's
  ``r`` is ``N(mu_i, s_i)`` in the normal state and ``N(mu_i + d, s_i)`` in the
  slow state, which a run is in with probability ``p`` (at most 1/2). ``p`` and
  ``d`` are shared by the series (one state probability and factor, as in the
  sim), ``mu_i`` and ``s_i`` are each series' own. The states are kept when
  BIC prefers them to ``p = 0``. Fitted: ``run_state_prob = p``,
  ``run_state_factor = exp(d)``, ``noise_cv = sqrt(exp(s**2) - 1)`` with ``s``
  the median of the ``s_i``. Pooling matters: one series of 30-50 runs holds
  only a handful of slow runs, which a per-series mixture often cannot tell
  apart from noise.
* **drift** (``drift``): per series, OLS (statsmodels) of the normal-state
  residuals (posterior of the slow state < 1/2) on ``q = order / runs
  executed`` (the run's place in the execution sequence as a fraction, as the
  sim's ``position``); ``drift = exp(slope) - 1``. Random-order files only (in
  a sequential sweep time and budget are the same axis). The states and noise
  are then refitted on the residuals without the drift line. Fitted: median
  over series, floored at 0 (the sim has no negative drift).
* **step noise** (``step_cv``): for files with ``step_time``, per run the log
  step times of decode steps ``k >= 1`` (step 0 is the prefill) around a
  quadratic trend in ``k``; robust sd (normal-consistent MAD) -> ``step_cv`` as
  above. Fitted: median over series of the per-run median. The plain sd, the
  step-to-step jitter, the share of steps over 2x their trend and the lag-1
  autocorrelation are reported because the real step noise is neither
  Gaussian nor independent.

Also reported (not sim parameters): budget-level scatter (the part of the
residual variance that the trials of one cell share), cells whose every run
is slow against the number expected if states were independent, tails, the
share of runs that did not finish (status != ok), a fit per file, and a
self-check: the same estimators on data simulated from the fitted presets,
shaped like the corpus.

Usage::

    python benchmarks/calibrate_sim.py [EXTRA.nc ...] [--reps 4] [--write]

``--write`` writes the presets to collector/shared/sim_calibration.json (read by
``collector.shared.sim.noise_presets`` and ``LatencyModel.calibrated``) and a section
into docs/performance.md ("## Simulator noise calibrated to the real corpus").
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import median_abs_deviation

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402

__all__ = ["Series", "corpus_files", "fit_file", "series_of", "fit_group", "refit", "report", "main"]

COMMAND = "python benchmarks/calibrate_sim.py --write"
CALIBRATION_JSON = ROOT / "collector" / "shared" / "sim_calibration.json"
HEADING = "## Simulator noise calibrated to the real corpus"
PARAMS = ("noise_cv", "step_cv", "drift", "run_state_prob", "run_state_factor")
MIN_RUNS = 8  # ok runs a series needs to be fitted
MIN_BUDGETS = 4  # distinct budgets with an ok run
MIN_STEPS = 8  # decode steps a run needs for the step-noise fit
SD_FLOOR = 3e-3  # added in quadrature to every fitted sd (log units): no degenerate component
MIN_PRESET_SERIES = 6  # a device kind gets a preset only with this many series ...
MIN_PRESET_FILES = 2  # ... from this many files (one partial sweep is one host's afternoon, not a kind)


@dataclass
class Series:
    """One series of a measured file: its runs' residuals around the smooth curve."""

    file: str
    kind: str
    label: str
    order: str  # run order of the file (random, sequential)
    trials: int
    r: np.ndarray  # log(latency / curve) of each ok run
    q: np.ndarray  # place of each ok run in the execution sequence, in [0, 1)
    cell: np.ndarray  # budget index of each ok run
    step: dict[str, float] = field(default_factory=dict)


def corpus_files(extra: list[str] | None = None) -> list[str]:
    """The measured null files: tests/data/real/*.nc, datasets/cuda-*.nc, datasets/cpu-*.nc and ``extra``."""
    found = sorted(glob.glob(str(ROOT / "tests" / "data" / "real" / "*.nc")))
    found += sorted(glob.glob(str(ROOT / "datasets" / "cuda-*.nc")) + glob.glob(str(ROOT / "datasets" / "cpu-*.nc")))
    return found + [str(p) for p in extra or ()]


def _curve(budget: np.ndarray, lat: np.ndarray) -> np.ndarray | None:
    """Robust smooth curve of ``lat`` over ``budget`` (1-D, ok runs): weighted median regression."""
    import statsmodels.api as sm

    ub = np.unique(budget)
    med = {b: np.median(lat[budget == b]) for b in ub}
    scale = np.array([med[b] for b in budget])
    x = budget / budget.max()
    for degree in (2, 1):
        X = np.vander(x, degree + 1, increasing=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                beta = sm.QuantReg(lat / scale, X / scale[:, None]).fit(q=0.5, max_iter=5000).params
        except (ValueError, np.linalg.LinAlgError):
            continue
        fitted = X @ beta
        if np.all(fitted > 0):
            return fitted
    return None


def _cells(resid: np.ndarray, cell: np.ndarray) -> tuple[float, float]:
    """Within-cell sd (pooled) and between-cell sd (one-way random effects, moments) of ``resid``."""
    ids, inv, counts = np.unique(cell, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=resid) / counts
    dev = resid - means[inv]
    dof = int(np.sum(counts - 1))
    if dof < 2 or ids.size < 3:
        return float("nan"), float("nan")
    s_w2 = float(np.sum(dev**2) / dof)
    between = float(np.var(means, ddof=1) - s_w2 * np.mean(1.0 / counts))
    return float(np.sqrt(s_w2)), float(np.sqrt(max(between, 0.0)))


def _step_noise(steps: np.ndarray) -> dict[str, float]:
    """Per-run step noise of a (runs, steps) array (step 0 = prefill, NaN past the budget): medians over runs."""
    rows = []
    for t in steps:
        t = t[1:]
        t = t[np.isfinite(t) & (t > 0)]
        if t.size < MIN_STEPS:
            continue
        y = np.log(t)
        k = np.arange(t.size) / t.size
        X = np.vander(k, 3, increasing=True)
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        e = y - X @ beta
        # refit without gross spikes so that they do not bend the trend
        keep = np.abs(e - np.median(e)) <= 5 * median_abs_deviation(e, scale="normal") + 1e-12
        if keep.sum() >= MIN_STEPS:
            beta = np.linalg.lstsq(X[keep], y[keep], rcond=None)[0]
            e = y - X @ beta
        c = e - np.median(e)
        d = np.diff(e)
        rows.append((median_abs_deviation(e, scale="normal"), np.std(e, ddof=1), np.mean(c > np.log(2.0)),
                     np.corrcoef(e[:-1], e[1:])[0, 1] if e.size > 2 and np.std(e) > 0 else np.nan,
                     median_abs_deviation(d, scale="normal") / np.sqrt(2.0)))
    if not rows:
        return {}
    a = np.array(rows)
    return {"robust_sd": float(np.median(a[:, 0])), "sd": float(np.median(a[:, 1])),
            "spikes": float(np.mean(a[:, 2])), "lag1": float(np.nanmedian(a[:, 3])),
            "diff_sd": float(np.median(a[:, 4])),
            "runs": float(len(rows))}


def fit_file(path: str) -> tuple[list[Series], dict[str, dict[str, int]]]:
    """The series of one measured file and its run statuses by device kind.

    Raises
    ------
    ValueError
        When the file is simulated (``attrs["simulated"] == 1``).
    """
    import analysis

    ds = analysis.open_dataset(path).load()
    if int(ds.attrs.get("simulated", 0)) == 1:
        raise ValueError(f"{path!r} is simulated (attrs simulated=1); the calibration needs measured files")
    return series_of(ds, Path(path).name)


def series_of(ds: Any, name: str) -> tuple[list[Series], dict[str, dict[str, int]]]:
    """Residuals of every series of a loaded dataset, and its run statuses (not_applicable left out) by kind."""
    from collector.dataset import schema

    run_order = str(ds.attrs.get("run_order", "random"))
    sdims = [d for d in ds["latency"].dims if d not in ("budget", "trial")]
    shape = (-1, ds.sizes["budget"], ds.sizes["trial"])

    def flat(var: str) -> np.ndarray:
        return ds[var].transpose(*sdims, "budget", "trial").values.reshape(shape)

    lat, order, status = flat("latency"), flat("order"), flat("status")
    steps = None
    if "step_time" in ds:
        st = ds["step_time"].transpose(*sdims, "budget", "trial", "step").values
        steps = st.reshape(order.shape + (st.shape[-1],))
    n_exec = float(np.nanmax(np.where(status == 0, order, np.nan))) + 1 if (status == 0).any() else 1.0
    budgets = ds["budget"].values.astype(float)
    names = {v: k for k, v in schema.STATUS.items()}
    counts: dict[str, dict[str, int]] = {}
    out = []
    for s, idx in enumerate(np.ndindex(*(ds.sizes[d] for d in sdims))):
        coords = {d: ds[d].values[i] for d, i in zip(sdims, idx)}
        kind = str(coords.get("device", "unknown"))
        c = counts.setdefault(kind, {})
        for code, n in zip(*np.unique(status[s], return_counts=True)):
            if int(code) != schema.STATUS["not_applicable"]:
                key = names.get(int(code), str(code))
                c[key] = c.get(key, 0) + int(n)
        ok = np.isfinite(lat[s]) & (lat[s] > 0) & (status[s] == 0)
        b_idx, _ = np.nonzero(ok)
        if ok.sum() < MIN_RUNS or np.unique(b_idx).size < MIN_BUDGETS:
            continue
        y = lat[s][ok]
        curve = _curve(budgets[b_idx], y)
        if curve is None:
            continue
        label = " ".join(str(v) for d, v in coords.items() if ds.sizes[d] > 1 or d in ("model", "cache"))
        out.append(Series(file=name, kind=kind, label=label, order=run_order, trials=int(ds.sizes["trial"]),
                          r=np.log(y / curve), q=order[s][ok] / n_exec, cell=b_idx,
                          step=_step_noise(steps[s][ok]) if steps is not None else {}))
    return out, counts


def _logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _states(rs: list[np.ndarray], iters: int = 5000) -> dict[str, Any]:
    """The sim's run model fitted to several series at once by EM (see the module docstring).

    Returns ``p``, ``factor`` (1 and ``p = 0`` when BIC prefers no states), per-series ``mu`` and ``sd``, and each
    run's posterior probability of the slow state (``post``, one array per series).
    """
    sidx = np.concatenate([np.full(r.size, i) for i, r in enumerate(rs)])
    x = np.concatenate(rs)
    n, k = x.size, len(rs)
    cnt = np.bincount(sidx, minlength=k).astype(float)
    mu0 = np.bincount(sidx, weights=x, minlength=k) / cnt
    sd0 = np.sqrt(np.bincount(sidx, weights=(x - mu0[sidx]) ** 2, minlength=k) / cnt + SD_FLOOR**2)
    ll0 = float(_logpdf(x, mu0[sidx], sd0[sidx]).sum())
    mu = np.array([np.median(r) for r in rs])
    sd = np.array([median_abs_deviation(r, scale="normal") for r in rs]) + SD_FLOOR
    p, d = 0.1, float(np.log(1.4))
    ll_old = -np.inf
    g = np.zeros(n)
    for _ in range(iters):
        a = np.log1p(-p) + _logpdf(x, mu[sidx], sd[sidx])
        b = np.log(p) + _logpdf(x, mu[sidx] + d, sd[sidx])
        m = np.maximum(a, b)
        tot = m + np.log(np.exp(a - m) + np.exp(b - m))
        g = np.exp(b - tot)
        ll = float(tot.sum())
        p = float(np.clip(g.mean(), 1e-9, 0.5))
        d = float(np.sum(g * (x - mu[sidx])) / max(g.sum(), 1e-12))
        mu = np.bincount(sidx, weights=x - g * d, minlength=k) / cnt
        e2 = (1 - g) * (x - mu[sidx]) ** 2 + g * (x - mu[sidx] - d) ** 2
        sd = np.sqrt(np.bincount(sidx, weights=e2, minlength=k) / cnt + SD_FLOOR**2)
        if ll - ll_old < 1e-9 * n:
            break
        ll_old = ll
    split = np.cumsum([r.size for r in rs])[:-1]
    if -2 * ll + 2 * np.log(n) >= -2 * ll0:  # two more parameters (p, d) must pay for themselves
        return {"p": 0.0, "factor": 1.0, "mu": mu0, "sd": sd0, "post": np.split(np.zeros(n), split), "states": False}
    return {"p": p, "factor": float(np.exp(d)), "mu": mu, "sd": sd, "post": np.split(g, split), "states": True}


def _cv(sd: float) -> float:
    """CV of a log-normal factor whose log has sd ``sd`` (as collector.shared.sim draws it)."""
    return float(np.sqrt(np.expm1(sd**2)))


def _q(x: list[float] | np.ndarray) -> tuple[float, float, float]:
    """Median, lower and upper quartile of the finite values."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return (float("nan"),) * 3
    lo, med, hi = np.percentile(a, [25, 50, 75])
    return float(med), float(lo), float(hi)


def fit_group(series: list[Series], counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Fit the sim's noise settings to a group of series (one kind, all, one file) and describe the noise.

    Returns a dict with ``preset`` (the five settings) and the diagnostics the report prints.
    """
    import statsmodels.api as sm

    counts = counts or {}
    st = _states([s.r for s in series])
    slopes, tvals, rs = [], [], []
    for s, post in zip(series, st["post"]):
        r = s.r
        normal = post < 0.5
        if s.order != "sequential" and normal.sum() >= MIN_RUNS and np.ptp(s.q[normal]) > 0:
            res = sm.OLS(r[normal], sm.add_constant(s.q[normal])).fit()
            slopes.append(float(res.params[1]))
            tvals.append(float(res.tvalues[1]))
            r = r - res.params[1] * (s.q - s.q[normal].mean())
        rs.append(r)
    st = _states(rs)
    cvs, within, between, share, z, resid, slow_share = [], [], [], [], [], [], []
    cells_multi = slow_cells = 0
    slow_expected = 0.0
    for s, r, post, mu, sd in zip(series, rs, st["post"], st["mu"], st["sd"]):
        normal = post < 0.5
        cvs.append(_cv(sd))
        slow_share.append(float(np.mean(post)))
        w, b = _cells(r[normal], s.cell[normal])
        within.append(w)
        between.append(b)
        if np.isfinite(w) and np.isfinite(b) and w > 0:
            share.append(b**2 / (b**2 + w**2))
        n_cell = np.bincount(s.cell)
        n_slow = np.bincount(s.cell, weights=(~normal).astype(float), minlength=n_cell.size)
        multi = n_cell >= 2
        cells_multi += int(multi.sum())
        if st["states"]:
            slow_cells += int(np.sum(multi & (n_slow == n_cell)))
            slow_expected += float(np.sum(st["p"] ** n_cell[multi]))
        z.append((r - mu) / sd)
        resid.append(r - mu)
    z_all = np.concatenate(z)
    resid_all = np.concatenate(resid)
    steps = [s.step for s in series if s.step]
    noise = _q(cvs)
    drift = _q(slopes)
    step = _q([_cv(x["robust_sd"]) for x in steps])
    total = sum(counts.values())
    preset = {
        "noise_cv": round(noise[0], 4),
        "step_cv": round(step[0], 4) if np.isfinite(step[0]) else None,
        "drift": round(max(float(np.expm1(drift[0])), 0.0), 4) if np.isfinite(drift[0]) else 0.0,
        "run_state_prob": round(st["p"], 4),
        "run_state_factor": round(st["factor"], 4),
    }
    return {
        "preset": preset,
        "series": len(series),
        "runs": int(sum(s.r.size for s in series)),
        "files": sorted({s.file for s in series}),
        "trials": sorted({s.trials for s in series}),
        "order": sorted({s.order for s in series}),
        "noise_cv": noise,
        "mad_cv": _q([_cv(median_abs_deviation(r, scale="normal")) for r in rs]),
        "slow_share": _q(slow_share),
        "drift": tuple(float(np.expm1(v)) for v in drift),
        "drift_series": len(slopes),
        "drift_significant": int(sum(abs(t) > 2 for t in tvals)),
        "step_cv": step,
        "step_sd_cv": _q([_cv(x["sd"]) for x in steps]),
        "step_diff_cv": _q([_cv(x["diff_sd"]) for x in steps]),
        "step_spikes": _q([x["spikes"] for x in steps]),
        "step_lag1": _q([x["lag1"] for x in steps]),
        "step_series": len(steps),
        "step_runs": int(sum(x["runs"] for x in steps)),
        "within_sd": _q(within),
        "between_sd": _q(between),
        "between_share": _q(share),
        "cells_multi": cells_multi,
        "slow_cells": slow_cells,
        "slow_cells_expected": slow_expected,
        "above_3sd": float(np.mean(z_all > 3)),
        "below_3sd": float(np.mean(z_all < -3)),
        "resid_q": [float(v) for v in np.exp(np.percentile(resid_all, [1, 5, 50, 95, 99]))],
        "status": dict(sorted(counts.items())),
        "not_ok_share": float(1 - counts.get("ok", 0) / total) if total else float("nan"),
    }


def refit(shapes: list[tuple[str, Any]], kind: str, preset: dict[str, float | None], reps: int) -> dict[str, float]:
    """The estimators on data simulated from ``preset``, shaped like the measured datasets in ``shapes``.

    Each simulated file has the measured file's series, budgets, trials, run order and step timing, and the runs
    that did not finish there are missing here too; ``reps`` seeded copies of the whole set.
    """
    from analysis.synthetic import LatencyModel, make_dataset

    lm = LatencyModel(**{k: v for k, v in preset.items() if v is not None})
    series: list[Series] = []
    for rep in range(reps):
        for i, (name, ds) in enumerate(shapes):
            sim = make_dataset(
                1000 * rep + i, latency_model=lm, models=[str(m) for m in ds["model"].values],
                devices=[str(d) for d in ds["device"].values], dtypes=[str(d) for d in ds["dtype"].values],
                caches=[bool(c) for c in ds["cache"].values], prompt_lens=[int(v) for v in ds["prompt_len"].values],
                budgets=[int(b) for b in ds["budget"].values], trials=int(ds.sizes["trial"]),
                order=str(ds.attrs.get("run_order", "random")), step_time="step_time" in ds)
            ok = (ds["status"] == 0).transpose(*sim["status"].dims).values
            sim["latency"] = sim["latency"].where(ok)
            sim["status"] = sim["status"].where(ok, 4).astype(sim["status"].dtype)
            series += [s for s in series_of(sim, f"sim-{name}")[0] if kind == "all" or s.kind == kind]
    return fit_group(series)["preset"]


def _fmt(t: tuple[float, float, float], digits: int = 3, pct: bool = False) -> str:
    med, lo, hi = t
    if not np.isfinite(med):
        return "-"
    if pct:
        return f"{100 * med:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(groups: dict[str, dict[str, Any]], per_file: dict[str, dict[str, Any]], files: list[str],
           command: str = COMMAND, check: dict[str, dict[str, float]] | None = None, reps: int = 0) -> str:
    """The markdown section: command, fitted presets, diagnostics per kind, fit per file, self-check."""
    names = ", ".join(f"`{Path(p).name}`" for p in files)
    out = [
        f"Fitted with `{command}` on every measured file of the real null corpus ({len(files)} files: {names}). "
        "Each series (one model x device x dtype x cache x ... over budgets and trials) gets its own smooth curve "
        "and noise level; run-level states are fitted to all series of a kind at once; the estimators mirror how "
        "`collector.shared.sim` draws its noise (benchmarks/calibrate_sim.py's docstring; what the noise looks like: "
        "docs/methods.md, \"Noise in real measurements\"). The presets are written to "
        "`collector/shared/sim_calibration.json` and used by `LatencyModel.calibrated(kind)` and "
        "`analysis.synthetic.make_dataset(noise=kind)`.",
        "",
        f"Fit per device kind and over all (in brackets the median [IQR] over series); a kind becomes a preset "
        f"when it has at least {MIN_PRESET_SERIES} series from {MIN_PRESET_FILES} files:",
        "",
        "| kind | series (runs) | noise_cv | run_state_prob (posterior slow share per series) | run_state_factor "
        "| drift | step_cv |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, g in groups.items():
        p = g["preset"]
        step = (f"{p['step_cv']} ({_fmt(g['step_cv'])}; {g['step_series']} series, {g['step_runs']} runs)"
                if p["step_cv"] is not None else "- (no step_time)")
        n_files = len(g["files"])
        name = f"`{kind}`" if g.get("has_preset", True) else f"{kind} (no preset: {n_files} file{'s' * (n_files != 1)})"
        out.append(
            f"| {name} | {g['series']} ({g['runs']}) | {p['noise_cv']} ({_fmt(g['noise_cv'])}) "
            f"| {p['run_state_prob']} ({_fmt(g['slow_share'])}) | {p['run_state_factor']} "
            f"| {p['drift']} ({_fmt(g['drift'])}; {g['drift_series']} random-order series) | {step} |"
        )
    out += [
        "",
        "Run-level diagnostics (median [IQR] over series; sd in log units):",
        "",
        "| kind | run CV from the MAD | sd within a cell (trials) | sd of the cell level | cell share of variance "
        "| runs > 3 sd above / below the normal state | run / curve at 1, 5, 50, 95, 99 % "
        "| cells with every run slow (expected if independent) | drift with \\|t\\| > 2 | runs not ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, g in groups.items():
        rq = ", ".join(f"{v:.2f}" for v in g["resid_q"])
        st = ", ".join(f"{k} {v}" for k, v in g["status"].items())
        out.append(
            f"| {kind} | {_fmt(g['mad_cv'])} | {_fmt(g['within_sd'])} | {_fmt(g['between_sd'])} "
            f"| {_fmt(g['between_share'], 2)} | {100 * g['above_3sd']:.1f} % / {100 * g['below_3sd']:.1f} % "
            f"| {rq} | {g['slow_cells']} of {g['cells_multi']} ({g['slow_cells_expected']:.1f}) "
            f"| {g['drift_significant']} of {g['drift_series']} | {100 * g['not_ok_share']:.1f} % ({st}) |"
        )
    if any(g["step_series"] for g in groups.values()):
        out += [
            "",
            "Step-level diagnostics (files with `step_time`; per run, then median [IQR] over series):",
            "",
            "| kind | step CV from the MAD (= step_cv) | step CV from the plain sd | step-to-step CV (MAD of "
            "differences) | share of steps over 2x their trend | lag-1 autocorrelation |",
            "|---|---|---|---|---|---|",
        ]
        for kind, g in groups.items():
            if g["step_series"]:
                out.append(f"| {kind} | {_fmt(g['step_cv'])} | {_fmt(g['step_sd_cv'])} | {_fmt(g['step_diff_cv'])} "
                           f"| {_fmt(g['step_spikes'], 4)} | {_fmt(g['step_lag1'], 2)} |")
    out += [
        "",
        "The same fit per file:",
        "",
        "| file | kind | trials | order | series (runs) | noise_cv | run_state_prob | run_state_factor | drift "
        "| runs not ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in per_file.items():
        p = g["preset"]
        drift = g["drift"][0]
        out.append(
            f"| `{name}` | {', '.join(g['kinds'])} "
            f"| {', '.join(map(str, g['trials']))} | {', '.join(g['order'])} | {g['series']} ({g['runs']}) "
            f"| {p['noise_cv']:.3f} | {p['run_state_prob']:.3f} | {p['run_state_factor']:.2f} "
            f"| {'-' if not np.isfinite(drift) else f'{drift:+.3f}'} | {100 * g['not_ok_share']:.0f} % |")
    if check:
        out += [
            "",
            "Self-check: the same estimators on data simulated from each preset, shaped like the corpus (each "
            "file's series, budgets, trials, run order, step timing and unfinished runs; "
            f"{reps} seeded copies of the corpus) return (preset -> refit):",
            "",
            "| preset | " + " | ".join(PARAMS) + " |",
            "|---" * (len(PARAMS) + 1) + "|",
        ]
        for kind, rec in check.items():
            fitted = groups[kind]["preset"]
            out.append(f"| `{kind}` | " + " | ".join(
                f"{fitted[n]} -> {rec[n]}" if fitted[n] is not None else "-" for n in PARAMS) + " |")
    out += [
        "",
        "The sim draws run noise independently per run with one `noise_cv` for every series, so it folds the "
        "small cell-level part (shared by the trials of one budget) into `noise_cv` and does not reproduce the "
        "spread of noise between series (the IQR above); its drift cannot be negative (a negative median gives "
        "`drift = 0`). `step_cv` is the robust spread of step times around their within-run trend; real step "
        "times also have spikes and slow stretches (positive lag-1 autocorrelation), which the sim's independent "
        "step factors do not reproduce. Runs that did not finish are not noise the sim draws "
        "(`make_dataset(missing=...)` plants them at random).",
    ]
    return "\n".join(out)


def _clean(x: object) -> object:
    """JSON-able copy: tuples to lists, NaN to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("extra", nargs="*", help="more measured .nc files (e.g. a sweep not yet in tests/data/real)")
    p.add_argument("--reps", type=int, default=4,
                   help="seeded copies of the corpus simulated from the presets for the self-check (0: none)")
    p.add_argument("--write", action="store_true",
                   help="write collector/shared/sim_calibration.json and the docs/performance.md section")
    p.add_argument("--json", type=Path, default=CALIBRATION_JSON, help="where --write puts the presets")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    files = corpus_files(args.extra)
    if not files:
        raise SystemExit("no measured files found under tests/data/real/ or datasets/c*-*.nc")
    series: list[Series] = []
    counts: dict[str, dict[str, int]] = {}
    per_file: dict[str, dict[str, Any]] = {}
    for path in files:
        s, c = fit_file(path)
        series += s
        merged: dict[str, int] = {}
        for kind, cc in c.items():
            for k, v in cc.items():
                counts.setdefault(kind, {})[k] = counts.setdefault(kind, {}).get(k, 0) + v
                merged[k] = merged.get(k, 0) + v
        if s:
            per_file[Path(path).name] = fit_group(s, merged) | {"kinds": sorted(c)}
    kinds = sorted({s.kind for s in series})
    groups = {k: fit_group([s for s in series if s.kind == k], counts.get(k, {})) for k in kinds}
    every: dict[str, int] = {}
    for cc in counts.values():
        for k, v in cc.items():
            every[k] = every.get(k, 0) + v
    groups["all"] = groups[kinds[0]] if len(kinds) == 1 else fit_group(series, every)
    for g in groups.values():
        g["has_preset"] = g["series"] >= MIN_PRESET_SERIES and len(g["files"]) >= MIN_PRESET_FILES
    check = None
    if args.reps > 0:
        import analysis

        shapes = [(Path(f).name, analysis.open_dataset(f).load()) for f in files]
        check = {}
        for kind, g in groups.items():
            if not g["has_preset"]:
                continue
            sh = [(n, d) for n, d in shapes if kind == "all" or kind in [str(v) for v in d["device"].values]]
            same = kind == "all" and len(kinds) == 1
            check[kind] = check[kinds[0]] if same else refit(sh, kind, g["preset"], args.reps)
    command = COMMAND if not args.extra else COMMAND.replace(" --write", " " + " ".join(args.extra) + " --write")
    text = report(groups, per_file, files, command, check, args.reps)
    print(text)
    if args.write:
        doc = {
            "description": "collector.shared.sim noise presets fitted to the real null corpus (measured, no regimes); "
                           "see docs/performance.md 'Simulator noise calibrated to the real corpus'",
            "command": command,
            "files": [Path(f).name for f in files],
            "presets": {k: {n: g["preset"][n] for n in PARAMS if g["preset"][n] is not None}
                        for k, g in groups.items() if g["has_preset"]},
            "fit": {k: {"series": g["series"], "runs": g["runs"], "files": g["files"],
                        "noise_cv_median_iqr": g["noise_cv"], "drift_median_iqr": g["drift"],
                        "step_cv_median_iqr": g["step_cv"], "preset_written": g["has_preset"],
                        "refit_of_preset": check.get(k) if check else None}
                    for k, g in groups.items()},
        }
        args.json.write_text(json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n")
        replace_section(PERFORMANCE_MD, HEADING, text)


if __name__ == "__main__":
    main()
