"""The regimes result on a terminal (a table of segments, a table of what each series could have shown, the
summary) and as JSON (per series: its flags and power, then its segments): ``python -m analysis regimes``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["print_regimes", "to_json"]


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _factors(result: xr.Dataset, sdims: Sequence[Any], index: Mapping[Any, int]) -> dict[str, Any]:
    """``{dim: value}`` of one series; a dim of stacked series (several files) by its levels."""
    import pandas as pd

    out: dict[str, Any] = {}
    for d in sdims:
        stacked = result.indexes.get(d)
        if isinstance(stacked, pd.MultiIndex):
            out.update({str(n): _clean(v) for n, v in zip(stacked.names, stacked[index[d]])})
        else:
            out[str(d)] = _clean(result[d].values[index[d]])
    return out


def to_json(result: Any) -> dict[str, Any]:
    """The regimes result as plain JSON-able data: attrs, then per series its segments and flags."""
    from analysis.core.measured import measured_anomalous
    from analysis.detect.summary import iter_segments
    from analysis.detect.variables import SEGMENT_REPORTED

    sdims = [d for d in result["anomalous"].dims if d != "budget"]
    fields = SEGMENT_REPORTED
    series: dict[tuple[int, ...], dict[str, Any]] = {}
    anomalous = measured_anomalous(result)  # none at a budget the series never ran
    for index, j in iter_segments(result):
        key = tuple(index[d] for d in sdims)
        if key not in series:
            sel = dict(index)
            series[key] = {
                "series": _factors(result, sdims, index),
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
    """The anomalous segments (every segment with ``--all``), what each series could have shown, the summary.

    Both tables are those of the report (:mod:`analysis.tables.results`), drawn by
    :func:`analysis.cli.render.render`: they fit the terminal, key columns whole.
    """
    from analysis.cli.render import console, print_summary, render
    from analysis.tables.results import regimes_power, regimes_segments

    out = console()
    segments = regimes_segments(result, show_all=bool(args.all))
    if segments.rows:
        render(segments, out)
        out.print()
    if "mde" in result:
        render(regimes_power(result), out)
        out.print()
    print_summary(result.attrs["summary"], out)
