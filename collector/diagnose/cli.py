"""The ``diagnose`` command of ``python -m collector``: run the follow-up sweeps of each regime, or show the plan.

``diagnose RUN.nc`` plans, runs and judges (:func:`collector.diagnose.diagnosis.diagnose`): progress on
stderr, then one verdict table per regime and the summary; ``-o`` names the dataset it writes (default
``runs/<name>-diagnosis.nc``), whose journals (``.journals/`` beside it) let the same command continue a
stopped diagnosis; ``--force`` starts over. ``--plan`` only shows the plan. A file that cannot be read, a bad
``--max-minutes``, ``--trials`` or ``--questions`` is one line and exit 2, before the analysis runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.diagnose.plan import QUESTIONS, Plan
from collector.shared.errors import CollectorError, ConfigError
from collector.shared.safetext import for_rich, visible

if TYPE_CHECKING:
    from collector.diagnose.diagnosis import Diagnosis

__all__ = ["add_parser", "render", "render_diagnosis", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``diagnose`` to the subparsers ``sub`` of ``python -m collector``."""
    p = sub.add_parser("diagnose", help="run the follow-up sweeps that say what moves each regime of a dataset "
                       "(--plan: only show them)",
                       description="For each regime analysis.regimes finds in RUN.nc: the smallest follow-up "
                       "sweeps (boundary refinement to 1 token, prompt length, fresh processes, cache_impl, attn, "
                       "dtype, engine, warm-up), run within --max-minutes with as many trials per cell as its "
                       "side of the boundary needs (a sequential test per cell), then a verdict per regime and "
                       "factor: moved (by how much), vanished, stayed or not tested (why). Everything measured "
                       "goes to one dataset (-o); running the same command again continues a stopped diagnosis.")
    p.add_argument("dataset", metavar="RUN.nc", help="a dataset file or a published dataset's name")
    p.add_argument("--plan", action="store_true", help="only show the plan (sweeps, runs, estimated minutes)")
    p.add_argument("--max-minutes", metavar="M", help="minutes the diagnosis may take: the plan admits questions "
                   "within this estimate and the runs stop when it has passed (default: no limit)")
    p.add_argument("--trials", metavar="N", help="trials per cell before its sequential test may decide (default "
                   "2; with --plan: the file's, at least 3)")
    p.add_argument("--max-trials", metavar="N", help="most trials per cell (default 6)")
    p.add_argument("--questions", metavar="Q", nargs="+", help="ask only these questions (refine always runs); "
                   "choices: " + ", ".join(QUESTIONS))
    p.add_argument("-o", "--output", metavar="OUT.nc", help="the dataset to write (default "
                   "runs/<name>-diagnosis.nc); its journals go to OUT.journals/")
    p.add_argument("--force", action="store_true", help="start over: remove the output and its journals first")
    p.add_argument("--json", action="store_true", help="print the plan or the diagnosis as JSON")
    return p


def _positive(text: str | None, name: str, integer: bool = False) -> Any:
    if text is None:
        return None
    try:
        value: float = int(text, 10) if integer else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        kind = "an integer >= 1" if integer else "a positive number of minutes"
        raise ConfigError(f"{name} must be {kind}, got {text!r}")
    return value


def render(plan: Plan, source: str) -> None:
    """The plan on the terminal (rich): one table per regime, then the commands planned and the summary."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not plan.regimes:
        con.print(for_rich(plan.summary()))
        return
    for i, r in enumerate(plan.regimes, 1):
        t = Table(title=f"regime {i}: {for_rich(r.label)}", title_justify="left")
        for c in ("question", "status", "runs", "minutes", "asks / why"):
            t.add_column(c, justify="right" if c in ("runs", "minutes") else "left")
        for q in r.questions:
            style = {"planned": "green", "left out": "yellow"}.get(q.status, "dim")
            t.add_row(q.name, f"[{style}]{q.status}[/]", str(q.runs) if q.runs else "-",
                      f"{q.minutes:.1f}" if q.minutes else "-", for_rich(q.why or q.asks))
        con.print(t)
    con.print("[bold]planned sweeps[/] (run each; then analyse them with the file):")
    for r in plan.regimes:
        for q in r.questions:
            if q.status == "planned":
                con.print(f"  # {for_rich(q.name)}: {for_rich(q.asks)}\n  {for_rich(q.command)}", soft_wrap=True)
    for line in plan.scope:
        con.print(for_rich(line))
    for note in plan.notes:
        con.print(f"[dim]estimate: {for_rich(note)}[/]")
    con.print(f"{for_rich(source)}: {for_rich(plan.summary())}")


def _output(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    return Path("runs") / f"{Path(str(args.dataset)).stem}-diagnosis.nc"


def _prepare(out: Path, force: bool) -> None:
    """Check (or with ``force`` clear) the output and its journals before anything runs."""
    import shutil

    from collector.dataset.storage import check_output
    from collector.sweep.journal import remove_journal

    check_output(str(out))
    folder = out.with_suffix(".journals")
    if force:
        if folder.is_dir():
            for j in folder.glob("*.journal"):
                remove_journal(j)  # refuses while a diagnosis that owns it lives
            shutil.rmtree(folder, ignore_errors=True)
        out.unlink(missing_ok=True)
    elif out.exists() and not folder.is_dir():
        raise CollectorError(f"output {str(out)!r} already exists; pass --force to replace it, or choose another -o")


def render_diagnosis(diagnosis: Diagnosis) -> None:
    """The verdict tables (one per regime) and the summary on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not diagnosis.targets:
        con.print(for_rich(diagnosis.plan.summary()))
        return
    for t in diagnosis.targets:
        table = Table(title=for_rich(t.label), title_justify="left")
        for c in ("factor", "verdict", "by how much", "runs", "what was seen / why"):
            table.add_column(c, justify="right" if c == "runs" else "left")
        for v in diagnosis.verdicts:
            if v.regime != t.number:
                continue
            style = {"moved": "bold red", "vanished": "bold yellow", "stayed": "green"}.get(v.verdict, "dim")
            amount = "-"
            if v.unit == "x" and math.isfinite(v.estimate):
                amount = f"x{v.estimate:.2f} [{v.lo:.2f}, {v.hi:.2f}]"
            elif v.unit == "tokens" and math.isfinite(v.estimate):
                amount = f"{v.estimate:+.0f} tokens [{v.lo:+.0f}, {v.hi:+.0f}]"
            table.add_row(v.factor, f"[{style}]{v.verdict}[/]", amount, str(v.runs), for_rich(v.detail))
        con.print(table)
    if diagnosis.output is not None:
        con.print(f"written to {for_rich(str(diagnosis.output))} (dim 'question': which question each run served)")
    for line in diagnosis.summary().splitlines():
        con.print(for_rich(line))


def run(args: argparse.Namespace) -> int:
    """Run ``diagnose`` for parsed ``args`` (0; errors raise a collector error)."""
    max_minutes = _positive(args.max_minutes, "--max-minutes")
    trials = _positive(args.trials, "--trials", integer=True)
    max_trials = _positive(args.max_trials, "--max-trials", integer=True)
    unknown = [q for q in args.questions or () if q not in QUESTIONS]
    if unknown:
        raise ConfigError(f"--questions: unknown question {unknown[0]!r}; choices: {', '.join(QUESTIONS)}")
    if not args.plan:
        from collector.diagnose.execute import Settings

        settings = Settings(min_trials=trials or 2, max_trials=max(max_trials or 6, trials or 2),
                            on_event=lambda line: print(f"diagnose: {visible(line)}", file=sys.stderr))
        out = _output(args)
        _prepare(out, args.force)
    import analysis
    from analysis.errors import AnalysisError
    from collector.diagnose.plan import make_plan

    try:
        ds = analysis.open_dataset(args.dataset)
        if args.plan:
            plan = make_plan(ds, max_minutes=max_minutes, trials=trials)
        else:
            from collector.diagnose.diagnosis import diagnose

            with _Stop() as stop:
                settings = dataclasses.replace(settings, should_stop=lambda: stop.requested)
                result = diagnose(ds, source=str(args.dataset), output=out, max_minutes=max_minutes,
                                  questions=args.questions, settings=settings,
                                  command="python -m collector " + shlex.join(sys.argv[1:]))
    except AnalysisError as exc:
        raise CollectorError(f"cannot diagnose {args.dataset!r}: {exc}") from None
    if args.plan:
        if args.json:
            print(json.dumps({"dataset": visible(args.dataset), **plan.to_dict()}, indent=2, default=str))
        else:
            render(plan, args.dataset)
        return 0
    if args.json:
        print(json.dumps({"dataset": visible(args.dataset), **result.to_dict()}, indent=2, default=str))
    else:
        render_diagnosis(result)
    return 130 if result.stopped and stop.requested else 0


class _Stop:
    """Ctrl-C / SIGTERM ask the diagnosis to stop after the run in flight (journals kept); a second one raises."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> "_Stop":
        import signal

        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        import signal

        for s, h in self._old.items():
            signal.signal(s, h)
