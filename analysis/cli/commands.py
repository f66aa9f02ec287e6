"""The commands of ``python -m analysis``, in one list: :data:`COMMANDS`.

One command per analysis of :data:`analysis.registry.ANALYSES` (named like its
function, its short name an alias: ``kv_speedup`` and ``kv``), then ``compare``,
``report`` and ``datasets``. An analysis' command prints its table with a
legend line and its summary, or the result as JSON with ``--json``
(:func:`analysis.cli.render.write_json`: one envelope for every command).
Errors reach :func:`analysis.__main__.main`, which prints the package's own
errors as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from analysis.core.common import quiet
from analysis.registry import ANALYSES, REGIMES, Analysis

__all__ = ["COMMANDS", "Command"]


class Command(NamedTuple):
    """One subcommand: add its arguments, run it (returns the exit status), its help, its other names."""

    add: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    help: str
    aliases: tuple[str, ...] = ()


def _paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN.nc", help="dataset files or glob patterns (several are combined)")


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def _open(args: argparse.Namespace) -> Any:
    from analysis.io import open_dataset

    return open_dataset(args.paths)


def _show(result: Any, tables: list[Any], args: argparse.Namespace) -> int:
    from analysis.cli import render as r

    if args.json:
        r.write_json(args.command, result)
        return 0
    out = r.console()
    for t in tables:
        r.render(t, out)
        out.print()
    r.print_summary(result.attrs.get("summary", ""), out)
    return 0


# ----------------------------------------------------------------------------- the analyses (from the registry)
def _add_analysis(entry: Analysis, p: argparse.ArgumentParser) -> None:
    _paths(p)
    for opt in entry.options:
        opt.add(p)
    _json_flag(p)


def _run_analysis(entry: Analysis, args: argparse.Namespace) -> int:
    from analysis.cli import render as r

    ds = _open(args)
    with quiet():
        result = entry.function(ds, **{o.dest: getattr(args, o.dest) for o in entry.options if o.call})
    if args.json:
        r.write_json(entry.name, entry.json(result) if entry.json is not None else result)
        return 0
    if entry.name == REGIMES:  # the findings in one sentence each, then the details
        from analysis.report.headline import headline_of

        out = r.console()
        with quiet():
            for sentence in headline_of(ds, result):
                r.print_summary(sentence, out)
        out.print()
    if entry.cli_print is not None:
        entry.cli_print(result, args)
        return 0
    if entry.table is None:
        raise TypeError(f"analysis {entry.name!r} has neither a table nor cli_print")
    table = entry.table(result, show_all=args.all) if entry.show_all else entry.table(result)
    return _show(result, [table], args)


def _analysis_command(entry: Analysis) -> Command:
    return Command(partial(_add_analysis, entry), partial(_run_analysis, entry), entry.help, entry.aliases)


# ----------------------------------------------------------------------------- compare and report
def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A.nc", help="the reference dataset (before, or machine A)")
    p.add_argument("b", metavar="B.nc", help="the dataset compared with it (after, or machine B)")
    p.add_argument("--var", default="latency", help="variable compared (default: latency)")
    p.add_argument("--plot", metavar="FILE", default=None, help="also save the compare figure (.png, .svg, .pdf)")
    p.add_argument("--fail-on", choices=("slower", "changed"), default=None,
                   help="exit with status 1 when a series is significantly slower (slower), or changed either way or "
                        "a regime appeared, vanished or moved (changed); default: exit 0 whatever the result")
    p.add_argument("--sweep-sd", type=float, default=0.0, metavar="SD",
                   help="sd of a series' log level between repeated sweeps of one host, where known; widens the "
                        "intervals and tests (default: 0, not counted)")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default: 0.05)")
    _json_flag(p)


_COMPARE_LEGENDS = {
    0: ("A -> B: each file's typical value over the budgets of B/A (geometric mean of its cells) +- its per-run "
        "spread (left out with one run a cell), and B/A as slower or faster, pyperf style; "
        "B/A: geometric mean of the cell ratios (geometric mean of B over geometric mean of A) over the shared "
        "budgets elsewhere (outside the regimes found in both files and the local changes whose test is "
        "significant), with its 95% CI (noise: the scatter of the ratios over the budgets and the "
        "shifts a file's trials share); q: its t-test corrected across series and their scans (Benjamini-Hochberg); "
        "budgets: shared budgets used; regime changes: appeared, vanished or moved (confirmed by a test of B - A "
        "on their budgets) or unconfirmed (found in one file only, B - A not significant there); changed: q below "
        "alpha or a confirmed change"),
    1: ("change: appeared (only in B), vanished (only in A), moved (B - A differs where only one of them lies), "
        "each confirmed by a test of B - A on its budgets; unconfirmed: found in one file only but B - A does not "
        "differ there; persists; in A / in B: budgets of the regime, its effect (latency / expected) and the 95% "
        "intervals of its start and end"),
}


def _run_compare(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from analysis.compare import compare, fails
    from analysis.io import open_dataset
    from analysis.tables import results as T
    from collector.dataset.storage import check_output

    if args.plot:
        check_output(args.plot, "figure")  # a file name in a writable folder, before the work
    with quiet():
        res = compare(open_dataset(args.a), open_dataset(args.b), args.var, alpha=args.alpha,
                      labels=(Path(args.a).name, Path(args.b).name), sweep_sd=args.sweep_sd)
    if args.plot:
        from analysis.plot import compare as plot_compare

        plot_compare(res).savefig(args.plot)
    tables = [T.compare_series(res, only_changed=False), T.compare_changes(res)]
    tables = [replace(t, legend=_COMPARE_LEGENDS[k]) for k, t in enumerate(tables)]
    status = _show(res, tables, args)
    if res.attrs.get("warning"):  # also on stderr, where CI logs and --json users see it
        import sys

        from collector.shared.safetext import visible

        print(f"warning: {visible(res.attrs['warning'].removeprefix('Warning: '))}", file=sys.stderr)
    if args.fail_on and fails(res, args.fail_on):
        return 1
    return status


def _add_report(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("-o", "--output", default="report", help="output folder (default: report)")
    p.add_argument("--max-panels", type=int, default=12, help="most series per figure (default: 12)")
    p.add_argument("--workers", type=int, default=None, help="processes working side by side (default: the CPUs, "
                   "at most 4)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--force", action="store_true", help="replace the report already in the output folder")


#: What a report writes into its folder (an existing one is replaced only with --force).
_REPORT_FILES = ("index.html", "summary.md", "figures")


def _run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.cli import render as r
    from analysis.report import report
    from analysis.report.progress import progress_for
    from collector.dataset.storage import check_output
    from collector.shared.errors import OutputError

    out_dir = Path(args.output)
    check_output(out_dir / "index.html", "report")  # a folder that takes files, before the work
    existing = [name for name in _REPORT_FILES if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if existing and not args.force:
        raise OutputError(f"output folder {str(out_dir)!r} already holds a report ({', '.join(existing)}); pass "
                             "--force to replace it, or choose another -o")
    ds = _open(args)
    with progress_for(ds, quiet=args.quiet) as progress:
        files = report(ds, args.output, max_panels=args.max_panels, progress=progress,
                       sources=[str(p) for p in args.paths], workers=args.workers)
    out = r.console()
    for sentence in files.headline:
        r.print_summary(sentence, out)
    out.print(f"wrote {r.escape(files.html)} ({len(files.figures)} figures, summary {r.escape(files.markdown)})")
    return 0


# ----------------------------------------------------------------------------- datasets
def _add_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", action="store_true", help="print each dataset's file instead of its description")


def _run_datasets(args: argparse.Namespace) -> int:
    import sys

    from analysis import published
    from collector.shared.safetext import visible

    found = published.available()
    if not found:
        folders = ", ".join(str(f) for f in published.search_path()) or "none"
        print(visible(f"no published dataset found (folders searched: {folders}; add one with ${published.ENV_VAR})"))
        return 0
    if args.paths:
        for k, v in found.items():
            print(visible(f"{k}  {v}"))
        return 0
    entries = published.listing()
    width = max(len(k) for k, _, _ in entries)
    for k, text, _ in entries:
        print(visible(f"{k:<{width}}  {text}"))  # datasheets are files too
    bad = [k for k, _, readable in entries if not readable]
    if bad:  # the others are listed; the unreadable ones are named once more on stderr, and the status says so
        print(visible(f"error: {len(bad)} of {len(entries)} published dataset(s) cannot be read: {', '.join(bad)} "
                      "(their lines above say why)"), file=sys.stderr)
        return 2
    return 0


#: Every subcommand of ``python -m analysis``: name -> :class:`Command`.
COMMANDS: dict[str, Command] = {
    **{a.name: _analysis_command(a) for a in ANALYSES},
    "compare": Command(_add_compare, _run_compare, "did it change? B against A on the cells both measured"),
    "report": Command(_add_report, _run_report, "an HTML report with figures and a markdown summary"),
    "datasets": Command(_add_datasets, _run_datasets, "list the published datasets (open one by name: "
                        "analysis.open_dataset(NAME))"),
}
