"""The ``diagnose`` command of ``python -m collector``: ``diagnose RUN.nc --plan`` shows the follow-up sweeps.

Only the plan exists so far (issue 22): without ``--plan`` the command says so
(one ``error:`` line, exit status 2). A file that cannot be read, a bad
``--max-minutes`` or ``--trials`` is one line and exit 2 too, before the
analysis runs.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from collector.diagnose.plan import Plan
from collector.errors import CollectorError, ConfigError
from collector.safetext import for_rich, visible

__all__ = ["add_parser", "render", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``diagnose`` to the subparsers ``sub`` of ``python -m collector``."""
    p = sub.add_parser("diagnose", help="plan the follow-up sweeps that say what moves each regime of a dataset "
                       "(--plan: shown, not run)",
                       description="For each regime analysis.regimes finds in RUN.nc: the smallest follow-up "
                       "sweeps (boundary refinement, prompt length, fresh processes, cache_impl, attn, dtype, "
                       "engine, warm-up), each a 'collector run' command with its runs and estimated minutes "
                       "from the file's own run times, within --max-minutes. Only the plan is implemented.")
    p.add_argument("dataset", metavar="RUN.nc", help="a dataset file or a published dataset's name")
    p.add_argument("--plan", action="store_true", help="show the plan (required: running it is not implemented)")
    p.add_argument("--max-minutes", metavar="M", help="estimated minutes the planned sweeps may take (default: "
                   "no limit)")
    p.add_argument("--trials", metavar="N", help="trials per cell in every sweep (default: the file's, at least 3)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
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
    for note in plan.notes:
        con.print(f"[dim]estimate: {for_rich(note)}[/]")
    con.print(f"{for_rich(source)}: {for_rich(plan.summary())}")


def run(args: argparse.Namespace) -> int:
    """Run ``diagnose`` for parsed ``args`` (0; errors raise a collector error)."""
    if not args.plan:
        raise CollectorError("diagnose runs nothing yet: only the plan is implemented; add --plan to see it "
                             "(issue 22)")
    max_minutes = _positive(args.max_minutes, "--max-minutes")
    trials = _positive(args.trials, "--trials", integer=True)
    import analysis
    from analysis.errors import AnalysisError
    from collector.diagnose.plan import make_plan

    try:
        ds = analysis.open_dataset(args.dataset)
        plan = make_plan(ds, max_minutes=max_minutes, trials=trials)
    except AnalysisError as exc:
        raise CollectorError(f"cannot diagnose {args.dataset!r}: {exc}") from None
    if args.json:
        print(json.dumps({"dataset": visible(args.dataset), **plan.to_dict()}, indent=2, default=str))
    else:
        render(plan, args.dataset)
    return 0
