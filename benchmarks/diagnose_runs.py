"""``collector diagnose`` on planted causes: the factor it names, and its runs against the study's protocol.

Each case of ``tests/diagnose_files.py`` is a coarse simulated sweep (gpt2 on
device ``sim``, cache on, prompt 32, budgets 32..384 step 32, 3 trials) with
one planted regime at budgets 150-250 (x2.5) that depends on one factor: the
total length (onset at prompt + budget = 182), the dynamic cache (absent with
a static one), the processes of the sweep that found it (process-local),
attention (x1.5 with eager), or nothing (on the budget, everywhere). The
script runs ``collector.diagnose.diagnose`` on each (every question) and
tabulates the factor named, the runs measured and the runs the study's
protocol needs for the same questions
(:func:`collector.diagnose.diagnosis.study_runs`: a 16-token probe from the
file's neighbours of the regime, 5 runs a cell; each other question a full
5-run sweep over the coarse grid and the probe, at every value of its factor,
or at the new value only).

Usage::

    python benchmarks/diagnose_runs.py            # print the table
    python benchmarks/diagnose_runs.py --write    # and write its section of docs/performance.md
    python benchmarks/diagnose_runs.py --cpu --write   # and a regime planted into real CPU runs (2 min)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402

HEADING = "## collector diagnose: runs against the study's protocol"
PLANTED = {"total": "onset on total length (prompt + budget)", "static": "only with the dynamic cache",
           "process": "only in the processes of the file's sweep", "attn": "x1.5 instead of x2.5 with eager attention",
           "budget": "on the budget, every setting"}


def measure() -> list[dict[str, object]]:
    """Diagnose every case; one row each."""
    import analysis
    from collector.diagnose import diagnose
    from diagnose_files import CASES, sweep_file

    rows = []
    for case, regimes in CASES.items():
        row: dict[str, object] = {"case": case, "planted": PLANTED[case]}
        for noise in (None, "cuda"):
            with tempfile.TemporaryDirectory() as tmp:
                path = sweep_file(Path(tmp), regimes, noise=noise)
                t0 = time.perf_counter()
                d = diagnose(analysis.open_dataset(path), source=str(path), output=Path(tmp) / "diagnosis.nc")
                seconds = time.perf_counter() - t0
            named = ", ".join(f"{f} {v}" for f, v in d.named(1).items()) or "nothing (every factor stayed)"
            suffix = "" if noise is None else "_real"
            row.update({"named" + suffix: named, "runs" + suffix: d.runs, "study": d.study_runs,
                        "study_new": d.study_runs_new, "seconds" + suffix: seconds})
        rows.append(row)
    return rows


def measure_cpu() -> dict[str, object]:
    """The real-CPU case of tests/test_diagnose_cpu.py: tiny-gpt2 (cpu, cache on, prompt 8, budgets 8..192 step 8,
    5 trials), each decode-step forward of budgets 60..116 sleeping as long as it took (the test-only fault
    ``slow-decode``); the questions refine, prompt_len, process and attn."""
    import os

    import analysis
    from collector.dataset.export import to_dataset
    from collector.dataset.schema import save
    from collector.diagnose import diagnose
    from collector.sweep.journal import Journal
    from collector.sweep.runner import run_sweep
    from collector.sweep.spec import build_spec
    from collector.sweep.worker import FAULTS_ENV, enable_fault_injection

    enable_fault_injection()
    os.environ[FAULTS_ENV] = "slow-decode@budget=60..116"
    os.environ["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cpu.nc"
        spec = build_spec({"models": "tiny-gpt2", "devices": "cpu", "budgets": list(range(8, 193, 8)),
                           "prompt_lens": [8], "caches": "on", "trials": 5, "seed": 0, "output": str(out)})
        with Journal.create(Path(tmp) / "cpu.journal", spec=spec.to_dict(), environment={}, command="bench") as j:
            run_sweep(spec, j)
            save(to_dataset(j), out)
        t0 = time.perf_counter()
        d = diagnose(analysis.open_dataset(out), source=str(out), output=Path(tmp) / "diagnosis.nc",
                     questions=["prompt_len", "process", "attn"])
        seconds = time.perf_counter() - t0
    verdicts = "; ".join(f"{v.factor} {v.verdict}" + (f" ({v.detail.split(': ', 1)[-1]})" if v.factor == "boundary"
                                                     else "") for v in d.verdicts if v.regime == 1)
    return {"verdicts": verdicts or d.summary(), "runs": d.runs, "study": d.study_runs,
            "load": os.getloadavg()[0], "seconds": seconds}


def table(rows: list[dict[str, object]], cpu: dict[str, object] | None = None) -> str:
    """The markdown body of the section."""
    lines = [
        "Measured by `python benchmarks/diagnose_runs.py --write` (device `sim`, so the runs, not the seconds, are "
        "the measure; every question asked). Each case is a coarse simulated sweep (gpt2, cache on, prompt 32, "
        "budgets 32..384 step 32, 3 trials) with a regime at budgets 150-250 (x2.5) planted to depend on one "
        "factor (tests/diagnose_files.py); `collector diagnose` must name that factor and nothing else "
        "(tests/test_diagnose_run.py asserts it). The study's protocol for the same questions: a 16-token probe "
        "from the file's neighbours of the regime (128-256: 9 budgets), 5 runs a cell, and each ablation a full "
        "5-run sweep over the coarse grid plus the probe (16 budgets) at every value of its factor (prompt "
        "length, cache_impl, attn, dtype: 2; fresh processes, engine, warm-up: 1), or at the new value only "
        "(the file's own value not swept again).",
        "",
        "The same at the simulator's noise fitted to real CUDA null sweeps (`noise_presets()['cuda']`: run noise "
        "CV 0.11, 17 % of runs in a x1.44 slow state; tests/test_diagnose_run.py also checks the `cpu` preset): "
        "the columns *at real noise*.",
        "",
        "| case (planted) | named | runs | study's protocol | ratio | new value only | ratio | wall s "
        "| named at real noise | runs | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        runs, study, new = int(r["runs"]), int(r["study"]), int(r["study_new"])  # type: ignore[call-overload]
        real = int(r["runs_real"])  # type: ignore[call-overload]
        lines.append(f"| {r['case']} ({r['planted']}) | {r['named']} | {runs} | {study} | {runs / study:.3f}x | "
                     f"{new} | {runs / new:.3f}x | {float(r['seconds']):.1f} "  # type: ignore[arg-type]
                     f"| {r['named_real']} | {real} | {real / study:.3f}x |")
    lines += [
        "",
        "Where the runs go (the `budget` case, 84 runs): refine 22 (the file's four neighbours twice, 10 bisection "
        "midpoints once each: their side is all the bisection asks, then the cells it ends on verified with 2 runs "
        "each), "
        "prompt_len 10, process 12 (four cells in each of three fresh processes), and 8 for each of cache_impl, "
        "attn, dtype, engine and warm-up (four cells, two runs: Wald's test settles each side at the second run "
        "at this noise). A regime that does not come back at the file's setting (process-local) costs 20: "
        "nothing is left for a factor to move. Against the protocol at every value the diagnosis is under 0.1x "
        "in every case; against the new value only it is 0.14x (the protocol then counts 605 runs), so the claim "
        "is 0.1x of the study's protocol as the issue defines it (each ablation a full sweep), not of its "
        "cheapest reading. At real noise a few cells need a third or fourth run: 0.094x to 0.101x "
        "(the static case, 93 runs, is one run over a tenth). Runs, not device time: the follow-up budgets lie "
        "around the regime, where runs are "
        "slower than the grid's average, and every stage starts fresh worker processes.",
    ]
    if cpu is not None:
        runs, study = int(cpu["runs"]), int(cpu["study"])  # type: ignore[call-overload]
        lines += [
            "",
            "On real CPU runs (`--cpu`, the case of tests/test_diagnose_cpu.py): tiny-gpt2, cache on, prompt 8, "
            "budgets 8..192 step 8, 5 trials, each decode-step forward of budgets 60..116 sleeping as long as it "
            "took (the test-only fault `slow-decode`), one thread per worker; the questions refine, prompt_len, "
            f"process and attn. {cpu['verdicts']}. {runs} runs against {study} for the study's protocol "
            f"({runs / study:.3f}x), {float(cpu['seconds']) / 60:.1f} min "  # type: ignore[arg-type]
            f"(1-minute load average {float(cpu['load']):.1f} on this host at the end).",  # type: ignore[arg-type]
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write the section {HEADING!r} of docs/performance.md")
    parser.add_argument("--cpu", action="store_true", help="also diagnose a regime planted into real CPU runs")
    args = parser.parse_args(argv)
    body = table(measure(), measure_cpu() if args.cpu else None)
    print(body)
    if args.write:
        replace_section(PERFORMANCE_MD, HEADING, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
