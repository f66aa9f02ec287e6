"""The regimes result on a terminal (a table of segments, a table of what each series could have shown, the
summary) and as JSON (per series: its flags and power, then its segments): ``python -m analysis regimes``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["print_regimes", "to_json"]


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
    from analysis.core.measured import measured_anomalous

    sdims = [d for d in result["anomalous"].dims if d != "budget"]
    fields = SEGMENT_REPORTED
    series: dict[tuple[int, ...], dict[str, Any]] = {}
    anomalous = measured_anomalous(result)  # none at a budget the series never ran
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
                                                                 anomalous.isel(sel).values) if a],
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


def print_regimes(result: Any, args: argparse.Namespace) -> None:
    """The anomalous segments (every segment with ``--all``), what each series could have shown, the summary."""
    from rich.console import Console
    from rich.table import Table

    from analysis._regimes_summary import iter_segments, series_label
    from analysis._regimes_vars import SEGMENT_SUMMARY
    from analysis.cli.render import escape as _escape
    from collector.safetext import visible

    def num(x: float, fmt: str = "g") -> str:
        return "" if not math.isfinite(x) else format(x, fmt)

    def interval(lo: float, hi: float) -> str:
        return f"[{num(lo)}, {num(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else ""

    show_all = bool(args.all)
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


def _mde(x: float) -> str:
    """A smallest detectable effect: ``x2.71``; why there is none (too few budgets; budget and time confounded)."""
    from analysis.core.labels import na

    if math.isnan(x):
        return na("too few budgets")
    if math.isinf(x):
        return na("time-confounded")
    return f"x{x:.2f}"


def _print_power(console: Any, result: Any, num: Callable[..., str]) -> None:
    """Per series: its noise and the smallest regime it could have shown."""
    import numpy as np
    from rich.table import Table

    from analysis._regimes_summary import series_label
    from analysis.cli.render import escape as _escape
    from analysis.core.labels import na

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
                      f"[bold yellow]{num(v['noise'], '.3f')}[/]" if noisy else num(v["noise"], ".3f") or na(),
                      num(v["scatter"], ".3f") or na(), _mde(v["mde"]), _mde(v["mde_4"]),
                      num(v["p_series"], ".2g") or na(), num(v["q_series"], ".2g") or na())
    console.print(table)
    console.print("[dim]legend: noise: per-run sd of log latency (yellow: above 0.1); scatter: budget-to-budget sd "
                  "around a smooth curve; detectable: the smallest slowdown over one (four) budgets found with 80% "
                  "power at alpha (n/a: none, with the reason); p (any step): scan p-value of the strongest interval of "
                  "the series; q (series): "
                  "the series' strongest evidence corrected across the series (Benjamini-Hochberg): a series holds a "
                  "regime only where it is below alpha[/dim]")
