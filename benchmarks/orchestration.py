"""Orchestration overhead of a sweep: what running through the sweep machinery costs beyond the measured runs.

A real CPU sweep (default: tiny-gpt2, budgets 8:64:8, cache on and off, 3
trials, 1 warm-up, isolation none, timing ends) is run ``--repeats`` times.
For each:

* ``overhead = (wall - setup) / sum(latency)``: the sweep's wall time,
  without the worker start, model load and warm-ups (``setup``), over the sum
  of the measured latencies. 1.00 would mean no cost at all outside the timed
  generations;
* ``per run``: ``(wall - setup - sum(latency)) / runs``, in ms: pipe round
  trip, prompt and memory readings outside the timed region, the journal
  commit (fsync) and the progress callback;
* ``with setup``: ``wall / sum(latency)``.

It also times a ``sim`` sweep of the same grid (no real latency: all of its
wall time is orchestration) and, with ``--cell``, the same CPU sweep with
isolation ``cell`` (a fresh process, model load and warm-up per cell).

Example (docs/performance.md gives the command behind its numbers)::

    python benchmarks/orchestration.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from collector.measuring.environment import collect, cpu_name  # noqa: E402
from collector.sweep.journal import Journal  # noqa: E402
from collector.sweep.runner import run_sweep  # noqa: E402
from collector.sweep.spec import build_spec  # noqa: E402


def sweep(folder: Path, name: str, **settings: object) -> dict:
    spec = build_spec(settings, defaults=False)
    with Journal.create(folder / f"{name}.journal", spec=spec.to_dict(), environment=collect(spec.devices)) as j:
        t0 = time.perf_counter()
        res = run_sweep(spec, j)
        wall = time.perf_counter() - t0
        n = j.count()
    return {"runs": n, "wall": wall, "setup": res.setup_time, "measured": res.measured_time, "failed": res.failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-gpt2")
    ap.add_argument("--budgets", default="8:64:8")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cell", action="store_true", help="also time isolation cell")
    args = ap.parse_args()
    grid = dict(models=args.model, budgets=args.budgets, trials=args.trials, caches="both", warmup=1, timing="ends")
    print(f"{platform.platform()}, {cpu_name()}, {os.cpu_count()} cpus; {args.model}, budgets {args.budgets}, "
          f"cache on+off, {args.trials} trials, warm-up 1, timing ends\n")
    print("| sweep | runs | wall s | setup s | sum of latencies s | overhead | per run ms | with setup |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for i in range(args.repeats):
            r = sweep(Path(tmp), f"cpu{i}", devices="cpu", isolation="none", seed=i, **grid)
            rows.append(r)
            _print(f"cpu, isolation none, #{i + 1}", r)
        over = [(r["wall"] - r["setup"]) / r["measured"] for r in rows]
        print(f"| **median overhead, isolation none** | | | | | **{np.median(over):.3f}** | | |")
        if args.cell:
            _print("cpu, isolation cell", sweep(Path(tmp), "cell", devices="cpu", isolation="cell", **grid))
        r = sweep(Path(tmp), "sim", devices="sim", isolation="none", **grid)
        print(f"| sim (no real latency), isolation none | {r['runs']} | {r['wall']:.2f} | {r['setup']:.2f} | - | - | "
              f"{1e3 * (r['wall'] - r['setup']) / r['runs']:.2f} | - |")


def _print(label: str, r: dict) -> None:
    over = (r["wall"] - r["setup"]) / r["measured"]
    per = 1e3 * (r["wall"] - r["setup"] - r["measured"]) / r["runs"]
    print(f"| {label} | {r['runs']} | {r['wall']:.2f} | {r['setup']:.2f} | {r['measured']:.2f} | {over:.3f} | "
          f"{per:.2f} | {r['wall'] / r['measured']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
