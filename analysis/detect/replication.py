"""Does a regime replicate across processes? The intersection-union test over the passes of ``--processes``.

A sweep run with ``--processes N`` measured each cell's trials in N independent passes, each in its own fresh
processes (the run-level variable ``process``). A cause local to one process (a kernel chosen once per
process, a slow episode of that process) slows the cells of that process only; a property of the device and
its software slows them in every process. So a segment the scan found is a regime only where every process
shows it: for each process ``p``, a one-sided two-sample t test of that process's cell means inside the
segment against its cell means at the series' normal budgets (log ratios to the baseline; the null: the
segment's cells are exchangeable with the normal ones in that process), and the segment replicates where
every process rejects. ``p_replicate`` is the largest of the per-process p-values: the intersection-union
test (Berger 1982; Berger and Hsu 1996), which has level ``alpha`` for "at least one process shows no step"
without any correction. A process's step must also be at least half of ``min_effect`` (the bar of
``reproducible``). A segment that fails is reported apart as *process-local*: the process where it is
largest, its effect there and in the other processes together.

With one process (or no ``process`` variable) nothing can be checked; :func:`check` says so by
``n_processes`` and the summary says how to check (``--processes 2``).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy import stats as _sps

from analysis.core.common import per_run, quiet

__all__ = ["process_keys", "check"]


def process_keys(ds: xr.Dataset, da: xr.DataArray) -> np.ndarray | None:
    """The pass (``process``) of every run of ``da`` (``(*series, budget, trial)``) as ``(series, budget,
    trial)`` ints (-1: unknown), or None where the dataset has no ``process`` variable over its runs."""
    p = per_run(ds, "process", da, fill=-1.0)
    return None if p is None else p.astype(np.int64)


def _cell_means(E: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per budget, the mean of the runs of ``E`` (budget, trial) where ``mask`` holds (NaN: none)."""
    with quiet():  # a budget with no such run: NaN
        return np.nanmean(np.where(mask, E, np.nan), axis=1)


def _one_process(inside: np.ndarray, outside: np.ndarray, sign: int) -> tuple[float, float]:
    """One-sided p-value and step (log) of the cell means ``inside`` against ``outside`` (NaN: too few)."""
    inside, outside = inside[np.isfinite(inside)], outside[np.isfinite(outside)]
    if inside.size == 0 or outside.size < 3:
        return float("nan"), float("nan")
    step = float(inside.mean() - outside.mean())
    # the pooled two-sample t (Student): under the null the segment's cells have the spread of the normal ones;
    # with one cell inside it is the prediction-interval test of that cell
    ss = float(((outside - outside.mean()) ** 2).sum() + ((inside - inside.mean()) ** 2).sum())
    df = inside.size + outside.size - 2
    s = math.sqrt(ss / df) if df > 0 else float("nan")
    if not np.isfinite(s) or s <= 0:
        return (0.0 if step * (sign or 1) > 0 else 1.0), step
    t = step / (s * math.sqrt(1.0 / inside.size + 1.0 / outside.size))
    if sign == 0:
        return float(2 * _sps.t.sf(abs(t), df)), step
    return float(_sps.t.sf(sign * t, df)), step


def check(E: np.ndarray, proc: np.ndarray, normal_cells: np.ndarray, candidates: list[tuple[int, int, int, int]],
          *, n_segments: int, alpha: float, min_log: float, sign: int) -> dict[str, np.ndarray]:
    """The replication check of every candidate segment.

    Parameters
    ----------
    E
        ``(series, budget, trial)`` log ratios of the runs to their series' baseline (NaN: no run).
    proc
        ``(series, budget, trial)`` the pass of each run (-1: unknown).
    normal_cells
        ``(series, budget)`` the budgets outside every segment, with data.
    candidates
        ``(series, segment, first row, last row)`` of each segment to check.
    n_segments
        Segments per series in the caller's result (the second axis of the per-segment arrays).
    alpha
        Level of the intersection-union test.
    min_log
        ``log(1 + min_effect)``: every process's step must be at least half of it.
    sign
        Direction of a regime (+1 slow, -1 fast, 0 either: the sign of the pooled step then).

    Returns
    -------
    dict of numpy arrays
        ``n_processes`` (series): passes with runs (0: unknown); per ``(series, segment)`` (NaN / False / -1
        where not checked): ``p_replicate`` (the largest
        per-process p-value), ``process_local`` (bool: checked and not replicated), ``local_process`` (the
        process where the step is largest), ``local_effect`` (the step there, a ratio) and ``other_effect``
        (the step of the other processes' runs together, a ratio). A segment some process cannot test (no run
        inside, or fewer than 3 normal cells) stays unchecked.
    """
    S = E.shape[0]
    K = n_segments
    out = {
        "n_processes": np.zeros(S, dtype=int),
        "p_replicate": np.full((S, K), np.nan), "process_local": np.zeros((S, K), dtype=bool),
        "local_process": np.full((S, K), -1, dtype=int), "local_effect": np.full((S, K), np.nan),
        "other_effect": np.full((S, K), np.nan),
    }
    known = np.isfinite(E) & (proc >= 0)
    for s in range(S):
        out["n_processes"][s] = np.unique(proc[s][known[s]]).size
    for s, k, a, b in candidates:
        procs = np.unique(proc[s][known[s]])
        if procs.size < 2:
            continue
        ps, steps = [], []
        for p in procs:
            m = _cell_means(E[s], proc[s] == p)
            pv, st = _one_process(m[a : b + 1], m[normal_cells[s]], sign)
            ps.append(pv)
            steps.append(st)
        ps_a, st_a = np.asarray(ps), np.asarray(steps)
        if not np.isfinite(ps_a).all():  # a process without runs there or without 3 normal cells: unchecked
            continue
        direction = sign or (1 if st_a.sum() >= 0 else -1)
        p_rep = float(ps_a.max())
        out["p_replicate"][s, k] = p_rep
        out["process_local"][s, k] = not (p_rep <= alpha and bool((direction * st_a >= 0.5 * min_log).all()))
        top = int(np.argmax(direction * st_a))
        out["local_process"][s, k] = int(procs[top])
        out["local_effect"][s, k] = math.exp(st_a[top])
        rest = _cell_means(E[s], (proc[s] != procs[top]) & (proc[s] >= 0))
        _, st_rest = _one_process(rest[a : b + 1], rest[normal_cells[s]], sign)
        out["other_effect"][s, k] = math.exp(st_rest) if np.isfinite(st_rest) else np.nan
    return out
