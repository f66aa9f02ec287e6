"""Speed of analysis.regimes: a paper-sized sweep, a scaling table up to 10^6 cells, 2 dask workers.

Run on one core (BLAS threads pinned to 1 before numpy loads)::

    python benchmarks/regimes_speed.py [--max-cells 1000000] [--repeat 5] [--write]

``--write`` puts the tables into docs/performance.md ("## Analysis speed").
Data: :func:`analysis.synthetic.make_dataset` (``step_time=False``); the time
to make the data is not counted.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-cells", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    lines: list[str] = []

    # ---- paper-sized sweep
    ds = make_dataset(0, models=PAPER_MODELS, devices=("mps", "cuda", "cpu"), caches=(False, True), budgets=BUDGETS,
                      trials=5, regimes=PAPER_REGIMES, step_time=False)
    cells = int(ds["latency"].size)
    t_paper, r = timed(lambda: regimes(ds), args.repeat)
    t_noboot, _ = timed(lambda: regimes(ds, n_boot=0), args.repeat)
    n_series = int(r["detected"].size)
    lines += [
        f"Measured with `{COMMAND.format(max_cells=args.max_cells, repeat=args.repeat)}` on one CPU core "
        f"({os.cpu_count()} logical CPUs on the machine, shared; BLAS threads pinned to 1); median of "
        f"{args.repeat} runs after a warm-up; making the data is not counted.",
        "",
        f"Paper-sized sweep: 6 models x 3 devices (mps, cuda, cpu) x 2 cache x 50 budgets x 5 trials = "
        f"{cells} runs, {n_series} series, 4 planted regimes on mps (`analysis.synthetic`, default noise).",
        "",
        "| call | seconds | series where the detector ran | anomalous series |",
        "|---|---|---|---|",
        f"| `regimes(ds)` (n_boot=200) | {t_paper:.3f} | {int(r['detected'].sum())} | "
        f"{int(r['anomalous'].any('budget').sum())} |",
        f"| `regimes(ds, n_boot=0)` | {t_noboot:.3f} | | |",
        "",
    ]

    # ---- scaling
    lines += [f"Scaling (50 budgets, {TRIALS} trials, default noise, one planted regime; eager, one process):", "",
              "| cells | series | seconds | detector ran on | microseconds per cell |", "|---|---|---|---|---|"]
    biggest = None
    target = 10_000
    while target <= args.max_cells:
        n_series = max(1, target // (len(BUDGETS) * TRIALS))
        big = scaling_dataset(n_series, TRIALS)
        reps = args.repeat if target < 200_000 else 1
        t, r = timed(lambda: regimes(big), reps)
        c = int(big["latency"].size)
        lines.append(f"| {c:,} | {int(r['detected'].size):,} | {t:.2f} | {int(r['detected'].sum())} | {1e6 * t / c:.2f} |")
        print(lines[-1], flush=True)
        biggest = big
        target *= 10
    lines.append("")

    # ---- dask, 2 workers
    if biggest is not None:
        import distributed

        sdim = "prompt_len"
        chunks = {sdim: max(1, biggest.sizes[sdim] // 8)}
        lazy = biggest.chunk(chunks)
        t_eager, eager = timed(lambda: regimes(biggest), 1)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as cluster, distributed.Client(cluster):
            t_dask, out = timed(lambda: regimes(lazy), 1)
        same = bool((out["anomalous"] == eager["anomalous"]).all())
        lines += [
            f"dask.distributed, `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`, the "
            f"{int(biggest['latency'].size):,}-cell dataset chunked over `{sdim}` ({chunks[sdim]} per chunk):",
            "",
            "| run | seconds | speed-up | same `anomalous` as eager |",
            "|---|---|---|---|",
            f"| eager, one process | {t_eager:.2f} | 1.00 | |",
            f"| dask, 2 worker processes | {t_dask:.2f} | {t_eager / t_dask:.2f} | {same} |",
            "",
            "The per-series work (baseline, changepoints, tests, bootstrap) runs in the workers; BH "
            "correction, the time-confound check and assembling the result run in the client, so the "
            "speed-up is bounded by that serial part and by the 2 shared cores of the machine.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        replace_section(PERFORMANCE_MD, "## Analysis speed", text)


if __name__ == "__main__":
    main()
