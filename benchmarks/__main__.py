"""Regenerate docs/performance.md: ``python -m benchmarks`` (run from the repository root).

Every ``## `` section of docs/performance.md comes from one script in
``benchmarks/``. This runner reruns the sections that can be rerun on the
machine at hand (CPU only, minutes), each through its script's ``--write``,
and writes a ``## Last regenerated`` section with the machine (CPU model,
cores, memory), the package versions, the date and what was rerun. Sections
that need a GPU, hand-written interpretation, or that would change the
package's own data are listed as *not rerun here* and keep their recorded
results (each says the command and the machine it was measured with).

Usage::

    python -m benchmarks --list                  # the sections, rerun here or not, command, duration
    python -m benchmarks                         # rerun every section that can be rerun here (about 30 min)
    python -m benchmarks --only speed accuracy   # just these (keys from --list)
    python -m benchmarks --quick --output /tmp/perf.md   # reduced sizes, written into a copy of the doc
    python -m benchmarks --dry-run               # print the commands without running them

``--quick`` runs each section at reduced size (a check that the scripts and
the document still fit together, not numbers to publish), so it must write
into a copy (``--output``), never over the recorded results.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as _md
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _sections import DOC_ENV, PERFORMANCE_MD, replace_section  # noqa: E402

__all__ = ["SECTIONS", "Section", "machine_header", "main"]

HEADER = "## Last regenerated"
#: Distributions whose versions the header reports (missing ones are left out).
PACKAGES = ("decode-regimes", "numpy", "scipy", "pandas", "xarray", "dask", "statsmodels", "scikit-learn",
            "ruptures", "netCDF4", "matplotlib", "torch", "transformers")


@dataclass(frozen=True)
class Section:
    """One section of docs/performance.md and how it is produced.

    Attributes
    ----------
    key
        Short name for ``--only``.
    heading
        The section's heading line in docs/performance.md.
    script
        The script in ``benchmarks/`` that measures it.
    args
        Arguments of the recorded (full) run, ``--write`` included.
    quick
        Arguments of a reduced run (``--quick``); None: no smaller form.
    minutes
        Duration of the recorded run (as the section states it, rounded up).
    not_here
        Why this runner does not rerun it (None: it does).
    """

    key: str
    heading: str
    script: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = None
    minutes: float = 0.0
    not_here: str | None = None

    def command(self, quick: bool = False) -> list[str]:
        """The command line that reruns the section (``sys.executable`` and the script's path)."""
        args = self.quick if quick and self.quick is not None else self.args
        return [sys.executable, str(HERE / self.script), *args]


SECTIONS: tuple[Section, ...] = (
    Section("instrumentation", "## Instrumentation overhead", "instrumentation.py",
            not_here="needs a CUDA GPU (recorded on one H200; raw data in benchmarks/results/instrumentation-h200.json)"),
    Section("orchestration", "## Orchestration overhead", "orchestration.py",
            not_here="prints its numbers (a real CPU sweep with torch) and the section interprets them by hand"),
    Section("refine", "## Adaptive refinement", "refine.py",
            not_here="prints its table and the section interprets it by hand"),
    Section("real", "## Regimes on real measurements", "regimes_real.py",
            args=("--reps", "2", "--jobs", "2", "--write"), quick=("--reps", "1", "--jobs", "1", "--write"),
            minutes=5),
    Section("honesty", "## Honest inference on real measurements", "regimes_honesty.py",
            args=("--jobs", "2", "--write"), quick=("--quick", "--jobs", "2", "--write"), minutes=15),
    Section("compare", "## compare on real noise", "compare_null.py", args=("--seeds", "25", "--write"),
            quick=("--seeds", "1", "--write"), minutes=10),
    Section("calibration", "## Simulator noise calibrated to the real corpus", "calibrate_sim.py",
            not_here="its --write also rewrites collector/shared/sim_calibration.json, the simulator's noise presets that "
                     "tests and the accuracy section use: run `python benchmarks/calibrate_sim.py --write` on its "
                     "own and review that change"),
    Section("accuracy", "## Regime detection accuracy", "regimes_accuracy.py",
            args=("--noise", "cuda", "--seeds", "6", "--null", "100", "--methods", "pelt", "binseg", "--write"),
            quick=("--noise", "cuda", "--seeds", "1", "--null", "4", "--methods", "pelt", "--write"), minutes=3),
    Section("speed", "## Analysis speed", "regimes_speed.py",
            args=("--max-cells", "100000", "--repeat", "3", "--write"),
            quick=("--max-cells", "10000", "--repeat", "1", "--write"), minutes=5),
    Section("cache_impl", "## Static vs dynamic KV cache, sdpa vs eager attention (per-step growth)",
            "cache_impl_slope.py",
            not_here="needs the CUDA sweep it analyses (gpt2-medium, one GPU); `python benchmarks/cache_impl_slope.py "
                     "benchmarks/results/cuda-cache-impl-attn-gpt2-medium.nc` re-derives its table from the stored file"),
    Section("report", "## Report speed", "report_speed.py", args=("--write",), minutes=2),
    Section("reliability", "## Reliability guards: timings", "reliability_timing.py", args=("--kills", "5", "--write"),
            minutes=1),
    Section("http", "## HTTP engine vs the in-process loop (CPU)", "http_overhead.py",
            args=("--rounds", "6", "--trials", "3", "--write"), quick=("--rounds", "1", "--trials", "1", "--write"),
            minutes=2),
    Section("diagnose", "## collector diagnose: runs against the study's protocol", "diagnose_runs.py",
            args=("--cpu", "--write"), quick=("--write",), minutes=3),
    Section("diagnose_gpu", "## collector diagnose and doctor on a GPU", "diagnose_gpu.sh",
            not_here="needs a CUDA GPU (`DEADLINE=540 MAX_MINUTES=6 bash benchmarks/diagnose_gpu.sh OUTDIR cuda gpt2`); "
                     "what it wrote on an H100 is in benchmarks/results/diagnose-gpu/"),
    Section("cluster", "## A sweep on dask workers (one GPU)", "corpus/cluster_gpu.sh",
            not_here="needs a CUDA GPU and dask.distributed there (`bash benchmarks/corpus/cluster_gpu.sh OUTDIR cuda`); "
                     "the four sweeps it wrote are in benchmarks/results/cluster-h100/"),
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        import psutil
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        except (ValueError, OSError, AttributeError):
            return None
    return psutil.virtual_memory().total / 2**30


def _cores() -> str:
    logical = os.cpu_count() or 0
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return f"{physical} cores / {logical} logical CPUs" if physical else f"{logical} logical CPUs"


def _versions() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {_md.version(name)}")
        except _md.PackageNotFoundError:
            continue
    return ", ".join(out)


def machine_header(argv: Sequence[str], rerun: Sequence[tuple[Section, float, bool]],
                   now: _dt.datetime | None = None) -> str:
    """The body of the ``## Last regenerated`` section: command, date, machine, versions, what was rerun.

    ``rerun`` holds ``(section, seconds, quick)`` for each section this run produced.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    mem = _memory_gib()
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        load = "unknown"
    lines = [
        f"`python -m benchmarks{(' ' + shlex.join(argv)) if argv else ''}` on {now:%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Machine: {_cpu_model()}, {_cores()}, "
        f"{f'{mem:.1f} GiB memory' if mem is not None else 'memory unknown'}; {platform.platform()}; "
        f"1-minute load average {load} at the start.",
        f"- Python {platform.python_version()}; {_versions()}.",
    ]
    if rerun:
        lines.append("- Rerun here: " + "; ".join(
            f"{s.heading[3:]} ({'quick, reduced sizes' if q else 'full'}; {sec:.0f} s)" for s, sec, q in rerun) + ".")
    else:
        lines.append("- Rerun here: nothing (every section keeps its recorded results).")
    kept = [s for s in SECTIONS if s not in {r[0] for r in rerun}]
    if kept:
        lines.append("- Recorded results kept (each states its own command and machine): "
                     + "; ".join(s.heading[3:] + (f" (not rerun here: {s.not_here})" if s.not_here else "")
                                 for s in kept) + ".")
    return "\n".join(lines)


def _listing(quick: bool) -> str:
    rows = []
    for s in SECTIONS:
        if s.not_here:
            rows.append(f"{s.key:<16} not rerun here: {s.not_here}")
        else:
            size = "quick" if quick and s.quick is not None else "full"
            cmd = shlex.join(["python", f"benchmarks/{s.script}", *(s.quick if size == 'quick' else s.args)])
            rows.append(f"{s.key:<16} rerun ({size}, recorded run about {s.minutes:g} min): {cmd}")
    return "\n".join(rows)


def _ensure_header(path: Path) -> None:
    """Give ``path`` a ``## Last regenerated`` section (before the first section) if it has none."""
    text = path.read_text()
    if any(line.rstrip("\n") == HEADER for line in text.splitlines()):
        return
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    path.write_text("".join(lines[:first] + [HEADER + "\n", "\n"] + lines[first:]))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2: bad arguments, 1: a section's script failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__[__doc__.index("Usage::"):])
    p.add_argument("--list", action="store_true", help="list the sections and what would be rerun, then exit")
    p.add_argument("--only", nargs="+", metavar="KEY", choices=[s.key for s in SECTIONS],
                   help="rerun only these sections (keys from --list)")
    p.add_argument("--quick", action="store_true", help="reduced sizes (needs --output: never over the recorded doc)")
    p.add_argument("--output", type=Path, help=f"write into this copy of the doc instead of {PERFORMANCE_MD.name}")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing, write nothing")
    args = p.parse_args(argv)
    if args.list:
        print(_listing(args.quick))
        return 0
    chosen = [s for s in SECTIONS if args.only is None or s.key in args.only]
    skipped = [s for s in chosen if s.not_here]
    runnable = [s for s in chosen if not s.not_here]
    if args.only and skipped:
        print(f"error: {', '.join(repr(s.key) for s in skipped)} cannot be rerun here: {skipped[0].not_here}",
              file=sys.stderr)
        return 2
    if args.quick and args.output is None:
        print("error: --quick writes reduced-size numbers; give --output PATH (a copy of docs/performance.md is "
              "made there) so the recorded results stay", file=sys.stderr)
        return 2
    out = (args.output or PERFORMANCE_MD).resolve()
    if args.dry_run:
        for s in runnable:
            print(shlex.join(s.command(args.quick)))
        print(f"then: {HEADER!r} section written into {str(out)!r}")
        return 0
    if out != PERFORMANCE_MD.resolve():
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PERFORMANCE_MD, out)
    _ensure_header(out)
    env = dict(os.environ, **{DOC_ENV: str(out)})
    done: list[tuple[Section, float, bool]] = []
    for s in runnable:
        quick = args.quick and s.quick is not None
        if args.quick and s.quick is None:
            print(f"== {s.key}: no quick form, skipped", flush=True)
            continue
        print(f"== {s.key}: {shlex.join(s.command(quick))}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(s.command(quick), env=env, cwd=HERE.parent)
        if rc != 0:
            print(f"error: section {s.key!r} failed (exit {rc}); sections rerun before it are in {str(out)!r}",
                  file=sys.stderr)
            replace_section(out, HEADER, machine_header(argv, done))
            return 1
        done.append((s, time.perf_counter() - t0, quick))
    replace_section(out, HEADER, machine_header(argv, done))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
