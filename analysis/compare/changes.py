"""Which regimes appear, vanish, move or persist between A and B, as decided by tests, and the verdict line.

Two sources propose changes; tests of B - A decide them
(:mod:`analysis.compare.statistics`, docs/methods.md "compare"):

- the regimes of each file (:func:`analysis.regimes`), paired by overlap on
  the budget axis (same kind, largest overlap): a regime of A without a
  partner is a *vanished* candidate, tested on its budgets (B/A lower there
  than elsewhere, for a slow regime); one of B is an *appeared* candidate
  (B/A higher there); paired regimes whose budgets differ are a *moved*
  candidate, tested on the budgets only one of them covers; paired regimes
  on the same budgets *persist* (not tested);
- the scan of B - A: the interval where B/A differs most from elsewhere
  (:func:`analysis.compare.statistics.scan`). Where no regime change covers it,
  it is a candidate of its own, named by the file whose latency there
  deviates more from a smooth curve through its other budgets (B: appeared,
  A: vanished); over a persisting
  regime it is that regime's change of strength.

Every candidate's p-value is a max-T p-value over every interval of its
series; the caller decides them with one level for the dataset (``decide``).
A candidate not confirmed is *unconfirmed* (appeared or vanished: seen in
one file only, but B - A does not differ there) or *persists* (moved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis.compare import statistics as _cs
from analysis.core.labels import fmt_fixed, fmt_ratio
from analysis.detect.variables import Segment

__all__ = ["CHANGE_KINDS", "Change", "Segment", "decide", "match", "scan_change", "segments", "test", "verdict"]

#: The kinds of regime change, in the order they are reported.
CHANGE_KINDS: tuple[str, ...] = ("vanished", "appeared", "moved", "unconfirmed", "persists")
_BOUNDS = ("start", "end", "start_lo", "start_hi", "end_lo", "end_hi")


@dataclass(frozen=True)
class Change:
    """A regime's fate from A to B (``a`` or ``b`` is None when it exists on one side only) and its test.

    ``log_diff``: ``mean log(B/A)`` on the tested budgets minus elsewhere;
    ``p``: the interaction test (max-T; NaN: not tested); ``q``: its level
    after the correction across the dataset; ``confirmed``: ``q < alpha``;
    ``proposed``: the kind before the test decided; ``source``: ``regimes``
    or ``scan``.
    """

    kind: str
    a: Segment | None
    b: Segment | None
    log_diff: float = math.nan
    p: float = math.nan
    q: float = math.nan
    proposed: str = ""
    source: str = "regimes"
    confirmed: bool = False


def segments(arrays: dict[str, np.ndarray], s: int) -> list[Segment]:
    """The anomalous segments of flat series ``s`` from per-(series, segment) arrays of a regimes() result.

    ``arrays`` needs ``segment_anomalous``, ``start``, ``end`` and ``effect``;
    the bounds' intervals are NaN and the kind follows the effect (above 1:
    slow) where the result lacks them.
    """
    anom = np.asarray(arrays["segment_anomalous"][s], dtype=bool)
    out = []
    for j in np.flatnonzero(anom):
        g: dict[str, Any] = {k: (arrays[k][s, j] if k in arrays else math.nan) for k in (*_BOUNDS, "effect")}
        effect = float(g["effect"])
        kind = str(arrays["kind"][s, j]) if "kind" in arrays else ("fast" if effect < 1 else "slow")
        start, end, start_lo, start_hi, end_lo, end_hi = (float(g[k]) for k in _BOUNDS)
        out.append(Segment(start, end, start_lo, start_hi, end_lo, end_hi, kind, effect))
    return sorted(out, key=lambda x: x.start)


def _overlap(x: tuple[float, float], y: tuple[float, float]) -> float:
    return min(x[1], y[1]) - max(x[0], y[0])


def match(a: list[Segment], b: list[Segment]) -> list[Change]:
    """Pair the regimes of A and B of one series; every regime ends up in exactly one proposed :class:`Change`."""
    used: set[int] = set()
    out: list[Change] = []
    for ra in a:
        best, best_ov = None, -math.inf
        for k, rb in enumerate(b):
            ov = _overlap((ra.start, ra.end), (rb.start, rb.end))
            if k not in used and rb.kind == ra.kind and ov >= 0 and ov > best_ov:
                best, best_ov = k, ov
        if best is None:
            out.append(Change("vanished", ra, None, proposed="vanished"))
            continue
        used.add(best)
        rb = b[best]
        kind = "persists" if (ra.start, ra.end) == (rb.start, rb.end) else "moved"
        out.append(Change(kind, ra, rb, proposed=kind))
    out.extend(Change("appeared", None, rb, proposed="appeared") for k, rb in enumerate(b) if k not in used)
    return sorted(out, key=lambda c: (CHANGE_KINDS.index(c.kind), (c.a or c.b).start))  # type: ignore[union-attr]


def _pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The contiguous runs of a bool mask, each as a mask."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > 1) + 1
    out = []
    for part in np.split(idx, cuts):
        m = np.zeros(mask.shape, dtype=bool)
        m[part] = True
        out.append(m)
    return out


def test(change: Change, d: np.ndarray, budgets: np.ndarray) -> Change:
    """``change`` with its interaction test filled in (``log_diff``, ``p``); persisting regimes come back as they are.

    ``d`` ``(budget,)`` is the series' ``mean log B - mean log A`` (NaN:
    not shared) and ``budgets`` the budget values.
    """
    if change.proposed not in ("vanished", "appeared", "moved"):
        return change
    ok = np.isfinite(d)
    order = np.argsort(budgets[ok], kind="stable")
    x, bud = d[ok][order], np.asarray(budgets, dtype=float)[ok][order]  # the shared budgets, ascending

    def span(g: Segment) -> np.ndarray:
        return (bud >= g.start) & (bud <= g.end)

    if change.proposed == "appeared" and change.b is not None:
        tests = [(span(change.b), change.b.sign)]
    elif change.proposed == "vanished" and change.a is not None:
        tests = [(span(change.a), -change.a.sign)]
    else:
        assert change.a is not None and change.b is not None
        in_a, in_b = span(change.a), span(change.b)
        sign = change.b.sign
        tests = [(m, sign) for m in _pieces(in_b & ~in_a)] + [(m, -sign) for m in _pieces(in_a & ~in_b)]
    best = (math.nan, math.nan)
    for mask, sign in tests:
        diff, _, p = _cs.interval_test(x, mask, sign)
        if math.isnan(best[1]) or (math.isfinite(p) and p < best[1]):
            best = (diff, p)
    return replace(change, log_diff=best[0], p=best[1])


def scan_change(d: np.ndarray, m_a: np.ndarray, m_b: np.ndarray, budgets: np.ndarray, best: tuple[int, int, float,
                float], q: float, changes: list[Change]) -> list[Change]:
    """``changes`` (decided) with the scan's confirmed interval added where no confirmed change covers it.

    ``d``, ``m_a``, ``m_b`` ``(budget,)``: the series' log ratio and mean log
    values of A and B (NaN: not shared); ``best``: :func:`analysis.compare.statistics.scan`
    of the shared budgets, confirmed at level ``q``. Over a persisting
    regime the test becomes that regime's change of strength; elsewhere it
    is a regime of the file whose latency there deviates more from a smooth
    curve through its other budgets: appeared (B) or vanished (A); it replaces the unconfirmed
    regimes of one file that it overlaps.
    """
    i, j, diff, p = best
    ok = np.isfinite(d)
    order = np.argsort(budgets[ok], kind="stable")
    bud = np.asarray(budgets, dtype=float)[ok][order]
    lo, hi = float(bud[i]), float(bud[j - 1])
    out = list(changes)

    def covers(c: Change) -> bool:
        return any(x.start <= hi and x.end >= lo for x in (c.a, c.b) if x is not None)

    if any(c.confirmed and covers(c) for c in out):
        return out
    for k, c in enumerate(out):
        if c.proposed == "persists" and covers(c):
            out[k] = replace(c, log_diff=diff, p=p, q=q, source="scan", confirmed=True)
            return out
    ea, eb = (_excess(x[ok][order], bud, i, j) for x in (m_a, m_b))
    in_b = not (abs(ea) > abs(eb))  # NaN (an interval at the very end) counts for B
    e = eb if in_b else ea
    e = e if math.isfinite(e) else diff
    g = Segment(lo, hi, math.nan, math.nan, math.nan, math.nan, "slow" if e > 0 else "fast", math.exp(e))
    kind = "appeared" if in_b else "vanished"
    out = [c for c in out if not (c.kind == "unconfirmed" and covers(c))]  # the scan's test replaces theirs
    out.append(Change(kind, None if in_b else g, g if in_b else None, log_diff=diff, p=p, q=q, proposed=kind,
                      source="scan", confirmed=True))
    return out


def _excess(m: np.ndarray, budgets: np.ndarray, i: int, j: int) -> float:
    """Mean log excess of ``m[i:j]`` over a smooth curve through the other budgets.

    ``m`` holds a file's mean log values over its shared budgets (ascending
    ``budgets``). The curve is the least-squares quadratic in the budget of
    the latencies outside ``[i, j)`` (prefill plus a per-token cost that may
    grow with the length: the expected scaling), or the straight line where
    the quadratic is not positive inside.
    """
    out = np.r_[np.arange(i), np.arange(j, m.size)]
    y, x = np.exp(m[out]), budgets[out]
    for deg in (2, 1):
        if out.size <= deg:
            continue
        coef = np.polyfit(x, y, deg)
        pred = np.polyval(coef, budgets[i:j])
        if np.all(pred > 0):
            return float(np.mean(m[i:j] - np.log(pred)))
    return math.nan


def decide(change: Change, q: float, alpha: float) -> Change:
    """The final kind of a tested change: its proposal where ``q < alpha``, else unconfirmed (appeared/vanished)
    or persists (moved, or a persisting regime's change of strength)."""
    if not math.isfinite(change.p):
        kind = "unconfirmed" if change.proposed in ("vanished", "appeared") else "persists"
        return replace(change, kind=kind, q=q)
    if math.isfinite(q) and q < alpha:
        return replace(change, kind=change.proposed, q=q, confirmed=True)
    return replace(change, kind="unconfirmed" if change.proposed in ("vanished", "appeared") else "persists", q=q)


def _span(g: Segment) -> str:
    return f"{g.start:g}" if g.start == g.end else f"{g.start:g}-{g.end:g}"


def _q(q: float) -> str:
    return f"q={q:.2g}" if math.isfinite(q) else "not testable"


def _describe(c: Change) -> str:
    there = f"B/A there {fmt_ratio(math.exp(c.log_diff))} of elsewhere, " if math.isfinite(c.log_diff) else ""
    scan = "found by the scan of B - A; " if c.source == "scan" and c.kind in ("appeared", "vanished") else ""
    if c.kind == "vanished" and c.a is not None:
        return f"regime {_span(c.a)} ({fmt_ratio(c.a.effect)}) vanished ({scan}{there}{_q(c.q)})"
    if c.kind == "appeared" and c.b is not None:
        return f"regime {_span(c.b)} ({fmt_ratio(c.b.effect)}) appeared ({scan}{there}{_q(c.q)})"
    if c.kind == "moved" and c.a is not None and c.b is not None:
        return f"regime {_span(c.a)} moved to {_span(c.b)} ({there}{_q(c.q)})"
    if c.kind == "unconfirmed":
        g, side = (c.a, "A") if c.a is not None else (c.b, "B")
        assert g is not None
        test = f"B - A not significant there, {_q(c.q)}" if math.isfinite(c.q) else "B - A not testable there"
        return f"regime {_span(g)} ({fmt_ratio(g.effect)}) found in {side} only ({test})"
    assert c.a is not None and c.b is not None
    where = _span(c.a) if (c.a.start, c.a.end) == (c.b.start, c.b.end) else f"{_span(c.a)} ({_span(c.b)} in B)"
    strength = f"; {there}{_q(c.q)}" if c.confirmed else ""
    return f"regime {where} persists ({fmt_ratio(c.a.effect)} -> {fmt_ratio(c.b.effect)}{strength})"


def _ratio(log_ratio: float, lo: float, hi: float) -> str:
    return f"{fmt_fixed(math.exp(log_ratio))}x [{fmt_fixed(math.exp(lo))}, {fmt_fixed(math.exp(hi))}]"


def verdict(label: str, changes: list[Change], level: dict[str, float], alpha: float, noise_note: str = "",
            absolute: str = "") -> str:
    """One line: the series, its regime changes, B/A elsewhere with its CI and significance, and a noise warning.

    ``level`` holds the series' ``log_ratio``, ``lo``, ``hi``, ``q``, ``mde``
    (log units; found with 80 % power at ``alpha`` before the correction) and
    ``n`` (budgets of the level). ``absolute``: the two files' typical values with their spread
    (:func:`analysis.core.labels.fmt_change`), written after B/A.
    """
    parts = [_describe(c) for c in changes]
    q, n = level["q"], int(level["n"])
    sig = math.isfinite(q) and q < alpha
    if n == 0 or not math.isfinite(level["log_ratio"]):
        ratio = "no shared budget elsewhere"
    elif not math.isfinite(level["lo"]):
        ratio = f"{fmt_fixed(math.exp(level['log_ratio']))}x (one budget elsewhere: its noise is unknown, no test)"
    elif sig:
        ratio = _ratio(level["log_ratio"], level["lo"], level["hi"]) + f", q={q:.2g}"
    else:
        mde = level["mde"]
        power = f"; {fmt_ratio(math.exp(mde))} would reach p<{alpha:g} 80% of the time" if math.isfinite(mde) else ""
        ratio = _ratio(level["log_ratio"], level["lo"], level["hi"]) + ", not significant" + power
    if absolute:
        ratio += f" ({absolute})"
    tail = f"; {noise_note}" if noise_note else ""
    if not any(c.confirmed for c in changes) and not sig:
        return f"{label}: no change; " + ("; ".join(parts) + "; " if parts else "") + f"B/A {ratio}{tail}"
    return f"{label}: " + "; ".join(parts + [f"{'elsewhere' if parts else 'B/A'} {ratio}"]) + tail
