"""The analyses on the command line: ``kv``, ``phases``, ``memory``, ``monotonicity``, ``steps``,
``boundaries``, ``backends``, ``compare`` and ``report`` (registered in ``python -m analysis``).

Each prints a table with a legend line and the analysis' summary, or the
whole result as JSON with ``--json``. Errors reach ``analysis.__main__.main``,
which prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["COMMANDS"]

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]


def _paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN.nc", help="dataset files or glob patterns (several are combined)")


def _common(p: argparse.ArgumentParser, *, alpha: bool = True, show_all: bool = False) -> None:
    if alpha:
        p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default: 0.05)")
    if show_all:
        p.add_argument("--all", action="store_true", help="also list the series with nothing to report")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def _open(args: argparse.Namespace) -> Any:
    from analysis.io import open_dataset

    return open_dataset(args.paths)


def _show(result: Any, tables: list[Any], args: argparse.Namespace) -> int:
    from analysis import _cli_render as r

    if args.json:
        r.print_json(result)
        return 0
    out = r.console()
    for t in tables:
        r.render(t, out)
        out.print()
    r.print_summary(result.attrs.get("summary", ""), out)
    return 0


def _quiet(fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# ----------------------------------------------------------------------------- the analyses
def _add_kv(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the CI (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    _common(p)


def _run_kv(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.kv import kv_speedup

    res = _quiet(kv_speedup, _open(args), n_boot=args.n_boot, seed=args.seed, alpha=args.alpha)
    return _show(res, [T.kv(res)], args)


def _add_phases(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("--degree", type=int, default=2, help="degree of each phase's budget polynomial (default: 2)")
    _common(p)


def _run_phases(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.phases import phases

    res = _quiet(phases, _open(args), degree=args.degree, alpha=args.alpha)
    return _show(res, [T.phases(res)], args)


def _add_memory(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("--covariates", default=None, help="comma-separated memory variables (default: all present)")
    p.add_argument("--min-jump", type=float, default=0.02, help="smallest relative memory change that counts (0.02)")
    _common(p, show_all=True)


def _run_memory(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.memory import memory_effect

    cov = [c.strip() for c in args.covariates.split(",") if c.strip()] if args.covariates else None
    res = _quiet(memory_effect, _open(args), covariates=cov, alpha=args.alpha, min_jump=args.min_jump)
    return _show(res, [T.memory(res, show_all=args.all)], args)


def _add_monotonicity(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("--var", default="latency", help="variable to check (default: latency)")
    p.add_argument("--min-effect", type=float, default=0.0, help="smallest inversion that counts (default: 0)")
    _common(p, show_all=True)


def _run_monotonicity(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.monotonicity import monotonicity

    res = _quiet(monotonicity, _open(args), args.var, alpha=args.alpha, min_effect=args.min_effect)
    return _show(res, [T.monotonicity(res, show_all=args.all)], args)


def _add_steps(p: argparse.ArgumentParser) -> None:
    _paths(p)
    p.add_argument("--max-modes", type=int, default=4, help="most execution modes tried (default: 4)")
    p.add_argument("--min-effect", type=float, default=0.2, help="smallest difference between modes (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mixture fit (default: 0)")
    _common(p, alpha=False, show_all=True)


def _run_steps(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.steps import step_regimes

    res = _quiet(step_regimes, _open(args), max_modes=args.max_modes, min_effect=args.min_effect, seed=args.seed)
    return _show(res, [T.steps(res, show_all=args.all)], args)


def _add_boundaries(p: argparse.ArgumentParser) -> None:
    _paths(p)
    _common(p)


def _run_boundaries(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.boundaries import boundaries

    res = _quiet(boundaries, _open(args), alpha=args.alpha)
    return _show(res, [T.boundaries(res)], args)


def _add_backends(p: argparse.ArgumentParser) -> None:
    _paths(p)
    _common(p)


def _run_backends(args: argparse.Namespace) -> int:
    from analysis import _tables_more as T
    from analysis.backends import compare_backends

    res = _quiet(compare_backends, _open(args), alpha=args.alpha)
    return _show(res, [T.backends(res)], args)


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
    _common(p)


_COMPARE_LEGENDS = {
    0: ("B/A: geometric mean of the cell ratios (geometric mean of B over geometric mean of A) over the shared "
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

    from analysis import _tables as T
    from analysis.compare import compare, fails
    from analysis.io import open_dataset
    from collector.storage import check_output

    if args.plot:
        check_output(args.plot, "figure")  # a file name in a writable folder, before the work
    res = _quiet(compare, open_dataset(args.a), open_dataset(args.b), args.var, alpha=args.alpha,
                 labels=(Path(args.a).name, Path(args.b).name), sweep_sd=args.sweep_sd)
    if args.plot:
        from analysis.plot import compare as plot_compare

        plot_compare(res).savefig(args.plot)
    tables = [T.compare_series(res, only_changed=False), T.compare_changes(res)]
    tables = [replace(t, legend=_COMPARE_LEGENDS[k]) for k, t in enumerate(tables)]
    status = _show(res, tables, args)
    if res.attrs.get("warning"):  # also on stderr, where CI logs and --json users see it
        import sys

        from collector.safetext import visible

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


def _run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis import _cli_render as r
    from analysis._report_progress import progress_for
    from analysis.report import report
    from collector.storage import check_output

    check_output(Path(args.output) / "index.html", "report")  # a folder that takes files, before the work
    ds = _open(args)
    with progress_for(ds, quiet=args.quiet) as progress:
        files = report(ds, args.output, max_panels=args.max_panels, progress=progress,
                       sources=[str(p) for p in args.paths], workers=args.workers)
    out = r.console()
    out.print(f"wrote {r.escape(files.html)} ({len(files.figures)} figures, summary {r.escape(files.markdown)})")
    return 0


#: subcommand -> (add its arguments, run it, help)
COMMANDS: dict[str, Command] = {
    "kv": (_add_kv, _run_kv, "KV-cache speedup per budget and where it collapses"),
    "phases": (_add_phases, _run_phases, "which phase (prefill or decode) carries each regime's excess"),
    "memory": (_add_memory, _run_memory, "whether memory explains the regimes"),
    "monotonicity": (_add_monotonicity, _run_monotonicity, "where more tokens take less time"),
    "steps": (_add_steps, _run_steps, "execution modes of the per-step times"),
    "boundaries": (_add_boundaries, _run_boundaries, "whether onset and recovery follow budget or total length"),
    "backends": (_add_backends, _run_backends, "which devices show regimes, per model"),
    "compare": (_add_compare, _run_compare, "did it change? B against A on the cells both measured"),
    "report": (_add_report, _run_report, "an HTML report with figures and a markdown summary"),
}
