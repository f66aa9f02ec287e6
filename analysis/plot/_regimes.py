"""Regimes on a budget axis: which series to show, the anomalous spans of one, and how to draw them.

A regime is drawn as a span from its first to its last budget (exactly the
detected boundaries: ``start`` and ``end`` of :func:`analysis.regimes`),
coloured by kind (slow / fast), hatched when confounded with execution
time, with the 95 % intervals of its start and end as bars along the top of
the axes. Each span's ``gid`` starts with ``regime``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.core.labels import iter_series
from analysis.core.stacked import levels
from analysis.detect.variables import SEGMENT_BOUNDS, Segment
from analysis.errors import InputError
from analysis.plot._figure import COLORS

__all__ = ["analysed", "choose_series", "legend_handles", "not_drawn_note", "pick", "regime_extents", "shade",
           "shade_mask", "spans"]


def pick(obj: xr.Dataset | xr.DataArray, index: Mapping[str, int], values: Mapping[str, Any]) -> Any:
    """``obj`` at one series: by value on dims with an index (and on the levels of stacked series), by position
    on the others; dims it lacks are skipped."""
    by_value = {d: v for d, v in values.items() if (d in obj.dims and d in obj.indexes) or d in levels(obj)}
    by_pos = {d: i for d, i in index.items() if d in obj.dims and d not in obj.indexes}
    return obj.isel(by_pos).sel(by_value)


def spans(reg: xr.Dataset, index: Mapping[str, int], values: Mapping[str, Any],
          measured: np.ndarray | None = None) -> list[Segment]:
    """The anomalous segments of one series of a :func:`analysis.regimes` result, in budget order.

    A regime whose series skipped budgets of the dataset inside it (a study's experiment that measured 512
    and 624 only, where another measured every 16 tokens) is one span per run of budgets the series measured,
    so no band covers budgets it never ran; the start's interval stays on the first span, the end's on the last.
    ``measured`` (bool over ``reg.budget``): where the drawn variable has a value, when it is not latency (a
    series' decode times may cover fewer budgets than its latency).
    """
    one = pick(reg, index, values)
    anom = np.asarray(one["segment_anomalous"].values, dtype=bool).ravel()
    budgets = np.asarray(reg["budget"].values, dtype=float)
    ratio = np.ravel(one["ratio"].values).astype(float) if "ratio" in one else None
    if measured is not None:
        m = np.asarray(measured, dtype=bool).ravel()
        ratio = np.where(m, 1.0, np.nan) if ratio is None else np.where(m, ratio, np.nan)
    out = []
    for j in np.flatnonzero(anom):
        g = {k: one[k].values.ravel()[j] for k in (*SEGMENT_BOUNDS, "kind", "effect", "confounded")}
        seg = Segment(float(g["start"]), float(g["end"]), float(g["start_lo"]), float(g["start_hi"]),
                      float(g["end_lo"]), float(g["end_hi"]), str(g["kind"]), float(g["effect"]),
                      bool(g["confounded"]))
        out += _measured_pieces(seg, budgets, ratio)
    return sorted(out, key=lambda s: s.start)


def _measured_pieces(seg: Segment, budgets: np.ndarray, ratio: np.ndarray | None) -> list[Segment]:
    """``seg`` split at the budgets inside it that the series did not measure (NaN ``ratio``)."""
    inside = (budgets >= seg.start) & (budgets <= seg.end)
    if ratio is None or ratio.shape != budgets.shape or np.isfinite(ratio[inside]).all():
        return [seg]
    pieces: list[list[float]] = []
    previous_measured = False
    for b, r in zip(budgets[inside], ratio[inside]):
        if np.isfinite(r):
            if previous_measured:
                pieces[-1].append(float(b))
            else:
                pieces.append([float(b)])
        previous_measured = bool(np.isfinite(r))
    if not pieces:
        return [seg]
    nan = float("nan")
    return [Segment(p[0], p[-1], seg.start_lo if k == 0 else nan, seg.start_hi if k == 0 else nan,
                    seg.end_lo if k == len(pieces) - 1 else nan, seg.end_hi if k == len(pieces) - 1 else nan,
                    seg.kind, seg.effect, seg.confounded) for k, p in enumerate(pieces)]


def analysed(reg: xr.Dataset | None, index: Mapping[str, int], values: Mapping[str, Any]) -> bool:
    """Whether the regimes analysis applied to the series: two or more budgets with a value over a baseline
    (a series of one budget has no curve to depart from). True when ``reg`` cannot say."""
    if reg is None or "ratio" not in reg:
        return True
    try:
        one = pick(reg, index, values)
    except (KeyError, IndexError):
        return True
    return int(np.isfinite(np.asarray(one["ratio"].values, dtype=float)).sum()) >= 2


def not_drawn_note(total: int, shown: int, one_budget: int) -> str:
    """The legend's note on the series left out: beyond the panel limit, and those of one budget."""
    parts = []
    if total > shown:
        parts.append(f"showing {shown} of {total} series (strongest regimes first)")
    if one_budget:
        parts.append(f"{one_budget} series of one budget not drawn (no curve to compare with)")
    return "; ".join(parts)


def choose_series(obj: xr.Dataset | xr.DataArray, dims: Sequence[str], reg: xr.Dataset | None,
                  max_panels: int) -> tuple[list[tuple[dict[str, int], dict[str, Any]]], int]:
    """Up to ``max_panels`` series of ``obj``: those with the strongest regimes first, then the others in order.

    Series of a DataArray ``obj`` without any finite value are skipped, and so are those the regimes
    analysis did not apply to (one budget: :func:`analysed`) unless it applied to none.

    Returns
    -------
    chosen, n_total
        ``(isel index, {dim: value})`` of each chosen series, and how many series could be drawn.

    Raises
    ------
    InputError
        When no series of ``obj`` has a value.
    """
    every = list(iter_series(obj, dims))
    if isinstance(obj, xr.DataArray):  # series without any value (cells never run) are not drawn
        inner = [d for d in obj.dims if d not in dims]
        if inner:
            n_budgets = obj.notnull().any([d for d in inner if d != "budget"]) if len(inner) > 1 else obj.notnull()
            count = np.asarray(n_budgets.sum("budget").transpose(*dims).values).ravel() if "budget" in inner else None
            if count is not None:
                keep = sorted((i for i in range(len(every)) if count[i] > 0), key=lambda i: (-count[i], i))
                every = [every[i] for i in keep]  # the series with the most budgets first among equals
        if not every:
            raise InputError(f"no finite value of {obj.name!r} to draw")
    if reg is None or "segment_anomalous" not in reg:
        return every[:max_panels], len(every)
    drawable = [e for e in every if analysed(reg, *e)]
    every = drawable or every  # the regimes analysis applied nowhere: draw what there is
    strength = []
    for index, values in every:
        try:
            one = pick(reg, index, values)
        except (KeyError, IndexError):
            strength.append(0.0)
            continue
        anom = np.asarray(one["segment_anomalous"].values, dtype=bool)
        eff = np.abs(np.log(np.asarray(one["effect"].values, dtype=float)))
        strength.append(float(np.nanmax(np.where(anom, eff, 0.0), initial=0.0)) + float(anom.any()))
    order = sorted(range(len(every)), key=lambda i: (-strength[i], i))
    return [every[i] for i in order[:max_panels]], len(every)


def _bar(ax: Axes, lo: float, hi: float, color: str, gid: str) -> int:
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        return 0
    ax.plot([lo, hi], [0.97, 0.97], color=color, lw=2.0, marker="|", ms=7, mew=1.5,
                transform=ax.get_xaxis_transform(), gid=gid, clip_on=False, zorder=4)
    return 1


def shade(ax: Axes, regimes: Sequence[Segment], *, intervals: bool = True, panel: int | str = 0) -> int:
    """Shade each regime from its first to its last budget; intervals of start and end as bars at the top.

    Returns the number of interval bars drawn.
    """
    n = 0
    for j, s in enumerate(regimes):
        color = COLORS["fast"] if s.kind == "fast" else COLORS["slow"]
        ax.axvspan(s.start, s.end, facecolor=color, alpha=0.18 if s.end > s.start else 0.6, edgecolor=color,
                   lw=1.2 if s.end > s.start else 3.0,  # a one-budget regime is a line: drawn thick
                   hatch="//" if s.confounded else None, gid=f"regime-{panel}-{j}", zorder=0)
        if intervals:
            n += _bar(ax, s.start_lo, s.start_hi, color, f"regime-start-interval-{panel}-{j}")
            n += _bar(ax, s.end_lo, s.end_hi, color, f"regime-end-interval-{panel}-{j}")
    return n


def shade_mask(ax: Axes, budgets: np.ndarray, mask: np.ndarray, *, gid: str, color: str, label: str = "") -> None:
    """Shade each contiguous run of True in ``mask`` from its first to its last budget."""
    m = np.asarray(mask, dtype=bool)
    b = np.asarray(budgets, dtype=float)
    i, n, k = 0, m.size, 0
    while i < n:
        if m[i]:
            j = i
            while j + 1 < n and m[j + 1]:
                j += 1
            ax.axvspan(b[i], b[j], facecolor=color, alpha=0.18, edgecolor=color, lw=1.2, gid=f"{gid}-{k}",
                       zorder=0, label=label if k == 0 else None)
            k += 1
            i = j + 1
        else:
            i += 1


def legend_handles(*, trials: bool = True, median: bool = True, baseline: bool = True, regimes: bool = True,
                   intervals: bool = True, median_label: str = "median over trials", gaps: bool = False) -> list[Any]:
    """Proxy artists for the common legend entries of the budget-axis figures (pass False for what is not drawn)."""
    out: list[Any] = []
    if trials:
        out.append(Line2D([], [], ls="", marker="o", ms=3, color=COLORS["trial"], alpha=0.6, label="trials"))
    if median:
        out.append(Line2D([], [], color=COLORS["median"], lw=1.5, marker=".", label=median_label))
    if median and gaps:
        out.append(Line2D([], [], color=COLORS["median"], lw=0.8, ls=":", label="budgets between not measured"))
    if baseline:
        out.append(Line2D([], [], color=COLORS["baseline"], lw=1.2, ls="--", label="expected scaling (baseline)"))
    if regimes:
        out.append(Patch(facecolor=COLORS["slow"], alpha=0.25, edgecolor=COLORS["slow"], label="anomalous regime"))
    if regimes and intervals:
        out.append(Line2D([], [], color=COLORS["slow"], lw=2, marker="|", ms=7,
                          label="95% interval of a boundary"))
    return out


def regime_extents(fig: Figure) -> list[tuple[int, str, float, float]]:
    """Where a figure draws regimes: ``(axes number, gid, first budget, last budget)`` per regime artist.

    Covers the shaded spans and bars whose ``gid`` starts with ``regime``
    (not the bars of boundary intervals), in data units of the x axis.
    """
    out = []
    for n, ax in enumerate(fig.axes):
        for artist in [*ax.patches, *ax.lines]:
            gid = artist.get_gid() or ""
            if not gid.startswith("regime") or "interval" in gid:
                continue
            if isinstance(artist, Line2D):
                x = np.asarray(artist.get_xdata(), dtype=float)
                out.append((n, gid, float(x.min()), float(x.max())))
            else:
                x0 = float(artist.get_x())  # type: ignore[attr-defined]
                out.append((n, gid, x0, x0 + float(artist.get_width())))  # type: ignore[attr-defined]
    return out
