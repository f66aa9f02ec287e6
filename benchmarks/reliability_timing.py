"""How fast the reliability guards act: orphaned workers dying with their sweep, unbounded arguments refused.

* **orphaned workers**: a parent process starts ``collector.sweep.worker`` (stdin kept open, so the
  worker never sees an end of file) and is killed with SIGKILL; the time until the worker is
  gone, with ``PR_SET_PDEATHSIG`` (Linux) and with the parent check alone (the path of other
  systems). docs/cli.md promises 0.5 s.
* **unbounded arguments**: wall time of ``python -m analysis regimes FILE --n-boot 100000000``
  and ``python -m collector run --devices sim ... --warmup 100000000 --timeout 5`` until their
  one-line refusal (interpreter start and imports included).

The tests check that each guard acts (the orphan dies, the refusal names the bad value); the
times live here, since a shared machine's load makes wall-clock bounds in tests flaky.

Usage::

    python benchmarks/reliability_timing.py [--kills 5] [--write]

``--write`` puts the table into docs/performance.md ("## Reliability guards: timings").
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402

HEADING = "## Reliability guards: timings"
COMMAND = "python benchmarks/reliability_timing.py --kills {kills} --write"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def orphan_death(pdeathsig: bool) -> float:
    """Seconds from SIGKILL of a worker's parent until the worker is gone."""
    patch = "" if pdeathsig else "m._kill_with_parent = lambda: False; "
    worker = f"import os, sys; import collector.sweep.worker as m; {patch}sys.argv[1:] = [str(os.getppid())]; m.main()"
    r, w = os.pipe()
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {worker!r}], stdin={r}, "
            f"pass_fds=({r},)); print(p.pid, flush=True); time.sleep(600)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, pass_fds=(r,), env=env, text=True)
    os.close(r)
    try:
        pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.5)  # the worker has imported and started its parent check
        if _gone(pid):
            raise SystemExit("the worker did not start")
        t0 = time.perf_counter()
        parent.kill()
        parent.wait()
        while not _gone(pid):
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"the orphaned worker {pid} outlived its parent by 30 s")
            time.sleep(0.001)
        return time.perf_counter() - t0
    finally:
        os.close(w)
        if parent.poll() is None:
            parent.kill()


def refusal(*args: str) -> float:
    """Wall seconds of a command that must refuse at once (exit status 2)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    elapsed = time.perf_counter() - t0
    if done.returncode != 2:
        raise SystemExit(f"expected a refusal (exit 2) from {args}, got {done.returncode}: {done.stderr[-300:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5, help="orphaned workers timed per path")
    ap.add_argument("--write", action="store_true", help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    from analysis.synthetic import make_dataset
    from collector.dataset.schema import save

    rows = []
    for label, flag in (("`PR_SET_PDEATHSIG` (Linux)", True), ("parent check alone (every 0.1 s)", False)):
        t = np.array([orphan_death(flag) for _ in range(args.kills)]) * 1000
        rows.append(f"| orphaned worker gone after its sweep's SIGKILL: {label} | "
                    f"{', '.join(f'{v:.0f}' for v in t)} ms (median {np.median(t):.0f} ms) |")
    with tempfile.TemporaryDirectory() as tmp:
        data = save(make_dataset(seed=0, budgets=(16, 32, 48, 64), trials=3), Path(tmp) / "d.nc")
        t_boot = refusal("analysis", "regimes", str(data), "--n-boot", "100000000")
        t_warm = refusal("collector", "run", "--devices", "sim", "--models", "tiny-gpt2", "--budgets", "8",
                         "--warmup", "100000000", "--timeout", "5", "-o", str(Path(tmp) / "w.nc"))
    rows.append(f"| `python -m analysis regimes FILE --n-boot 100000000` refused | {t_boot:.1f} s |")
    rows.append(f"| `python -m collector run --devices sim ... --warmup 100000000 --timeout 5` refused | {t_warm:.1f} s |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body = "\n".join([
        f"Measured with `{COMMAND.format(kills=args.kills)}` on {platform.machine()} with {psutil.cpu_count()} "
        f"CPUs (load average {load:.1f} at the end). The tests check that each guard acts "
        "(tests/test_reliability_dataloss.py, tests/test_reliability_errors.py); the times are here.",
        "",
        "| what | time |",
        "|---|---|",
        *rows,
    ])
    print(body)
    if args.write:
        replace_section(PERFORMANCE_MD, HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
