"""The short human summary of a :func:`analysis.regimes.regimes` result, and series labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.core.labels import fmt_fixed, fmt_ratio
from analysis.detect.variables import SEGMENT_SUMMARY

__all__ = ["MAX_LINES", "iter_segments", "power_lines", "process_lines", "series_label", "summarize"]

MAX_LINES = 12


def series_label(result: xr.Dataset, index: dict[Any, int]) -> str:
    """``dim=value`` for the series dims that vary (all of them when none varies); a dim of stacked series
    by its levels that vary."""
    dims = [d for d in result["anomalous"].dims if d != "budget"]
    shown = [d for d in dims if result.sizes[d] > 1] or dims
    parts: list[str] = []
    for d in shown:
        stacked = result.indexes.get(d)
        if isinstance(stacked, pd.MultiIndex):  # stacked series (several files): the levels that vary
            values = stacked[index[d]]
            names = [n for n in stacked.names if stacked.get_level_values(n).nunique() > 1] or list(stacked.names)
            parts.extend(f"{n}={_fmt_value(values[stacked.names.index(n)])}" for n in names)
            continue
        v = result[d].values[index[d]] if d in result.coords else index[d]
        parts.append(f"{d}={_fmt_value(v)}")
    return ", ".join(parts) if parts else "series"


def _fmt_value(v: Any) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, (np.bool_, bool)):
        return str(bool(v))
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


def iter_segments(result: xr.Dataset, *, only_anomalous: bool = False) -> Iterator[tuple[dict[Any, int], int]]:
    """``(series index, segment)`` of every existing (or every anomalous) segment, in C order."""
    dims = [d for d in result["kind"].dims if d != "segment"]
    kind = result["kind"].transpose(*dims, "segment").values
    anom = result["segment_anomalous"].transpose(*dims, "segment").values
    mask = anom if only_anomalous else (kind != "")
    for idx in zip(*np.nonzero(mask)):
        yield {d: int(i) for d, i in zip(dims, idx[:-1])}, int(idx[-1])


def _num(x: float) -> str:
    return "nan" if not np.isfinite(x) else (f"{x:.0f}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}")


def _interval(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f" [{_num(lo)}, {_num(hi)}]" if lo != hi else ""


_FIELDS = SEGMENT_SUMMARY


def segment_fields(result: xr.Dataset, index: dict[Any, int], j: int) -> dict[str, Any]:
    """The main per-segment values of segment ``j`` of one series, as Python scalars."""
    key = tuple(index[d] for d in result["kind"].dims if d != "segment") + (j,)
    return {k: result[k].data[key].item() for k in _FIELDS}


def _budgets(g: dict[str, Any]) -> str:
    """Where a segment lies: "budget 512" or "budgets 512-624"."""
    return f"budget {_num(g['start'])}" if g["start"] == g["end"] else f"budgets {_num(g['start'])}-{_num(g['end'])}"


def segment_line(result: xr.Dataset, index: dict[Any, int], j: int) -> str:
    """One line describing segment ``j`` of one series."""
    g = segment_fields(result, index, j)
    where = _budgets(g)
    ci = f" [{fmt_fixed(g['effect_lo'])}, {fmt_fixed(g['effect_hi'])}]" if np.isfinite(g["effect_lo"]) else ""
    bounds = []
    if _interval(g["start_lo"], g["start_hi"]):
        bounds.append(f"start{_interval(g['start_lo'], g['start_hi'])}")
    if _interval(g["end_lo"], g["end_hi"]):
        bounds.append(f"end{_interval(g['end_lo'], g['end_hi'])}")
    extra = f" ({'; '.join(bounds)})" if bounds else ""
    conf = ", CONFOUNDED with execution time" if g["confounded"] else ""
    return f"{series_label(result, index)}: {g['kind']} {fmt_ratio(g['effect'])}{ci} at {where}{extra}, q={g['q']:.2g}{conf}"


def _range(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "unknown"
    lo, hi = float(v.min()), float(v.max())
    return fmt_ratio(lo) if fmt_ratio(lo) == fmt_ratio(hi) else f"{fmt_ratio(lo)} to {fmt_ratio(hi)}"


def _range4(v: np.ndarray) -> str:
    """The four-budget ratios; none is stated for series under 12 budgets (a third of them or more)."""
    if np.isnan(v).all():
        return "not stated (fewer than 12 budgets: a four-budget step bends the curve)"
    text = _range(v)
    return text + (" (not stated for series under 12 budgets)" if np.isnan(v).any() else "")


def _often(p: float) -> str:
    """A share said plainly: 'about 1 time in 3', 'about half the time'."""
    if p >= 0.45 and p <= 0.55:
        return "about half the time"
    if p > 0.55:
        return f"about {round(p * 100):d}% of the time"
    return f"about 1 time in {max(2, round(1 / p)):d}"


def _with_data(result: xr.Dataset, default: int) -> int:
    """The series of a result with data (a baseline at some budget): a cube's combinations nobody measured are
    not series."""
    if "baseline" not in result or "budget" not in result["baseline"].dims:
        return default
    return int(result["baseline"].notnull().any("budget").sum())


def power_lines(result: xr.Dataset) -> list[str]:
    """What could have been seen: the minimum detectable slowdowns, and a warning when the noise is high."""
    if "mde" not in result:
        return []
    mde = np.asarray(result["mde"].values, dtype=float).ravel()
    line = (f"80% power (a regime alone among these series, inside the sweep) at {_range(mde)} over one budget, "
            f"{_range4(np.asarray(result['mde_4'].values, dtype=float).ravel())} over four budgets")
    if "power" in result and np.isfinite(mde).any():
        # the power curve of the median series: how often a smaller regime is still found
        s = int(np.nanargmin(np.abs(mde - np.nanmedian(mde))))
        curve = np.asarray(result["power"].values, dtype=float).reshape(mde.size, -1)[s]
        ratios = np.asarray(result["power_ratio"].values, dtype=float)
        small = [(r, p) for r, p in zip(ratios, curve) if np.isfinite(p) and r < mde[s] and p > 0.005]
        if small:
            r, p = small[-1]
            line += f"; x{r:.3g} over one budget is found {_often(p)}"
    n_inf = int(np.isinf(mde).sum())
    n_series = _with_data(result, mde.size)
    why = ("run in budget order or one cell at a time, so budget and time are inseparable; or noise above x1000")
    if n_inf and n_inf == n_series:
        line = f"No one-budget regime can be found in these series at any ratio ({why})"
    elif n_inf:
        line += f"; in {n_inf} of {n_series} series no one-budget regime can be found at any ratio ({why})"
    lines = [line + "."]
    noisy = np.asarray(result["noisy"].values, dtype=bool).ravel()
    if noisy.any():
        noise = np.asarray(result["noise"].values, dtype=float).ravel()
        n_tr = int(result.attrs.get("trials_max", result.attrs.get("n_trials", 0)))
        cause = ("a loaded or throttling machine (other jobs, power saving, thermal limits) or a host with slow "
                 "and fast run states")
        fix = "close other work, plug in, pin the process, and use more trials (--trials 5)"
        if n_tr < 3:
            fix = f"use more trials (--trials 5; this run had {n_tr}), close other work and plug in"
        lines.append(
            f"WARNING: high noise in {int(noisy.sum())} of {n_series} series (per-run sd of log latency up to "
            f"{fmt_fixed(np.nanmax(noise))}, above 0.1): only large regimes can be seen. Likely cause: {cause}. Fix: {fix}."
        )
    return lines


def process_lines(result: xr.Dataset, found: bool) -> list[str]:
    """The steps that did not replicate across processes, one line each; or, where regimes were found in
    series measured in one process, that a process-local effect cannot be told from them and how to check."""
    if "process_local" not in result:
        return []
    lines = []
    local = np.asarray(result["process_local"].values, dtype=bool)
    if local.any():
        lines.append(f"{int(local.sum())} step(s) did not replicate across processes (process-local, not regimes):")
        dims = result["process_local"].dims
        for key in list(zip(*np.nonzero(local)))[:MAX_LINES]:
            index = {d: int(i) for d, i in zip(dims[:-1], key[:-1])}
            j = int(key[-1])
            g = segment_fields(result, index, j)
            where = _budgets(g)
            proc = int(result["local_process"].data[key])
            other = float(result["other_effect"].data[key])
            lines.append(f"  {series_label(result, index)}: {fmt_ratio(float(result['local_effect'].data[key]))} "
                         f"in process {proc} at {where}, {fmt_ratio(other) if np.isfinite(other) else 'n/a'} in the "
                         f"others (p_replicate={float(result['p_replicate'].data[key]):.2g})")
    if found and "n_processes" in result:
        n_proc = np.asarray(result["n_processes"].values, dtype=int)
        hit = np.asarray(result["segment_anomalous"].values, dtype=bool).any(axis=-1)
        if hit.any() and (n_proc[hit] < 2).any():
            lines.append("No cell was measured in two processes: an effect local to the process that measured it "
                         "(a kernel chosen once per process, a slow episode of it) cannot be told from a regime; to "
                         "check, sweep again with --processes 2 (the regime must appear in both).")
    return lines


def _trials(attrs: dict) -> str:
    """How many trials the series have: "3 trial(s)", or "1-4 trials per series" where they differ."""
    lo, hi = attrs.get("trials_min"), attrs.get("trials_max")
    if lo is None or hi is None:
        return f"{attrs.get('n_trials', '?')} trial(s)"
    return f"{int(lo)} trial(s)" if int(lo) == int(hi) else f"{int(lo)}-{int(hi)} trials per series"


def summarize(result: xr.Dataset) -> str:
    """A few lines: what was analysed, each anomalous regime, and what the time check says."""
    a = result.attrs
    n_cube = int(np.prod([result.sizes[d] for d in result["anomalous"].dims if d != "budget"] or [1]))
    n_series = _with_data(result, n_cube)
    measured = int(a.get("series_measured", n_series))
    cube = (f" analysed (of {measured} measured; the others have under 3 measured budgets)"
            if measured != n_series else "")
    lines = [
        (f"regimes of {a.get('var')!r}: {n_series} series{cube} x {result.sizes['budget']} budgets, "
        f"{_trials(a)}; step-down scan, min_effect {a.get('min_effect')}, "
        f"alpha {a.get('alpha')} (false discovery rate across series).")
    ]
    anomalous = list(iter_segments(result, only_anomalous=True))
    n_hit = len({tuple(sorted(i.items())) for i, _ in anomalous})
    if anomalous:
        lines.append(f"{len(anomalous)} anomalous segment(s) in {n_hit} of {n_series} series:")
        for index, j in anomalous[:MAX_LINES]:
            lines.append("  " + segment_line(result, index, j))
        if len(anomalous) > MAX_LINES:
            lines.append(f"  ... and {len(anomalous) - MAX_LINES} more")
    else:
        lines.append("No anomalous regime: every series follows a smooth curve within min_effect or its noise.")
    lines.extend(power_lines(result))
    conf = result["confounded"].values
    clustered = result["clustered"].values
    note = str(a.get("time_check", ""))
    share = float(a.get("sequential_share", np.nan))
    if note.startswith("skipped"):
        lines.append(f"Time confound not checked ({note[len('skipped: '):]}): "
                     "budget regimes cannot be told apart from slow host periods.")
    if np.isfinite(share) and share >= 0.5:
        lines.append(
            "Budget and execution time cannot be separated in this dataset: the runs were executed in budget "
            "order (a sequential sweep), so a slow period of the host looks exactly like a budget regime. "
            "Re-run the sweep in random order (collector run --order random) to separate them."
        )
    n_conf = int((conf & clustered).sum())
    if n_conf:
        lines.append(
            f"{n_conf} step(s) passed the test but are not reported as regimes: their runs were executed close "
            "together in time (clustered), so budget and time cannot be separated; re-run those budgets "
            "interleaved in random order (they are listed with 'confounded' in the result)."
        )
    n_expl = int((conf & ~clustered).sum())
    if n_expl:
        lines.append(
            f"{n_expl} step(s) were explained by execution time (a slow host period also slowed runs of "
            "other budgets executed at the same time) and are not reported as regimes."
        )
    lines.extend(process_lines(result, bool(anomalous)))
    if int(a.get("trials_min", a.get("n_trials", 2))) < 3:
        lines.append("Fewer than 3 trials: a cell whose runs all landed in a slow state is hard to tell from a regime; "
                     "the test rests on the budget-to-budget noise (pooled with the other series of the origin).")
    return "\n".join(lines)
