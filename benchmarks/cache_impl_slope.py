"""Does a static KV cache remove the growth of the per-step decode time? Slope of step time over step index.

Reads a dataset collected with per-step timing (``--timing step`` or
``events``) and, for every series (each combination of attn x cache_impl, and
of any other series dim with several values), fits the decode steps of each
ok run (steps 1..budget-1; step 0 is the prefill) with ordinary least
squares (statsmodels):

    step_time[k] = a_run + slope_run * k

A run gives one slope; the series' slope is the mean of its runs' slopes,
with a 95% t confidence interval over runs (runs are the independent
replicates; steps within a run are not independent, so they are not
counted as such). Also reported: the median decode step time and the
growth over 1000 steps as a share of it (``slope * 1000 / median``).

The GPU sweep behind docs/performance.md ("Static vs dynamic KV cache") is::

    python -m collector run --devices cuda --models gpt2-medium --cache on \\
        --cache-impl dynamic static --attn sdpa eager --prompt-lens 8 \\
        --budgets 256 512 1016 --trials 3 --timing step --order random --seed 11 \\
        --timeout 300 -o runs/cuda-cache-impl.nc
    python benchmarks/cache_impl_slope.py runs/cuda-cache-impl.nc

Usage::

    python benchmarks/cache_impl_slope.py RUN.nc [--min-steps 32] [--csv OUT.csv] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import analysis  # noqa: E402
from collector.dataset import schema  # noqa: E402
from collector.shared.factors import SERIES_DIMS  # noqa: E402

__all__ = ["RunSlope", "SeriesSlope", "run_slopes", "series_slopes", "main"]


@dataclass(frozen=True)
class RunSlope:
    """One run's OLS fit of decode step time (s) on step index."""

    series: dict
    budget: int
    trial: int
    slope: float  # seconds per step
    intercept: float  # seconds
    n_steps: int
    median_step: float  # seconds


@dataclass(frozen=True)
class SeriesSlope:
    """A series' slope: mean of its runs' slopes with a t confidence interval over runs."""

    series: dict
    n_runs: int
    slope_us: float  # microseconds per step
    lo_us: float
    hi_us: float
    median_step_ms: float
    growth_per_1000: float  # slope * 1000 steps / median step time
    flat: bool  # the CI includes 0


def run_slopes(ds, *, min_steps: int = 32) -> list[RunSlope]:
    """The OLS slope of every ok run with at least ``min_steps`` decode steps."""
    if "step_time" not in ds.data_vars:
        raise SystemExit("error: the dataset has no step_time; collect it with --timing step or events")
    ok = ds["status"] == schema.STATUS["ok"]
    out = []
    lead = [d for d in ds["step_time"].dims if d not in schema.SWEEP_DIMS and d != schema.STEP_DIM]
    stacked = ds["step_time"].where(ok).stack(_run=[*lead, *schema.SWEEP_DIMS]).transpose("_run", schema.STEP_DIM)
    values = np.asarray(stacked.values, dtype=np.float64)
    index = stacked["_run"].to_index()
    for r, labels in enumerate(index):
        cell = dict(zip(index.names, labels if isinstance(labels, tuple) else (labels,)))
        budget = int(cell["budget"])
        y = values[r, 1:budget]  # decode steps 1..budget-1
        if not np.isfinite(y).all() or y.size < min_steps:
            continue
        k = np.arange(1, budget, dtype=np.float64)
        fit = sm.OLS(y, sm.add_constant(k)).fit()
        series = {d: cell[d] for d in (*lead, *SERIES_DIMS)}
        out.append(RunSlope(series, budget, int(cell["trial"]), float(fit.params[1]), float(fit.params[0]),
                            int(y.size), float(np.median(y))))
    return out


def series_slopes(runs: list[RunSlope], *, ci: float = 0.95) -> list[SeriesSlope]:
    """Per series: mean run slope with a t interval over runs (NaN interval with one run)."""
    groups: dict[tuple, list[RunSlope]] = {}
    for r in runs:
        groups.setdefault(tuple(r.series.items()), []).append(r)
    out = []
    for key, rs in groups.items():
        s = np.array([r.slope for r in rs])
        mean = float(s.mean())
        if s.size > 1:
            half = float(stats.t.ppf(0.5 + ci / 2, s.size - 1) * s.std(ddof=1) / math.sqrt(s.size))
        else:
            half = math.nan
        med = float(np.median([r.median_step for r in rs]))
        lo, hi = mean - half, mean + half
        out.append(SeriesSlope(dict(key), s.size, mean * 1e6, lo * 1e6, hi * 1e6, med * 1e3,
                               mean * 1000 / med if med > 0 else math.nan,
                               bool(lo <= 0 <= hi) if math.isfinite(half) else False))
    return out


def _varying(rows: list[SeriesSlope]) -> list[str]:
    dims = list(rows[0].series) if rows else []
    return [d for d in dims if len({str(r.series[d]) for r in rows}) > 1] or dims[:1]


def table(rows: list[SeriesSlope]) -> str:
    """Markdown table of the series slopes."""
    dims = _varying(rows)
    head = "| " + " | ".join(dims) + " | runs | slope (µs/step) | 95% CI | median step (ms) | growth per 1000 steps | flat? |"
    lines = [head, "|" + "---|" * (len(dims) + 6)]
    for r in sorted(rows, key=lambda r: [str(r.series[d]) for d in dims]):
        lines.append("| " + " | ".join(str(r.series[d]) for d in dims)
                     + f" | {r.n_runs} | {r.slope_us:.3f} | [{r.lo_us:.3f}, {r.hi_us:.3f}] | {r.median_step_ms:.3f}"
                     + f" | {100 * r.growth_per_1000:+.1f}% | {'yes' if r.flat else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the slope table (and write a CSV of the run slopes with --csv)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="dataset with per-step timing (netCDF, schema v1 or v2)")
    p.add_argument("--min-steps", type=int, default=32, help="skip runs with fewer decode steps (default 32)")
    p.add_argument("--csv", help="write the per-run slopes here")
    args = p.parse_args(argv)
    ds = analysis.open_dataset(args.path)
    runs = run_slopes(ds, min_steps=args.min_steps)
    if not runs:
        print(f"error: no ok run with >= {args.min_steps} decode steps in {args.path!r}", file=sys.stderr)
        return 2
    rows = series_slopes(runs)
    print(f"{args.path}: {len(runs)} runs, device(s) {sorted({str(r.series['device']) for r in runs})}, "
          f"GPU {ds.attrs.get('gpu_name', '') or '-'}, timing {ds.attrs.get('timing', '?')}")
    print(table(rows))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            dims = list(runs[0].series)
            w.writerow([*dims, "budget", "trial", "slope_s_per_step", "intercept_s", "n_steps", "median_step_s"])
            for r in runs:
                d = asdict(r)
                w.writerow([*(r.series[k] for k in dims), d["budget"], d["trial"], d["slope"], d["intercept"],
                            d["n_steps"], d["median_step"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
