"""Which regimes appear, vanish, move or persist between two regimes() results, and the verdict line.

Regimes of A and B (same series, same budgets) are matched by overlap on
the budget axis (same kind, largest overlap). A matched regime has *moved*
when the 95 % intervals of its start (or of its end) in A and in B do not
overlap; otherwise it *persists*. An unmatched regime of A has *vanished*,
one of B has *appeared*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis._regimes_vars import SEGMENT_BOUNDS

__all__ = ["CHANGE_KINDS", "Change", "Segment", "match", "segments", "verdict"]

#: The kinds of regime change, in the order they are reported.
CHANGE_KINDS: tuple[str, ...] = ("vanished", "appeared", "moved", "persists")


@dataclass(frozen=True)
class Segment:
    """One anomalous regime: first/last budget, their 95 % intervals (budget units), kind and effect."""

    start: float
    end: float
    start_lo: float
    start_hi: float
    end_lo: float
    end_hi: float
    kind: str
    effect: float

    def interval(self, which: str) -> tuple[float, float]:
        """The 95 % interval of ``start`` or ``end`` (the point itself where unknown)."""
        v = getattr(self, which)
        lo, hi = getattr(self, f"{which}_lo"), getattr(self, f"{which}_hi")
        return (lo if math.isfinite(lo) else v, hi if math.isfinite(hi) else v)


@dataclass(frozen=True)
class Change:
    """A regime's fate from A to B (``a`` or ``b`` is None when it exists on one side only)."""

    kind: str
    a: Segment | None
    b: Segment | None


_FIELDS = (*SEGMENT_BOUNDS, "kind", "effect")


def segments(arrays: dict[str, np.ndarray], s: int) -> list[Segment]:
    """The anomalous segments of flat series ``s`` from per-(series, segment) arrays of a regimes() result."""
    anom = np.asarray(arrays["segment_anomalous"][s], dtype=bool)
    out = []
    for j in np.flatnonzero(anom):
        g: dict[str, Any] = {k: arrays[k][s, j] for k in _FIELDS}
        out.append(Segment(*(float(g[k]) for k in SEGMENT_BOUNDS), str(g["kind"]), float(g["effect"])))
    return sorted(out, key=lambda x: x.start)


def _overlap(x: tuple[float, float], y: tuple[float, float]) -> float:
    return min(x[1], y[1]) - max(x[0], y[0])


def match(a: list[Segment], b: list[Segment]) -> list[Change]:
    """Pair the regimes of A and B of one series; every regime ends up in exactly one :class:`Change`."""
    used: set[int] = set()
    out: list[Change] = []
    for ra in a:
        best, best_ov = None, -math.inf
        for k, rb in enumerate(b):
            ov = _overlap((ra.start, ra.end), (rb.start, rb.end))
            if k not in used and rb.kind == ra.kind and ov >= 0 and ov > best_ov:
                best, best_ov = k, ov
        if best is None:
            out.append(Change("vanished", ra, None))
            continue
        used.add(best)
        rb = b[best]
        moved = any(_overlap(ra.interval(w), rb.interval(w)) < 0 for w in ("start", "end"))
        out.append(Change("moved" if moved else "persists", ra, rb))
    out.extend(Change("appeared", None, rb) for k, rb in enumerate(b) if k not in used)
    return sorted(out, key=lambda c: (CHANGE_KINDS.index(c.kind), (c.a or c.b).start))  # type: ignore[union-attr]


def _span(g: Segment) -> str:
    return f"{g.start:g}" if g.start == g.end else f"{g.start:g}-{g.end:g}"


def _ratio(log_ratio: float, lo: float, hi: float) -> str:
    return f"{math.exp(log_ratio):.2f}x [{math.exp(lo):.2f}, {math.exp(hi):.2f}]"


def verdict(label: str, changes: list[Change], log_ratio: float, lo: float, hi: float, q: float,
            alpha: float, n_budgets: int) -> str:
    """One line: the series, its regime changes, and the ratio B/A elsewhere with its CI and significance."""
    parts = []
    for c in changes:
        if c.kind == "vanished" and c.a is not None:
            parts.append(f"regime {_span(c.a)} (x{c.a.effect:.2f}) vanished")
        elif c.kind == "appeared" and c.b is not None:
            parts.append(f"regime {_span(c.b)} (x{c.b.effect:.2f}) appeared")
        elif c.kind == "moved" and c.a is not None and c.b is not None:
            parts.append(f"regime {_span(c.a)} moved to {_span(c.b)}")
        elif c.a is not None and c.b is not None:
            parts.append(f"regime {_span(c.a)} persists (x{c.a.effect:.2f} -> x{c.b.effect:.2f})")
    if n_budgets == 0 or not math.isfinite(log_ratio):
        ratio = "no shared budget outside regimes"
    else:
        sig = math.isfinite(q) and q < alpha
        ratio = _ratio(log_ratio, lo, hi) + (f", q={q:.2g}" if sig else ", not significant")
    changed = [p for p in parts if "persists" not in p]
    if not changed and not (math.isfinite(q) and q < alpha):
        return f"{label}: no change; " + ("; ".join(parts) + "; " if parts else "") + f"B/A {ratio}"
    return f"{label}: " + "; ".join(parts + [f"{'elsewhere' if parts else 'B/A'} {ratio}"])
