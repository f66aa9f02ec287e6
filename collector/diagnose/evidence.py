"""The evidence of one condition of a follow-up sweep: each cell's side of the boundary, and the regime's effect.

A *condition* is one setting of the series (the file's own, or one factor
changed) measured at a few budgets: *reference* budgets, known to lie outside
the regime, and *tested* budgets, whose side is the question. The normal
latency of the condition at budget ``b`` is the file's baseline shape there
(:meth:`collector.diagnose.target.Target.shape`) shifted by the mean of
``log(latency) - shape`` over the runs of each reference budget, interpolated
linearly between reference budgets (constant beyond them); each run of a
tested cell is read as ``x = log(latency) - normal(b)``. Each tested cell's side comes from
Wald's SPRT (:mod:`collector.diagnose.sprt`); the regime's log effect in the
condition is the mean ``x`` over the tested runs, with a t interval whose
noise is the runs' pooled within-cell sd (the file's noise where no cell has
two runs) over the tested and the reference runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.diagnose.sprt import Side, sprt
from collector.diagnose.target import Target

__all__ = ["ALPHA", "BETA", "Reading", "needs", "read", "read_pooled"]

#: Error rates of each cell's sequential test: a normal cell called ``in`` / a slowed cell called ``out``.
ALPHA = 0.01
BETA = 0.01


@dataclass(frozen=True)
class Reading:
    """What one condition's runs say.

    Attributes
    ----------
    sides
        Tested budget -> its :class:`~collector.diagnose.sprt.Side` (``open`` without runs).
    log_effect
        Mean ``log(latency / normal)`` over the tested runs (NaN without runs).
    se, df
        Its standard error and degrees of freedom (``inf``: the file's noise).
    sigma
        The per-run noise the tests used.
    runs
        Ok runs of the condition (reference and tested).
    """

    sides: Mapping[int, Side]
    log_effect: float
    se: float
    df: float
    sigma: float
    runs: int
    reference: tuple[int, ...] = field(default=())

    def all(self, side: str) -> bool:
        """Every tested cell has ``side``."""
        return bool(self.sides) and all(s.side == side for s in self.sides.values())

    @property
    def settled(self) -> bool:
        """No tested cell is ``open``."""
        return bool(self.sides) and all(s.side != "open" for s in self.sides.values())


def _clean(values: Sequence[float]) -> np.ndarray:
    v = np.asarray([x for x in values if math.isfinite(x) and x > 0], dtype=float)
    return np.log(v)


def read(samples: Mapping[int, Sequence[float]], *, reference: Sequence[int], tested: Sequence[int], target: Target,
         min_trials: int = 2) -> Reading:
    """The sides and the effect of one condition.

    Parameters
    ----------
    samples
        Budget -> ok latencies (s) of the condition, in the order measured.
    reference, tested
        Budgets known to lie outside the regime; budgets whose side is asked.
    target
        The regime (its baseline shape, effect and noise).
    min_trials
        Runs a cell needs before its test may decide.

    Returns
    -------
    Reading
    """
    logs = {int(b): _clean(v) for b, v in samples.items()}
    ref = [logs[b] - target.shape(b) for b in reference if b in logs and logs[b].size]
    cells = [logs[b] for b in (*reference, *tested) if b in logs and logs[b].size >= 2]
    df = float(sum(c.size - 1 for c in cells))
    pooled = math.sqrt(sum(float(((c - c.mean()) ** 2).sum()) for c in cells) / df) if df > 0 else math.nan
    sigma = max(target.sigma, pooled) if df >= 3 else target.sigma
    noise, noise_df = (pooled, df) if df >= 3 else (target.sigma, math.inf)
    if not ref:
        return Reading({b: Side("open", 0.0, 0) for b in tested}, math.nan, math.nan, math.nan, sigma, 0,
                       tuple(reference))
    ref_all = np.concatenate(ref)
    at = [b for b in reference if b in logs and logs[b].size]
    shifts = [float(r.mean()) for r in ref]
    sides: dict[int, Side] = {}
    xs: list[np.ndarray] = []
    for b in tested:
        x = logs.get(b, np.empty(0)) - (target.shape(b) + float(np.interp(b, at, shifts)))
        sides[b] = sprt(list(x), delta=target.delta, sigma=sigma, alpha=ALPHA, beta=BETA, min_trials=min_trials)
        xs.append(x)
    x_all = np.concatenate(xs) if xs else np.empty(0)
    runs = int(ref_all.size + x_all.size)
    if not x_all.size:
        return Reading(sides, math.nan, math.nan, math.nan, sigma, runs, tuple(reference))
    se = noise * math.sqrt(1.0 / x_all.size + 1.0 / ref_all.size)
    return Reading(sides, float(x_all.mean()), se, noise_df, sigma, runs, tuple(reference))


def needs(samples: Mapping[int, Sequence[float]], reading: Reading, *, min_trials: int,
          max_trials: int) -> dict[int, int]:
    """Budget -> runs the condition needs next: every cell up to ``min_trials``; then one more run of each
    ``open`` tested cell, and of each reference cell while a tested cell with ``min_trials`` runs is still open,
    up to ``max_trials``."""
    have = {int(b): len(v) for b, v in samples.items()}
    out: dict[int, int] = {}
    open_any = any(s.side == "open" and have.get(b, 0) >= min_trials for b, s in reading.sides.items())
    for b in (*reading.reference, *reading.sides):
        n = have.get(b, 0)
        if n < min_trials:
            out[b] = min_trials - n
        elif n < max_trials and ((b in reading.sides and reading.sides[b].side == "open")
                                 or (b not in reading.sides and open_any)):
            out[b] = 1
    return out


def read_pooled(parts: Mapping[Any, Mapping[int, Sequence[float]]], *, reference: Sequence[int],
                tested: Sequence[int], target: Target, min_trials: int = 1) -> Reading:
    """:func:`read` over the runs of several processes at once, each process's runs taken relative to its own
    reference runs (a process that runs slow as a whole is no regime); processes without reference runs are
    left out."""
    pooled: dict[int, list[float]] = {}
    for part in parts.values():
        ref = [np.log(np.asarray(part[b], float)) - target.shape(b) for b in reference if part.get(b)]
        if not ref:
            continue
        shift = float(np.concatenate(ref).mean())
        for b, values in part.items():  # every process at level 0 over its reference cells
            pooled.setdefault(int(b), []).extend(float(v) * math.exp(-shift) for v in values if v > 0)
    return read(pooled, reference=reference, tested=tested, target=target, min_trials=min_trials)
