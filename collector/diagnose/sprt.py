"""Adaptive trials of ``collector diagnose``: Wald's sequential probability ratio test, one per cell.

A follow-up cell is measured again only until its *side* of the regime's
boundary is settled. Its runs are read as ``x = log(latency / reference)``,
the reference being the normal latency at that budget in that condition
(:mod:`collector.diagnose.evidence`), with per-run noise ``sigma`` (sd of log
latency). Two simple hypotheses:

* ``out``: ``x ~ N(0, sigma^2)`` (the cell is normal);
* ``in``: ``x ~ N(delta, sigma^2)`` (the cell is slowed by ``exp(delta)``).

After ``n`` runs the log likelihood ratio is
``L = (delta / sigma^2) * sum(x_i - delta / 2)``. Wald's SPRT (Wald 1945)
stops at the first ``n`` where ``L >= log((1 - beta) / alpha)`` (``in``) or
``L <= log(beta / (1 - alpha))`` (``out``); ``alpha`` is the chance of
calling a normal cell ``in``, ``beta`` of calling a slowed one ``out``
(Wald's bounds hold them approximately, slightly conservatively). A cell that
reaches ``max_trials`` without crossing is ``open``. ``delta`` is half the
regime's log effect in the file (:func:`analysis.regimes`): the test asks
whether the cell is slowed by at least the square root of the regime's
effect, so a factor that weakens the regime without removing it still reads
``in``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from collector.shared.errors import ConfigError

__all__ = ["SIDES", "Side", "sprt"]

#: The answers of :func:`sprt`.
SIDES: tuple[str, ...] = ("in", "out", "open")


@dataclass(frozen=True)
class Side:
    """The side of one cell: ``side`` (one of :data:`SIDES`), its log likelihood ratio ``llr`` and runs ``n``."""

    side: str
    llr: float
    n: int


def sprt(x: Sequence[float], *, delta: float, sigma: float, alpha: float = 0.01, beta: float = 0.01,
         min_trials: int = 1) -> Side:
    """Wald's SPRT of ``in`` (mean ``delta``) against ``out`` (mean 0) on the log ratios ``x``, in order.

    Parameters
    ----------
    x
        ``log(latency / reference)`` of the cell's ok runs, in the order they were measured.
    delta
        Log slowdown of a cell inside (negative for a fast regime); not 0.
    sigma
        Per-run noise (sd of log latency), > 0.
    alpha, beta
        Error rates: ``in`` for a normal cell, ``out`` for a slowed one; in (0, 0.5).
    min_trials
        Runs before a decision may be taken (a decision is never taken on fewer).

    Returns
    -------
    Side
        ``in`` or ``out`` at the first run where the ratio crosses a bound
        (runs after it do not change the answer), else ``open``.

    Raises
    ------
    ConfigError
        ``delta`` 0 or not finite, ``sigma`` not positive, ``alpha`` / ``beta`` out of range.
    """
    if not math.isfinite(delta) or delta == 0:
        raise ConfigError(f"delta must be a finite non-zero log effect, got {delta!r}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ConfigError(f"sigma must be a positive noise, got {sigma!r}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0 < value < 0.5:
            raise ConfigError(f"{name} must be in (0, 0.5), got {value!r}")
    upper = math.log((1 - beta) / alpha)
    lower = math.log(beta / (1 - alpha))
    llr = 0.0
    n = 0
    for value in x:
        if not math.isfinite(value):
            continue
        n += 1
        llr += delta / sigma**2 * (value - delta / 2)
        if n >= min_trials and (llr >= upper or llr <= lower):
            return Side("in" if llr >= upper else "out", llr, n)
    return Side("open", llr, n)
