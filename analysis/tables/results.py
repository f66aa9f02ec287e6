"""Tables of the regimes and compare results (see :class:`analysis.tables.table.Table`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.core.labels import fmt_change, fmt_interval, fmt_num, fmt_ratio, na
from analysis.core.measured import measured_anomalous
from analysis.detect.variables import SEGMENT_REPORTED
from analysis.tables.table import Table, extra_columns, flat, labels, select_rows

__all__ = ["compare_changes", "compare_series", "regimes_power", "regimes_segments", "regimes_series"]

_SEGMENT_KNOWN = SEGMENT_REPORTED
_SERIES_KNOWN = ("noise", "scaling", "cell_sd", "df", "power")


def _sdims(result: xr.Dataset, var: str, inner: str) -> list[str]:
    return [str(d) for d in result[var].dims if d != inner]


def _bound(v: float, lo: float, hi: float) -> str:
    iv = fmt_interval(lo, hi, "g")
    return f"{fmt_num(v)} {iv}".strip() if iv and lo != hi else fmt_num(v)


def regimes_segments(reg: xr.Dataset, *, show_all: bool = False, max_rows: int | None = None) -> Table:
    """One row per anomalous segment (every segment with ``show_all``) of a regimes() result."""
    dims = _sdims(reg, "kind", "segment")
    names = labels(reg, dims)
    g = {k: flat(reg, k, dims) for k in _SEGMENT_KNOWN if k in reg}
    extras = extra_columns(reg, [*dims, "segment"], _SEGMENT_KNOWN)
    ex = {name: flat(reg, name, dims) for name, _ in extras}
    rows, flags, interesting = [], [], []
    for s, j in zip(*np.nonzero(g["kind"] != "")):
        anom = bool(g["segment_anomalous"][s, j])
        if not (anom or show_all):
            continue
        start, end = g["start"][s, j], g["end"][s, j]
        span = fmt_num(start) if start == end else f"{fmt_num(start)}-{fmt_num(end)}"
        eff = f"x{fmt_num(g['effect'][s, j], '.2f')} {fmt_interval(g['effect_lo'][s, j], g['effect_hi'][s, j], '.2f')}"
        rows.append((
            names[s], span, _bound(start, g["start_lo"][s, j], g["start_hi"][s, j]),
            _bound(end, g["end_lo"][s, j], g["end_hi"][s, j]), str(g["kind"][s, j]), eff.strip(),
            fmt_num(g["q"][s, j], ".2g") or na("not tested"),
            fmt_num(g["reproducible"][s, j], ".2f") or na("too few trials"),
            "yes" if g["confounded"][s, j] else "no",
            *(fmt_num(ex[name][s, j]) or na() for name, _ in extras),
        ))
        flags.append(str(g["kind"][s, j]) if anom else "")
        interesting.append(anom)
    rows_t, flags_t, note = select_rows(rows, flags, interesting, only_interesting=False, max_rows=max_rows,
                                        what="segments")
    legend = ("budgets: first-last budget of the regime; start, end: each boundary with its 95% interval "
              "[lo, hi] when trials are resampled; effect: median latency / expected (baseline) inside, with "
              "its 95% CI; q: p-value corrected for every test made (Benjamini-Hochberg); reproducible: share "
              "of trials that show it; confounded: budget and execution time cannot be separated")
    legend += "".join(f"; {name}: {long}" for name, long in extras)
    var = reg.attrs.get("var", "latency")
    return Table(
        title=f"regimes of {var!r}" + ("" if show_all else " (anomalous segments)"),
        columns=("series", "budgets", "start", "end", "kind", "effect [95% CI]", "q", "reproducible",
                 "confounded", *(name for name, _ in extras)),
        rows=rows_t, legend=legend, flags=flags_t, note=note,
        right=(False, True, True, True, False, True, True, True, False, *(True for _ in extras)),
        key=("series", "budgets", "kind", "effect [95% CI]", "q"),
    )


def regimes_series(reg: xr.Dataset, *, max_rows: int | None = None, only_with_regime: bool = False) -> Table:
    """One row per series: expected scaling, noise, number of regimes, and any further per-series variable.

    Per-series variables the table does not know (for instance the smallest
    detectable effect, when regimes() reports it) get a column each.
    """
    dims = _sdims(reg, "noise", "")
    names = labels(reg, dims)
    anom_seg = flat(reg, "segment_anomalous", dims)
    anom_b = flat(reg.assign(anomalous=measured_anomalous(reg)), "anomalous", dims)  # none at unmeasured budgets
    budgets = np.asarray(reg["budget"].values)
    extras = extra_columns(reg, dims, _SERIES_KNOWN)
    ex = {name: flat(reg, name, dims) for name, _ in extras}
    scaling = flat(reg, "scaling", dims)
    noise = flat(reg, "noise", dims)
    rows, flags, interesting = [], [], []
    measured = np.isfinite(flat(reg, "ratio", dims)).any(axis=1)  # a series with a run of its own
    for s in range(len(names)):
        n_reg = int(anom_seg[s].sum())
        rows.append((names[s], str(scaling[s]), fmt_num(100 * noise[s], ".2g") or na(), str(n_reg),
                     ", ".join(fmt_num(b) for b in budgets[anom_b[s].astype(bool)]) or "-",
                     *(fmt_num(ex[name][s]) or na() for name, _ in extras)))
        flags.append("hit" if n_reg else "")
        interesting.append(bool(n_reg))
    rows_t, flags_t, note = select_rows(rows, flags, interesting, only_interesting=only_with_regime,
                                        max_rows=max_rows, what="series", measured=measured.tolist(),
                                        absent_why="no value to compare with a baseline (no run, or one budget)")
    legend = ("scaling: expected growth of latency with budget; noise: per-run noise (% of the value); "
              "regimes: anomalous regimes found; anomalous budgets: budgets inside them")
    legend += "".join(f"; {name}: {long}" for name, long in extras)
    return Table(title="per series", columns=("series", "scaling", "noise %", "regimes", "anomalous budgets",
                                          *(name for name, _ in extras)),
                 rows=rows_t, legend=legend, flags=flags_t, note=note,
                 right=(False, False, True, True, False, *(True for _ in extras)),
                 key=("series", "regimes", "anomalous budgets"))


def _mde(x: float) -> str:
    """A smallest detectable effect (``x2.71``), or why there is none."""
    if np.isnan(x):
        return na("too few budgets")
    if np.isinf(x):
        return na("time-confounded")
    return fmt_ratio(x)


def regimes_power(reg: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per measured series of a regimes() result: its noise and the smallest regime it could have shown."""
    dims = _sdims(reg, "mde", "")
    names = labels(reg, dims)
    v = {k: flat(reg, k, dims).astype(float) for k in ("noise", "scatter", "mde", "mde_4", "p_series", "q_series")}
    noisy = flat(reg, "noisy", dims).astype(bool) if "noisy" in reg else np.zeros(len(names), dtype=bool)
    measured = np.isfinite(flat(reg, "ratio", dims).astype(float)).any(axis=1)
    rows = [(names[s], fmt_num(v["noise"][s], ".3f") or na(), fmt_num(v["scatter"][s], ".3f") or na(),
             _mde(v["mde"][s]), _mde(v["mde_4"][s]), fmt_num(v["p_series"][s], ".2g") or na(),
             fmt_num(v["q_series"][s], ".2g") or na()) for s in range(len(names))]
    flags = ["hit" if n else "" for n in noisy]
    rows_t, flags_t, note = select_rows(rows, flags, [True] * len(rows), only_interesting=False, max_rows=max_rows,
                                        what="series", measured=measured.tolist(),
                                        absent_why="no value to compare with a baseline (no run, or one budget)")
    return Table(
        title="what could have been seen, per series",
        columns=("series", "noise", "scatter", "detectable: 1 budget", "4 budgets", "p (any step)", "q (series)"),
        rows=rows_t, flags=flags_t, note=note, right=(False, True, True, True, True, True, True),
        key=("series", "noise", "detectable: 1 budget", "q (series)"),
        legend=("noise: per-run sd of log latency (bold: above 0.1); scatter: budget-to-budget sd around a smooth "
                "curve; detectable: the smallest slowdown over one (four) budgets found with 80% power at alpha "
                "(n/a: none, with the reason); p (any step): scan p-value of the strongest interval of the series; "
                "q (series): the series' strongest evidence corrected across the series (Benjamini-Hochberg): a "
                "series holds a regime only where it is below alpha"),
    )


def compare_series(res: xr.Dataset, *, max_rows: int | None = None, only_changed: bool = False) -> Table:
    """One row per series of a compare() result: the ratio B/A elsewhere, its test, regime changes, verdict."""
    dims = _sdims(res, "series_ratio", "")
    names = labels(res, dims)
    g = {k: flat(res, k, dims) for k in ("series_ratio", "series_ratio_lo", "series_ratio_hi", "series_q",
                                         "n_budgets", "series_changed")}
    units = str(res["level_a"].attrs.get("units", "")) if "level_a" in res else ""
    lv = {k: flat(res, k, dims) if k in res else np.full(len(names), np.nan)
          for k in ("level_a", "spread_a", "level_b", "spread_b")}
    kinds = flat(res, "change_kind", dims)
    rows, flags, interesting = [], [], []
    for s in range(len(names)):
        ch = ", ".join(f"{k}" for k in kinds[s] if k and k != "persists") or "-"
        ratio = (f"{fmt_num(g['series_ratio'][s], '.3f')}x "
                 f"{fmt_interval(g['series_ratio_lo'][s], g['series_ratio_hi'][s], '.3f')}".strip()
                 if np.isfinite(g["series_ratio"][s]) else na("no shared budget outside regimes"))
        absolute = fmt_change(lv["level_a"][s], lv["spread_a"][s], lv["level_b"][s], lv["spread_b"][s], units)
        rows.append((names[s], absolute or na("no shared budget outside regimes"), ratio,
                     fmt_num(g["series_q"][s], ".2g") or na(), fmt_num(g["n_budgets"][s]), ch,
                     "yes" if g["series_changed"][s] else "no"))
        flags.append("hit" if g["series_changed"][s] else "")
        interesting.append(bool(g["series_changed"][s]))
    rows_t, flags_t, note = select_rows(rows, flags, interesting, only_interesting=only_changed, max_rows=max_rows,
                                        what="series")
    la, lb = res.attrs.get("label_a", "A"), res.attrs.get("label_b", "B")
    return Table(
        title=f"{lb} vs {la}: {res.attrs.get('var', '')} per series",
        columns=("series", "A -> B", "B/A [95% CI]", "q", "budgets", "regime changes", "changed"),
        rows=rows_t, flags=flags_t, note=note, right=(False, True, True, True, True, False, False),
        key=("series", "A -> B", "q", "changed"),
        legend=("A -> B: each file's typical value over those budgets (geometric mean of its cells) +- its per-run "
                "spread (left out with one run a cell), and B/A as slower or faster (pyperf style); "
                "B/A: geometric mean over the shared budgets outside every regime of the median of B over the "
                "median of A, with its 95% CI; q: its p-value corrected across series (Benjamini-Hochberg); "
                "budgets: shared budgets used; regime changes: regimes that appeared, vanished or moved; changed: "
                "q below alpha or a regime changed"),
    )


def compare_changes(res: xr.Dataset) -> Table:
    """One row per regime of A or B of a compare() result: appeared, vanished, moved or persists."""
    dims = _sdims(res, "change_kind", "change")
    names = labels(res, dims)
    kinds = flat(res, "change_kind", dims)
    f = {k: flat(res, k, dims) for k in res.data_vars if str(k).startswith(("a_", "b_"))}

    def span(side: str, s: int, k: int) -> str:
        st, en = f[f"{side}_start"][s, k], f[f"{side}_end"][s, k]
        if not np.isfinite(st):
            return "-"
        iv = (fmt_interval(f[f"{side}_start_lo"][s, k], f[f"{side}_start_hi"][s, k], "g"),
              fmt_interval(f[f"{side}_end_lo"][s, k], f[f"{side}_end_hi"][s, k], "g"))
        text = fmt_num(st) if st == en else f"{fmt_num(st)}-{fmt_num(en)}"
        lo_hi = [(f[f"{side}_{w}_lo"][s, k], f[f"{side}_{w}_hi"][s, k]) for w in ("start", "end")]
        known = all(np.isfinite(a) and np.isfinite(b) and a != b for a, b in lo_hi)
        return f"{text} (x{fmt_num(f[f'{side}_effect'][s, k], '.2f')})" + (
            f" start {iv[0]} end {iv[1]}" if known else "")

    rows, flags = [], []
    for s, k in zip(*np.nonzero(kinds != "")):
        rows.append((names[s], str(kinds[s, k]), span("a", s, k), span("b", s, k)))
        flags.append("" if kinds[s, k] == "persists" else "hit")
    la, lb = res.attrs.get("label_a", "A"), res.attrs.get("label_b", "B")
    return Table(title=f"regimes: {la} -> {lb}", columns=("series", "change", "in A", "in B"), rows=tuple(rows),
                 key=("series", "change", "in A", "in B"),
                 flags=tuple(flags), right=(False, False, False, False),
                 legend=("change: appeared (only in B), vanished (only in A), moved (a boundary's 95% intervals in "
                         "A and B do not overlap) or persists; in A / in B: budgets of the regime, its effect "
                         "(latency / expected) and the 95% intervals of its start and end"))
