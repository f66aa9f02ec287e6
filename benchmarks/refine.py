"""Adaptive refinement on the sim device: does it find regime boundaries, and for how many runs?

A regime 16 tokens wide (decode steps slowed by ``--factor``) is planted at
several places inside a coarse grid of budgets 8, 16, ..., 64 (a 64-token
grid). For each placement and seed, a sim sweep (``--trials`` trials, cache on)
runs the grid and then ``--refine RESOLUTION``. Reported per resolution:

* located: the share of sweeps in which both boundaries were found, each to
  within RESOLUTION tokens (the reported pair brackets the true boundary);
* spurious: sweeps that reported a boundary that is not a true one;
* runs: median runs used (grid + refinement), and the ratio to a dense sweep
  of the grid's span at that resolution (budgets 8, 8 + R, ..., 64, same trials).

Example (docs/performance.md gives the command behind its table)::

    python benchmarks/refine.py --resolutions 1 2 4 --seeds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from collector.measuring.environment import collect  # noqa: E402
from collector.sweep.journal import Journal  # noqa: E402
from collector.sweep.runner import run_sweep  # noqa: E402
from collector.sweep.spec import build_spec  # noqa: E402


def one(start: int, width: int, resolution: int, seed: int, factor: float, trials: int, noise: float,
        folder: Path) -> dict:
    end = start + width - 1
    spec = build_spec(dict(models="gpt2", devices="sim", budgets="8:64:8", trials=trials, caches="on", warmup=0,
                           refine=resolution, seed=seed,
                           sim={"noise_cv": noise, "regimes": [{"start": start, "end": end, "factor": factor}]}),
                      defaults=False)
    path = folder / f"r{start}-{resolution}-{seed}.journal"
    with Journal.create(path, spec=spec.to_dict(), environment=collect(spec.devices)) as j:
        res = run_sweep(spec, j)
        n = j.count()
    found = [b for bs in res.boundaries.values() for b in bs]
    # true boundaries: entering between start-1 and start, leaving between end and end+1
    up = [b for b in found if b.lo < start <= b.hi]
    down = [b for b in found if b.lo <= end < b.hi]
    located = (len(up) == 1 and len(down) == 1 and all(b.located for b in up + down))
    spurious = len(found) - len(up) - len(down)
    dense = len(range(8, 65, resolution)) * trials
    return {"located": located, "spurious": spurious, "runs": n, "dense": dense}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--starts", type=int, nargs="+", default=list(range(10, 44, 4)),
                    help="first budget inside the planted regime")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--noise", type=float, default=0.03, help="sim noise_cv")
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"regime width {args.width}, factor {args.factor}, noise_cv {args.noise}, trials {args.trials}, "
          f"grid 8:64:8, starts {args.starts}, seeds 0..{args.seeds - 1}\n")
    print("| resolution | sweeps | both boundaries located | spurious boundaries | median runs | dense runs | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for r in args.resolutions:
            rows = [one(s, args.width, r, seed, args.factor, args.trials, args.noise, Path(tmp))
                    for s in args.starts for seed in range(args.seeds)]
            located = np.mean([x["located"] for x in rows])
            spurious = sum(x["spurious"] for x in rows)
            runs = float(np.median([x["runs"] for x in rows]))
            dense = rows[0]["dense"]
            print(f"| {r} | {len(rows)} | {located:.0%} | {spurious} | {runs:.0f} | {dense} | {runs / dense:.2f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
