"""The ``doctor`` command of ``python -m collector``: its flags, the table on the terminal, the JSON file.

:func:`add_parser` declares the subcommand on the collector's parser;
:func:`run` checks the flags (a bad device, run count or JSON path is one
``error:`` line and exit status 2, raised as a collector error before any
probe runs), runs :func:`collector.doctor.doctor` and prints its table:
rich when the output is a terminal, plain text otherwise (``--plain`` forces it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from collector.doctor.report import Check, Report
from collector.shared.safetext import for_rich, visible

__all__ = ["add_parser", "render_plain", "render_rich", "run"]

_STATUS_STYLE = {"ok": "green", "warn": "bold yellow", "info": "cyan", "unavailable": "dim"}
_STATUS_WORD = {"ok": "ok", "warn": "WARN", "info": "info", "unavailable": "n/a"}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``doctor`` to the subparsers ``sub`` of ``python -m collector``."""
    p = sub.add_parser("doctor", help="check the instrument on this machine (timer, sync, memory calls, load, "
                       "noise) and say what to fix",
                       description="Self-check of the instrument on this machine: timer resolution, device sync "
                       "(events vs host clock, step sums vs total), memory calls, background load, CPU governor, "
                       "power/thermal state, and the noise of a short probe with the smallest regime a default "
                       "sweep could detect at that noise. Exit status 0 also with warnings.")
    p.add_argument("--device", help="cpu, cuda or mps (default: the device a quick sweep would use)")
    p.add_argument("--runs", default="20", metavar="N", help="runs of the noise probe (3..1000; default 20)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON (attach it to a bug report)")
    p.add_argument("--plain", action="store_true", help="plain text table, no colours")
    return p


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=max(width, 30), initial_indent=indent, subsequent_indent=indent) or [indent]


def render_plain(report: Report, out: TextIO, width: int = 100) -> None:
    """The report as plain text lines (one block per check, warnings with their fix, the verdict)."""
    out.write(f"collector doctor on {report.device}: {visible(report.machine.get('platform', ''))}\n")
    for c in report.checks:
        out.write(f"[{_STATUS_WORD[c.status]:>4}] {c.group}/{c.name}\n")
        for line in _wrap(visible(c.summary), width, "       "):
            out.write(line + "\n")
        if c.fix:
            for line in _wrap("fix: " + visible(c.fix), width, "       "):
                out.write(line + "\n")
    out.write(f"verdict: {report.summary()}\n")


def render_rich(report: Report) -> None:
    """The report as a rich table on the terminal, then the warnings with their fixes and the verdict."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"collector doctor on {for_rich(report.device)}", show_lines=False)
    t.add_column("check", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("result")
    for c in report.checks:
        style = _STATUS_STYLE[c.status]
        t.add_row(f"{c.group}/{c.name}", f"[{style}]{_STATUS_WORD[c.status]}[/]", for_rich(c.summary))
    con.print(t)
    for c in report.warnings:
        con.print(f"[bold yellow]warning[/] {c.name}: {for_rich(c.fix)}")
    style = "green" if report.verdict == "ok" else "bold yellow"
    con.print(f"verdict: [{style}]{for_rich(report.summary())}[/]")


def run(args: argparse.Namespace) -> int:
    """Run the doctor for parsed ``args``; 0 whatever the verdict (errors raise a collector error)."""
    from collector.doctor import _check_runs, doctor
    from collector.doctor.report import check_json_path, write_json
    from collector.measuring.devices import get_backend

    runs = _check_runs(args.runs)
    if args.json:
        check_json_path(args.json)
    if args.device is not None:
        get_backend(args.device)  # DeviceUnavailableError now, before the host probes
    plain = args.plain or not sys.stdout.isatty()
    progress = None if plain else _progress()
    try:
        report = doctor(args.device, runs=runs, on_check=progress.update if progress else None)
    finally:
        if progress is not None:
            progress.stop()
    if plain:
        render_plain(report, sys.stdout)
    else:
        render_rich(report)
    if args.json:
        path = write_json(report, args.json)
        print(f"wrote {visible(path)}")
    return 0


class _progress:
    """A one-line status on stderr while the probes run (rich)."""

    def __init__(self) -> None:
        from rich.console import Console

        self._status = Console(stderr=True).status("doctor: host probes")
        self._status.start()

    def update(self, check: Check) -> None:
        self._status.update(f"doctor: {check.group}/{check.name} done...")

    def stop(self) -> None:
        self._status.stop()
