"""Speed of analysis.regimes: a paper-sized sweep (and earlier revisions of it), a scaling table, 2 dask workers.

Run on one core (BLAS threads pinned to 1 before numpy loads)::

    python benchmarks/regimes_speed.py [--max-cells 100000] [--repeat 5] [--before REV ...] [--dask [--workers N]]
        [--write]

``--write`` puts the tables into docs/performance.md ("## Analysis speed").
Data: :func:`analysis.synthetic.make_dataset` (``step_time=False``); the time
to make the data is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402  (after the BLAS thread pinning above)

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402
from analysis.core.series import series_dims  # noqa: E402
from analysis.regimes import regimes  # noqa: E402
from analysis.synthetic import Regime, make_dataset  # noqa: E402

PAPER_MODELS = ("distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "bloom-560m", "opt-350m")
ALL_MODELS = ("tiny-gpt2", "distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "bloom-560m", "opt-125m", "opt-350m")
BUDGETS = tuple(range(8, 401, 8))  # 50 budgets
PAPER_REGIMES = (
    Regime(176, 232, 8.0, device="mps", cache=True, model="gpt2-medium"),
    Regime(104, 112, 21.0, device="mps", cache=True, model="gpt2-large"),
    Regime(248, 272, 4.0, device="mps", cache=True, model="bloom-560m"),
    Regime(200, 240, 1.8, device="mps", cache=False),
)
TRIALS = 5
COMMAND = "python benchmarks/regimes_speed.py --max-cells {max_cells} --repeat {repeat} --write"


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up (imports, caches)
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def scaling_dataset(n_series: int, trials: int):
    """About n_series series x 50 budgets x trials cells: models x devices x dtypes x cache x prompt lengths."""
    models = ALL_MODELS[: max(1, min(len(ALL_MODELS), n_series // 2))]
    per = len(models) * 2
    devices = ("sim", "mps", "cuda", "cpu")[: max(1, min(4, n_series // per))]
    per *= len(devices)
    dtypes = ("float32", "float16", "bfloat16")[: max(1, min(3, n_series // per))]
    per *= len(dtypes)
    n_prompt = max(1, round(n_series / per))
    return make_dataset(
        1, models=models, devices=devices, dtypes=dtypes, caches=(False, True),
        prompt_lens=tuple(range(8, 8 + 4 * n_prompt, 4)), budgets=BUDGETS, trials=trials, step_time=False,
        regimes=[Regime(200, 240, 5.0, device=devices[-1], cache=True)],
    )


TIME_SNIPPET = """
import json, pickle, sys, time, warnings
warnings.simplefilter("ignore")
from analysis.regimes import regimes
with open(sys.argv[1], "rb") as f:
    ds = pickle.load(f)
regimes(ds.isel({sys.argv[2]: slice(0, 1)}))  # warm-up (imports, caches) on one label of the largest series dim
t0 = time.perf_counter()
regimes(ds)
print(json.dumps(time.perf_counter() - t0))
"""


def warm_dim(ds: Any) -> str:
    """The largest series dim of ``ds`` (a warm-up runs on one label of it)."""
    return str(max(series_dims(ds["latency"]), key=lambda d: ds.sizes[d]))


def _time_tree(tree: Path, data: Path, dim: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), env_path] if (env_path := os.environ.get(
        "PYTHONPATH")) else [str(tree)])}
    out = subprocess.run([sys.executable, "-c", TIME_SNIPPET, str(data), dim], cwd=tree, env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def revision_tree(rev: str) -> Iterator[Path]:
    """The code of git revision ``rev`` on a temporary worktree; ``rev`` may also be a folder holding that
    revision's ``analysis``, ``collector`` and ``benchmarks`` (``git archive REV | tar -x -C FOLDER``)."""
    if Path(rev).is_dir():
        yield Path(rev).resolve()
        return
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)


def interleaved(ds: Any, trees: list[Path], repeat: int) -> tuple[float, Any, list[float]]:
    """Median seconds of ``regimes(ds)`` with this code (in this process) and with each of ``trees`` (a fresh
    process each time, the same data, pickled), in ``repeat`` rounds that run every code once in turn, so that
    a slow spell of a shared machine slows them alike; each after a warm-up on one label of the largest series
    dim. Also this code's result."""
    dim = warm_dim(ds)
    regimes(ds.isel({dim: slice(0, 1)}))
    mine: list[float] = []
    theirs: list[list[float]] = [[] for _ in trees]
    out = None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.pickle"
        data.write_bytes(pickle.dumps(ds))
        for _ in range(repeat):
            t = time.perf_counter()
            out = regimes(ds)
            mine.append(time.perf_counter() - t)
            for k, tree in enumerate(trees):
                theirs[k].append(_time_tree(tree, data, dim))
    return statistics.median(mine), out, [statistics.median(t) for t in theirs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-cells", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--before", action="append", default=[],
                   help="also time the paper-sized sweep at this git revision (repeatable), interleaved with this "
                        "code on the same data; the first one the scaling datasets too")
    p.add_argument("--dask", action="store_true", help="also time the largest dataset on --workers dask workers")
    p.add_argument("--workers", type=int, default=2, help="dask workers (processes, one thread each)")
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    with contextlib.ExitStack() as stack:
        trees = [stack.enter_context(revision_tree(rev)) for rev in args.before]
        lines = _paper_section(args, trees)
        scaling, biggest = _scaling_section(args.max_cells, args.repeat, trees[:1], args.before[:1])
    lines += scaling
    if biggest is not None and args.dask:
        lines += _dask_section(*biggest, args.workers)
    text = "\n".join(lines)
    print(text)
    if args.write:
        replace_section(PERFORMANCE_MD, "## Analysis speed", text)


def _paper_section(args: argparse.Namespace, trees: list[Path]) -> list[str]:
    """The paper-sized sweep, with this code and the earlier revisions (``trees``) in turn."""
    ds = make_dataset(0, models=PAPER_MODELS, devices=("mps", "cuda", "cpu"), caches=(False, True), budgets=BUDGETS,
                      trials=5, regimes=PAPER_REGIMES, step_time=False)
    cells = int(ds["latency"].size)
    t_paper, r, t_before = interleaved(ds, trees, args.repeat)
    n_series = int(r["p_series"].size)
    command = COMMAND.format(max_cells=args.max_cells, repeat=args.repeat) + "".join(
        f" --before {rev}" for rev in args.before) + (f" --dask --workers {args.workers}" if args.dask else "")
    lines = [
        f"Measured with `{command}` on one CPU core ({os.cpu_count()} logical CPUs on the machine, shared; BLAS "
        f"threads pinned to 1); median of {args.repeat} runs, each after a warm-up on a sixth or less of the "
        "series, in rounds that run each code once in turn on the same data (earlier revisions in a fresh process "
        "each); making the data is not counted.",
        "",
        f"Paper-sized sweep: 6 models x 3 devices (mps, cuda, cpu) x 2 cache x 50 budgets x 5 trials = "
        f"{cells} runs, {n_series} series, 4 planted regimes on mps (`analysis.synthetic`, default noise).",
        "",
        "| code | seconds | series with a regime |",
        "|---|---|---|",
        f"| this revision | {t_paper:.2f} | {int(r['anomalous'].any('budget').sum())} |",
    ]
    for rev, t in zip(args.before, t_before):
        lines.append(f"| `{Path(rev).name}` (same data, its own code) | {t:.2f} | |")
    lines += [
        "",
        "Where the time goes (cProfile of this revision on the 2-core development machine): the power "
        "simulation (`mde`, `mde_4`, the power curve: steps planted into 200 null draws at 4 positions, the "
        "one-budget curve at 6 ratios, then a bracketing search to 0.5 % in ratio, regula falsi on the probit "
        "scale: about 645 power evaluations for the 36 series, 705 with the bisection before; and up to 1000 null "
        "maxima per series for the critical value at alpha / m) is about 60 % of it, the sequential p-values "
        "about 20 %. Most of both is the leave-one-out Qn scale of each null draw's strongest interval (a "
        "partition of about 1,200 pairwise distances per draw: about 1.9 of 4.6 s in the profile). A scale "
        "without that partition (Hampel's rejection rule on the differences) took this sweep to 2.6 s, but its "
        "stated precision was not true on real noise (effect CIs covered 0.89-0.95; docs/methods.md, \"Null "
        "model\"), so Qn stays. The targets of issue 11 (0.5 s for this sweep, 10 s for 10^5 cells on one "
        "core) are not met: honest power costs a simulation per series. "
        "`regimes(ds, n_perm=...)` trades p-value resolution for time.",
        "",
    ]
    return lines


def _scaling_section(max_cells: int, repeat: int, trees: list[Path], revs: list[str]
                     ) -> tuple[list[str], tuple[Any, float, Any] | None]:
    """Datasets of 10^4, 10^5, ... cells up to ``max_cells``, eager, with this code and the revision of ``trees``
    (one or none) in turn; the lines and the largest dataset with its eager seconds and result (or None)."""
    before = [f"`{Path(revs[0]).name}` seconds", "speed-up"] if trees else []
    head = ["cells", "series", "seconds", *before, "series with a regime", "microseconds per cell"]
    lines = [f"Scaling (50 budgets, {TRIALS} trials, default noise, one planted regime; eager, one process):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    biggest = None
    target = 10_000
    while target <= max_cells:
        n_series = max(1, target // (len(BUDGETS) * TRIALS))
        big = scaling_dataset(n_series, TRIALS)
        reps = repeat if target < 200_000 else 1
        t, r, t_before = interleaved(big, trees, reps)
        c = int(big["latency"].size)
        then = [f"{t_before[0]:.2f}", f"{t_before[0] / t:.2f}"] if trees else []
        row = [f"{c:,}", f"{int(r['p_series'].size):,}", f"{t:.2f}", *then, str(int(r["anomalous"].any("budget").sum())),
               f"{1e6 * t / c:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
        biggest = (big, t, r)
        target *= 10
    lines.append("")
    return lines, biggest


def series_chunks(ds: Any, workers: int) -> dict[str, int]:
    """Chunks of one label along the largest series dims (``budget`` and ``trial`` stay whole) until there are at
    least three chunks per worker (so that uneven chunks even out), or every series dim is split."""
    dims = sorted((str(d) for d in series_dims(ds["latency"])), key=lambda d: -ds.sizes[d])
    chunks: dict[str, int] = {}
    n = 1
    for d in dims:
        if n >= 3 * workers:
            break
        chunks[d] = 1
        n *= ds.sizes[d]
    return chunks


def _dask_section(biggest: Any, t_eager: float, eager: Any, workers: int) -> list[str]:
    """The largest dataset on the dask threaded scheduler and on ``workers`` dask.distributed workers, against its
    eager time and result (``t_eager``, ``eager``: the scaling table's)."""
    import dask
    import distributed

    chunks = series_chunks(biggest, workers)
    n_chunks = int(np.prod([biggest.sizes[d] for d in chunks]))
    lazy = biggest[["latency", "order", "started_at"]].chunk(chunks)
    with dask.config.set(scheduler="threads", num_workers=workers):
        t_thr, out_thr = timed(lambda: regimes(lazy), 1)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        held = client.persist(lazy)  # the data live on the workers, as after open_mfdataset there
        distributed.wait(held)
        t_dask, out = timed(lambda: regimes(held), 1)

    def same(o) -> bool:
        return bool((o["anomalous"] == eager["anomalous"]).all()
                    and np.allclose(o["ratio"], eager["ratio"], rtol=1e-9, equal_nan=True))

    return [
        f"dask, the {int(biggest['latency'].size):,}-cell dataset ({int(eager['p_series'].size)} series) in "
        f"{n_chunks} chunks (one label of {', '.join(f'`{d}`' for d in chunks)} each):",
        "",
        "| run | seconds | speed-up | same result as eager |",
        "|---|---|---|---|",
        f"| eager, one process | {t_eager:.2f} | 1.00 | |",
        f"| dask threaded scheduler, {workers} threads | {t_thr:.2f} | {t_eager / t_thr:.2f} | {same(out_thr)} |",
        f"| dask.distributed `LocalCluster(n_workers={workers}, threads_per_worker=1, processes=True)`, data "
        f"persisted on the workers | {t_dask:.2f} | {t_eager / t_dask:.2f} | {same(out)} |",
        "",
        "The per-series work (baseline, scan, p-values, power simulation) runs in the workers; validating the "
        "input, the BH correction, the time-confound check (which needs every run's residual and execution "
        "time) and assembling the result run in the client, so the speed-up is bounded by that serial part "
        f"and here by the machine ({os.cpu_count()} logical CPUs shared with other work).",
    ]


if __name__ == "__main__":
    main()
