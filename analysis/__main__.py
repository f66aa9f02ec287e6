"""Command line: ``python -m analysis regimes RUN.nc [MORE.nc ...]``.

Subcommands are registered in :data:`COMMANDS` (name -> (add-arguments, run)),
so others (``report``) can be added beside ``regimes``. Every error the user
can cause (a missing or unreadable file, a file that is not schema v1, a bad
option) is printed as one line ``error: ...`` on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["COMMANDS", "build_parser", "main"]

_EXIT_ERROR = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- regimes
def _add_regimes(p: argparse.ArgumentParser) -> None:
    from analysis.baseline import SCALINGS
    from analysis.segments import METHODS, NORMAL_RULES

    p.add_argument("paths", nargs="+", metavar="RUN.nc", help="dataset files or glob patterns (several are combined)")
    p.add_argument("--var", default="latency", help="variable to analyse (default: latency)")
    p.add_argument("--method", choices=METHODS, default="pelt", help="deprecated, ignored: the scan tests every interval")
    p.add_argument("--penalty", type=float, default=None, help="deprecated, ignored")
    p.add_argument("--min-effect", type=float, default=0.2, help="smallest relative effect that counts (default: 0.2)")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate across series (default: 0.05)")
    p.add_argument("--scaling", choices=SCALINGS, default="auto", help="expected scaling with budget (default: auto)")
    p.add_argument("--normal", choices=NORMAL_RULES, default="lowest",
                   help="normal level: lowest (regimes are slowdowns, default), highest (drops) or majority (either)")
    p.add_argument("--n-boot", type=int, default=200, help="deprecated, ignored")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    p.add_argument("--all", action="store_true", help="list every segment of every series, not only anomalous ones")
    p.add_argument("--json", action="store_true", help="print the result as JSON (every series and segment)")


def _run_regimes(args: argparse.Namespace) -> int:
    from analysis.io import open_dataset
    from analysis.regimes import regimes

    ds = open_dataset(args.paths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = regimes(ds, args.var, method=args.method, penalty=args.penalty, min_effect=args.min_effect,
                         alpha=args.alpha, scaling=args.scaling, n_boot=args.n_boot, seed=args.seed, normal=args.normal)
    if args.json:
        json.dump(to_json(result), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_table(result, show_all=args.all)
    return 0


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_json(result: Any) -> dict[str, Any]:
    """The regimes result as plain JSON-able data: attrs, then per series its segments and flags."""
    from analysis._regimes_summary import iter_segments
    from analysis._regimes_vars import SEGMENT_REPORTED

    sdims = [d for d in result["anomalous"].dims if d != "budget"]
    fields = SEGMENT_REPORTED
    series: dict[tuple[int, ...], dict[str, Any]] = {}
    for index, j in iter_segments(result):
        key = tuple(index[d] for d in sdims)
        if key not in series:
            sel = dict(index)
            series[key] = {
                "series": {str(d): _clean(result[d].values[index[d]]) for d in sdims},
                "scaling": _clean(result["scaling"].isel(sel).values),
                "noise": _clean(result["noise"].isel(sel).values),
                **{k: _clean(result[k].isel(sel).values) for k in ("scatter", "cell_sd", "df", "mde", "mde_4", "p_series",
                                                                    "q_series")},
                "power": {f"{r:g}": _clean(v) for r, v in zip(result["power_ratio"].values,
                                                              result["power"].isel(sel).values)},
                "anomalous_budgets": [_clean(b) for b, a in zip(result["budget"].values,
                                                                 result["anomalous"].isel(sel).values) if a],
                "segments": [],
            }
        seg = {f: _clean(result[f].isel(dict(index, segment=j)).values) for f in fields}
        seg["anomalous"] = seg.pop("segment_anomalous")
        series[key]["segments"].append(seg)
    return {
        "attrs": {k: _clean(v) if not isinstance(v, str) else v for k, v in result.attrs.items() if k != "summary"},
        "series": list(series.values()),
        "summary": result.attrs["summary"],
    }


def _print_table(result: Any, *, show_all: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from analysis._cli_render import escape as _escape
    from analysis._regimes_summary import iter_segments, series_label
    from analysis._regimes_vars import SEGMENT_SUMMARY
    from collector.safetext import visible

    def num(x: float, fmt: str = "g") -> str:
        return "" if not math.isfinite(x) else format(x, fmt)

    def interval(lo: float, hi: float) -> str:
        return f"[{num(lo)}, {num(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else ""

    console = Console(width=None if sys.stdout.isatty() else 200)
    rows = list(iter_segments(result, only_anomalous=not show_all))
    title = f"regimes of {_escape(repr(result.attrs['var']))}"
    title += "" if show_all else " (anomalous segments; --all for every segment)"
    table = Table(title=title, title_justify="left")
    for col, just in (("series", "left"), ("budgets", "right"), ("start", "right"), ("end", "right"),
                      ("kind", "left"), ("effect [95% CI]", "right"), ("q", "right"), ("confounded", "left")):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for index, j in rows:
        g = {k: result[k].isel(dict(index, segment=j)).item() for k in SEGMENT_SUMMARY}
        budgets = num(g["start"]) if g["start"] == g["end"] else f"{num(g['start'])}-{num(g['end'])}"
        kind = g["kind"]
        style = {"slow": "bold red", "fast": "bold cyan"}.get(kind, "")
        table.add_row(
            _escape(series_label(result, index)), budgets,
            f"{num(g['start'])} {interval(g['start_lo'], g['start_hi'])}".strip(),
            f"{num(g['end'])} {interval(g['end_lo'], g['end_hi'])}".strip(),
            f"[{style}]{kind}[/]" if style else kind,
            f"x{num(g['effect'], '.2f')} {interval(round(g['effect_lo'], 2), round(g['effect_hi'], 2))}".strip(),
            num(g["q"], ".2g"),
            "yes" if g["confounded"] else "no",
        )
    if rows:
        console.print(table)
        console.print("[dim]legend: budgets: first-last budget of the segment; start, end: each boundary with its 95% "
                      "interval under trial resampling; effect: median value / expected (baseline) with its 95% CI; "
                      "q: p-value corrected for every test (Benjamini-Hochberg); confounded: budget and execution "
                      "time cannot be separated[/dim]")
    if "mde" in result:
        _print_power(console, result, num)
    console.print(visible(result.attrs["summary"], keep_newlines=True), highlight=False, markup=False, soft_wrap=True)


def _print_power(console: Any, result: Any, num: Callable[..., str]) -> None:
    """Per series: its noise and the smallest regime it could have shown."""
    import numpy as np
    from rich.table import Table

    from analysis._cli_render import escape as _escape
    from analysis._regimes_summary import series_label

    dims = [d for d in result["mde"].dims]
    table = Table(title="what could have been seen, per series", title_justify="left")
    for col in ("series", "noise", "scatter", "detectable: 1 budget", "4 budgets", "p (any step)", "q (series)"):
        table.add_column(col, justify="left" if col == "series" else "right", no_wrap=True)
    measured = np.isfinite(np.asarray(result["ratio"].transpose(*dims, ...).values, dtype=float))
    measured = measured.reshape(measured.shape[: len(dims)] + (-1,)).any(axis=-1)
    for idx in np.ndindex(*[result.sizes[d] for d in dims]):
        if not measured[idx]:  # a series no file measured (cells of a combined dataset): nothing to say
            continue
        index = dict(zip(dims, idx))
        v = {k: float(result[k].isel(index).item())
             for k in ("noise", "scatter", "mde", "mde_4", "p_series", "q_series")}
        noisy = bool(result["noisy"].isel(index).item())
        table.add_row(_escape(series_label(result, index)),
                      f"[bold yellow]{num(v['noise'], '.3f')}[/]" if noisy else num(v["noise"], ".3f"),
                      num(v["scatter"], ".3f"), f"x{num(v['mde'], '.2f')}", f"x{num(v['mde_4'], '.2f')}",
                      num(v["p_series"], ".2g"), num(v["q_series"], ".2g"))
    console.print(table)
    console.print("[dim]legend: noise: per-run sd of log latency (yellow: above 0.1); scatter: budget-to-budget sd "
                  "around a smooth curve; detectable: the smallest slowdown over one (four) budgets found with 80% "
                  "power at alpha; p (any step): scan p-value of the strongest interval of the series; q (series): "
                  "the series' strongest evidence corrected across the series (Benjamini-Hochberg): a series holds a "
                  "regime only where it is below alpha[/dim]")


# ----------------------------------------------------------------------------- datasets
def _add_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", action="store_true", help="print each dataset's file instead of its description")


def _run_datasets(args: argparse.Namespace) -> int:
    from analysis import published
    from collector.safetext import visible

    found = published.available()
    if not found:
        folders = ", ".join(str(f) for f in published.search_path()) or "none"
        print(visible(f"no published dataset found (folders searched: {folders}; add one with ${published.ENV_VAR})"))
        return 0
    for line in ([f"{k}  {v}" for k, v in found.items()] if args.paths else published.lines()):
        print(visible(line))  # datasheets are files too
    return 0


# ----------------------------------------------------------------------------- main
#: subcommand -> (add its arguments, run it)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {
    "regimes": (_add_regimes, _run_regimes, "find discrete latency regimes along the budget axis"),
    "datasets": (_add_datasets, _run_datasets, "list the published datasets (open one by name: "
                 "analysis.open_dataset(NAME))"),
}


def _more_commands() -> None:
    from analysis._cli import COMMANDS as more  # kv, phases, memory, ..., compare, report

    for name, entry in more.items():
        COMMANDS.setdefault(name, entry)


_more_commands()


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m analysis`` parser with one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(prog="python -m analysis", description="Analyse decode-regimes datasets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, (add, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on any user error, printed as one line)."""
    from analysis.errors import AnalysisError
    from collector.errors import CollectorError
    from collector.safetext import visible

    def one_line_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                         line: Any = None) -> None:  # a library's warning may quote a file's strings
        print(f"warning: {visible(message)}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        args = build_parser().parse_args(argv)
        return int(args._run(args))
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except (_UsageError, AnalysisError, CollectorError, FileNotFoundError, OSError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {visible(msg)}", file=sys.stderr)  # names from files: no control characters
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
