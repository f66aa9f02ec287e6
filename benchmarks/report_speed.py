"""Speed of analysis.report on a 10^5-cell simulated sweep (every analysis, every figure, HTML + PNG + SVG).

Run on the 2-core machine (BLAS threads pinned to 1 before numpy loads)::

    python benchmarks/report_speed.py [--write]

``--write`` puts the table into docs/performance.md ("## Report speed").
Data: :func:`analysis.synthetic.make_dataset` with per-step times; making the
data is not counted. The time of each step comes from report()'s progress callback.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402 - thread limits first, then the repository on sys.path
import sys  # noqa: E402 - thread limits first, then the repository on sys.path
import tempfile  # noqa: E402 - thread limits first, then the repository on sys.path
import time  # noqa: E402 - thread limits first, then the repository on sys.path
from pathlib import Path  # noqa: E402 - thread limits first, then the repository on sys.path

import numpy as np  # noqa: E402 - thread limits first, then the repository on sys.path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402 - thread limits first, then the repository on sys.path
from analysis.report import report  # noqa: E402 - thread limits first, then the repository on sys.path
from analysis.synthetic import Regime, make_dataset  # noqa: E402 - thread limits first, then the repository on sys.path

MODELS = ("distilgpt2", "gpt2", "gpt2-medium", "bloom-560m", "opt-350m")
DEVICES = ("mps", "cpu", "cuda", "sim")
DTYPES = ("float32", "float16")
PROMPTS = (16, 32, 64, 128, 256)
BUDGETS = tuple(range(8, 401, 8))  # 50 budgets
TRIALS = 5
REGIMES = (Regime(176, 232, 8.0, device="mps", cache=True, model="gpt2-medium"),
           Regime(248, 272, 4.0, device="mps", cache=True, model="bloom-560m"),
           Regime(200, 240, 1.8, device="mps", cache=False))
COMMAND = "python benchmarks/report_speed.py --write"


def _cpu() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ds = make_dataset(seed=0, models=MODELS, devices=DEVICES, dtypes=DTYPES, prompt_lens=PROMPTS, budgets=BUDGETS,
                      trials=TRIALS, regimes=REGIMES)
    make_s = time.perf_counter() - t0
    cells = int(np.prod([n for d, n in ds.sizes.items() if d != "step"]))
    finished: list[tuple[str, float]] = []
    t0 = time.perf_counter()

    def on_step(step: str, done: int, total: int) -> None:
        if done:
            finished.append((step, time.perf_counter() - t0))

    with tempfile.TemporaryDirectory() as tmp:
        c0 = _cpu()
        t0 = time.perf_counter()
        files = report(ds, tmp, progress=on_step)
        total = time.perf_counter() - t0
        cpu = _cpu() - c0
        size = (files.html.stat().st_size, sum(f.stat().st_size for f in files.figures))
    load = os.getloadavg()[0]
    lines = [
        f"Measured with `{COMMAND}` on the 2-core machine (2 logical CPUs, shared with other work; BLAS threads "
        "pinned to 1); one run; making the data is not counted.",
        "",
        f"Data: `analysis.synthetic.make_dataset`, {len(MODELS)} models x {len(DEVICES)} devices x "
        f"{len(DTYPES)} dtypes x 2 cache x "
        f"{len(PROMPTS)} prompt lengths x {len(BUDGETS)} budgets x {TRIALS} trials = {cells:,} cells (runs), "
        f"{cells // (len(BUDGETS) * TRIALS)} series, with per-step times (up to {max(BUDGETS)} steps a run) and "
        f"{len(REGIMES)} planted regimes (made in {make_s:.0f} s).",
        "",
        f"**`analysis.report` on {cells:,} cells: {total:.1f} s wall, {cpu:.1f} s of CPU** (this process and "
        f"its workers; 1-minute load average {load:.1f} at the end) (page {size[0] / 1e6:.1f} MB; "
        f"{len(files.figures)} figure files, {size[1] / 1e6:.1f} MB).",
        "",
        "The report runs the regimes first (their per-series work spread over the workers), then the other "
        "analyses and the figures side by side on `workers` forked processes (default: the CPUs, here 2). "
        "With two cores to itself the wall time is about the CPU time over two plus the serial part of the "
        "regimes; on this shared machine the wall time depends on the load (given above).",
        "",
        "| step | finished after (s) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {sec:.1f} |" for name, sec in finished]
    text = "\n".join(lines)
    print(text)
    if args.write:
        replace_section(PERFORMANCE_MD, "## Report speed", text)
        print(f"wrote {PERFORMANCE_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
