"""Variance at each level of a sweep (process, run) and how to spend the next one: Kalibera and Jones (2013).

A sweep run with ``--processes N`` measured each cell in N passes, each in its own fresh processes
(run-level variable ``process``). Its noise has levels: the runs of one cell inside one process disagree
(``sd_run``), and a process adds its own effect to a cell's mean (``sd_process``: a kernel chosen for that
shape in that process, a slow episode of it, its memory layout), part of it common to every cell of the
process (``sd_shift``). Kalibera and Jones, "Rigorous Benchmarking in Reasonable Time" (ISMM 2013), estimate
the variance each level adds with unbiased nested estimators and choose the repetitions of the lower level
per repetition of the upper one that give the most precision for the time spent:
``r = ceil(sqrt(c_process / c_run * T_run^2 / T_process^2))`` with ``c_process`` what one more process
costs (start, model load, warm-up) and ``c_run`` what one more run costs. All on the log scale (ratios),
per series, pooled over its budgets.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, TRIAL, check_dataset, per_run, quiet, run_values
from analysis.core.labels import fmt_fixed
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.tables.table import Table, flat, labels, select_rows

__all__ = ["levels", "table", "VARIABLES"]

#: Every variable of a :func:`levels` result, in order, over the series dims.
VARIABLES: dict[str, ResultVar] = {
    "n_processes": ResultVar(SERIES, "processes (passes of --processes) with ok runs"),
    "runs_per_process": ResultVar(SERIES, "ok runs of one cell in one process (harmonic mean over cells)"),
    "sd_run": ResultVar(SERIES, "sd of the runs of one cell inside one process (log units; Kalibera-Jones T1)", "1"),
    "sd_between": ResultVar(SERIES, "sd of a cell's per-process means across processes (log units; S2)", "1"),
    "sd_process": ResultVar(SERIES, "sd a process adds to a cell mean beyond its runs' (log units; T2)", "1"),
    "sd_shift": ResultVar(SERIES, "sd of the processes' shifts common to every cell (log units)", "1"),
    "run_cost": ResultVar(SERIES, "median time of one run", "s"),
    "process_cost": ResultVar(SERIES, "time one more process costs (start, load, warm-up; the gap between passes)", "s"),
    "trials_per_process": ResultVar(SERIES, "Kalibera-Jones optimal runs of a cell per process"),
}


def levels(ds: xr.Dataset, var: str = "latency") -> xr.Dataset:
    """The variance of ``var`` at each level (run, process) and the best runs per process.

    Per series (every dim but budget and trial), over the ok runs with a finite positive value, on
    ``log var``: for each cell (budget) and process, the mean and sample variance of its runs. The run level
    ``T1^2`` is the mean of those variances (cells and processes with 2 or more runs); ``S2^2`` is the mean
    over cells of the sample variance of the per-process means; the process level is ``T2^2 = S2^2 - T1^2 /
    n1`` (``n1`` the runs of a cell in a process, harmonic mean), clipped at 0 (Kalibera and Jones 2013,
    section 4). ``sd_shift`` is the sd over processes of each process's mean deviation from the cells'
    means (a process slower at every budget). The costs: ``run_cost`` the median ``latency`` of a run;
    ``process_cost`` the median gap between one pass's last run ending and the next pass's first starting
    (from ``started_at``; the runs of every series of the dataset together, so open one sweep at a time; a lower
    bound: models loaded inside a pass are not in it). ``trials_per_process`` is Kalibera and Jones'
    ``ceil(sqrt(process_cost / run_cost * T1^2 / T2^2))``, at most 100 (where ``T2`` is 0 a process adds
    nothing, and runs in one process are as good as runs in many).

    Parameters
    ----------
    ds
        Dataset with ``var`` over a ``budget`` dim, ``trial`` and the run-level ``process`` (sweeps of schema
        v3; without it, or with one process, only ``sd_run`` is measured). Runs whose status is not ok are
        left out.
    var
        Variable to measure, default ``latency`` (not one with a ``step`` dim).

    Returns
    -------
    xarray.Dataset
        Over the series dims:

        - ``n_processes``: processes with ok runs (0: the dataset has no ``process``: one, unknown).
        - ``runs_per_process``: ``n1``, the runs of a cell in one process (harmonic mean).
        - ``sd_run``: ``T1``, the sd of the runs of a cell inside one process (NaN: 1 run per cell and process).
        - ``sd_between``: ``S2``, the sd of a cell's per-process means (NaN: under 2 processes).
        - ``sd_process``: ``T2``, what a process adds (NaN where ``T1`` or ``S2`` is not measured).
        - ``sd_shift``: the sd of the processes' common shifts (NaN: under 2 processes).
        - ``run_cost``, ``process_cost``: seconds (NaN: no ``latency`` / no ``started_at`` or one pass).
        - ``trials_per_process``: the optimal runs per process (NaN where a term is missing).

        Attrs ``var`` and ``summary``.

    Raises
    ------
    InputError
        When ``ds`` lacks ``var`` or a ``budget`` dim with at least 3 values, or when ``var`` has a ``step`` dim.
    """
    ds = check_dataset(ds, "levels", [var])
    da, series = run_values(ds, var, "levels")
    with quiet():
        y = np.asarray(da.values, dtype=float).reshape(series.size, da.sizes[BUDGET], da.sizes[TRIAL])
        L = np.where(np.isfinite(y) & (y > 0), np.log(np.where(y > 0, y, 1.0)), np.nan)
    proc = per_run(ds, "process", da, fill=-1.0)
    proc = np.full(L.shape, -1.0) if proc is None else proc
    proc = np.where(np.isfinite(L) & (proc >= 0), proc, -1).astype(int)
    lat = per_run(ds, "latency", da)
    lat = np.full(L.shape, np.nan) if lat is None else lat
    start = per_run(ds, "started_at", da)
    values = {name: np.full(series.size, np.nan) for name in VARIABLES}
    cost = _process_cost(start, lat, proc, series.size)
    for s in range(series.size):
        for k, v in _one_series(L[s], proc[s]).items():
            values[k][s] = v
        with quiet():
            values["run_cost"][s] = np.nanmedian(np.where(np.isfinite(L[s]), lat[s], np.nan))
        values["process_cost"][s] = cost[s]
        values["trials_per_process"][s] = _optimal(values["sd_run"][s], values["sd_process"][s],
                                                   values["process_cost"][s], values["run_cost"][s])
    values["n_processes"] = np.nan_to_num(values["n_processes"]).astype(np.int64)
    out = xr.Dataset(wrap(VARIABLES, values, series, {}, var=var), attrs={"var": var})
    out.attrs["summary"] = _summary(values, var)
    return out


def _one_series(L: np.ndarray, proc: np.ndarray) -> dict[str, float]:
    """The level estimates of one series: ``L`` (budget, trial) log values, ``proc`` the pass of each run."""
    procs = np.unique(proc[proc >= 0])
    out = {"n_processes": float(procs.size)}
    if procs.size == 0:  # no process variable: every run is in one, unknown process
        procs, proc = np.array([0]), np.where(np.isfinite(L), 0, -1)
    means = np.full((L.shape[0], procs.size), np.nan)
    var_within, n_within = [], []
    for k, p in enumerate(procs):
        x = np.where(proc == p, L, np.nan)
        n = np.isfinite(x).sum(axis=1)
        with quiet():
            means[:, k] = np.where(n > 0, np.nanmean(x, axis=1), np.nan)
            v = np.nanvar(x, axis=1, ddof=1)
        var_within += list(v[n >= 2])
        n_within += list(n[n >= 1])
    t1 = math.sqrt(float(np.mean(var_within))) if var_within else np.nan
    n1 = float(len(n_within) / np.sum(1.0 / np.asarray(n_within))) if n_within else np.nan
    out.update({"sd_run": t1, "runs_per_process": n1})
    if procs.size < 2:
        return out
    both = np.isfinite(means).sum(axis=1) >= 2
    with quiet():
        s2 = float(np.mean(np.nanvar(means[both], axis=1, ddof=1))) if both.any() else np.nan
        shift = np.nanmean(means[both] - np.nanmean(means[both], axis=1, keepdims=True), axis=0)
    out["sd_between"] = math.sqrt(s2) if np.isfinite(s2) else np.nan
    out["sd_process"] = math.sqrt(max(s2 - t1**2 / n1, 0.0)) if np.isfinite(s2) and np.isfinite(t1) else np.nan
    out["sd_shift"] = float(np.std(shift, ddof=1)) if np.isfinite(shift).sum() >= 2 else np.nan
    return out


def _process_cost(start: np.ndarray | None, lat: np.ndarray, proc: np.ndarray, n_series: int) -> np.ndarray:
    """Per series, the median gap between consecutive passes (the runs of every series together; NaN: none)."""
    if start is None:
        return np.full(n_series, np.nan)
    ok = np.isfinite(start) & (proc >= 0)
    end = start + np.nan_to_num(lat, nan=0.0)
    passes = np.unique(proc[ok])
    gaps = []
    for a, b in zip(passes[:-1], passes[1:]):
        gap = float(np.min(start[ok & (proc == b)]) - np.max(end[ok & (proc == a)]))
        if gap >= 0:  # passes one after the other (a cluster's passes may overlap: no gap to read)
            gaps.append(gap)
    return np.full(n_series, float(np.median(gaps)) if gaps else np.nan)


def _optimal(t1: float, t2: float, c2: float, c1: float) -> float:
    """Kalibera and Jones' optimal runs per process (at most 100; NaN where a term is missing)."""
    if not all(np.isfinite(x) for x in (t1, t2, c2, c1)) or c1 <= 0:
        return float("nan")
    if t2 <= 0:
        return 100.0
    return float(min(100, max(1, math.ceil(math.sqrt(c2 / c1 * t1**2 / t2**2)))))


def _summary(values: dict[str, np.ndarray], var: str) -> str:
    """The levels over the series (medians), and what to do next."""
    med = {k: float(np.nanmedian(v)) if np.isfinite(v).any() else np.nan for k, v in values.items()}
    run = (f"a cell's runs in one process disagree by sd {fmt_fixed(med['sd_run'])} of log {var}"
           if np.isfinite(med["sd_run"]) else "")
    if not (values["n_processes"] >= 2).any():
        return (f"{var}: no cell was measured in two processes{': ' + run if run else ''}; the process level cannot "
                "be measured: "
                "sweep with --processes 2 (and --trials 4 or more, so that each process has 2 runs of every cell).")
    parts = [run] if run else []
    if np.isfinite(med["sd_process"]):
        parts.append(f"a process adds sd {fmt_fixed(med['sd_process'])} to a cell mean")
    parts.append(f"a cell's means differ across processes by sd {fmt_fixed(med['sd_between'])}")
    if np.isfinite(med["sd_shift"]):
        parts.append(f"sd {fmt_fixed(med['sd_shift'])} of it a shift of every cell of a process")
    line = f"{var}: {int(np.max(values['n_processes']))} processes; medians over series: {'; '.join(parts)}."
    best = _optimal(med["sd_run"], med["sd_process"], med["process_cost"], med["run_cost"])
    if np.isfinite(best):  # the optimum of the typical series (the medians), not a median of optima
        line += (f" One more process costs {fmt_fixed(med['process_cost'], 1)} s, a run "
                 f"{fmt_fixed(med['run_cost'], 3)} s: Kalibera-Jones optimum {int(best)} run(s) of each cell per "
                 "process (per series: trials_per_process).")
    elif not np.isfinite(med["sd_run"]):
        line += " With 1 run of a cell per process, run and process noise cannot be told apart (use --trials 4)."
    return line


def table(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per series: processes, the sd of each level, the costs and the optimal runs per process."""
    dims = [str(d) for d in res["sd_run"].dims]
    names = labels(res, dims)
    cols = ("n_processes", "sd_run", "sd_process", "sd_shift", "sd_between", "process_cost", "run_cost",
            "trials_per_process")
    v = {k: flat(res, k, dims) for k in cols}

    def num(x: float, digits: int = 3) -> str:
        return fmt_fixed(x, digits) if np.isfinite(x) else "n/a"

    rows, interesting = [], []
    for s in range(len(names)):
        n_proc = int(v["n_processes"][s])
        rows.append((names[s], str(n_proc) if n_proc else "unknown", num(v["sd_run"][s]), num(v["sd_process"][s]),
                     num(v["sd_shift"][s]), num(v["sd_between"][s]), num(v["process_cost"][s], 1),
                     num(v["run_cost"][s]), num(v["trials_per_process"][s], 0)))
        interesting.append(bool(np.nan_to_num(v["sd_process"][s]) > np.nan_to_num(v["sd_run"][s], nan=np.inf)))
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=False, max_rows=max_rows, what="series")
    return Table(title=f"levels: the noise of each level and the runs per process ({res.attrs.get('var', '')})",
                 columns=("series", "processes", "sd run", "sd process", "sd shift", "sd between", "process s",
                          "run s", "runs/process"),
                 rows=rows_t, flags=flags, note=note, right=(False, *([True] * 8)),
                 key=("series", "processes", "sd run", "sd process"),
                 legend=("log units; sd run: a cell's runs inside one process; sd process: what a process adds to a "
                         "cell mean (Kalibera-Jones T2); sd shift: its part common to every cell; sd between: a "
                         "cell's per-process means; runs/process: the Kalibera-Jones optimum for these costs; "
                         "bold: a process adds more than a run"))
