"""What ``collector diagnose`` takes from the file about one regime: where it is, how strong, at what noise.

Everything here comes from the file and its :func:`analysis.regimes` result,
never from thresholds of our own: the regime's budgets and effect (its row of
:func:`analysis.regime_table`), the series' expected-scaling ``baseline``
(whose shape over the budget gives the normal latency at budgets the file did
not measure), and the series' per-run ``noise`` (sd of log latency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from collector.diagnose.plan import RegimePlan

__all__ = ["NOISE_FLOOR", "Target", "targets"]

#: Smallest per-run noise (sd of log latency) the sequential tests assume: a file whose trials agree
#: better than this (one trial, or a simulator without noise) does not make a single run decisive.
NOISE_FLOOR = 0.02


@dataclass(frozen=True)
class Target:
    """One regime to diagnose.

    Attributes
    ----------
    number
        1-based, in the plan's order (largest effect first).
    series
        The sweep series (factor name -> value) the regime was found in.
    first, last
        Its first and last anomalous budgets in the file.
    lo, hi
        The file's measured budgets just outside (None at the grid's edge).
    effect
        Its effect (observed / baseline) in the file.
    sigma
        Per-run noise of log latency of the series (at least :data:`NOISE_FLOOR`).
    budgets, log_baseline
        The file's budgets and the log of the series' baseline there (for :meth:`shape`).
    """

    number: int
    series: Mapping[str, Any]
    first: int
    last: int
    lo: int | None
    hi: int | None
    effect: float
    sigma: float
    budgets: tuple[int, ...]
    log_baseline: tuple[float, ...]

    @property
    def delta(self) -> float:
        """Log slowdown a cell inside must show for the sequential test: half the regime's log effect."""
        return 0.5 * math.log(self.effect)

    def shape(self, budget: float) -> float:
        """Log of the file's baseline at ``budget`` (interpolated; constant beyond the file's budgets)."""
        return float(np.interp(budget, self.budgets, self.log_baseline))

    @property
    def label(self) -> str:
        """``regime 1 (model=gpt2, ...: x2.40 at budgets 96-144)``."""
        where = f"budget {self.first}" if self.first == self.last else f"budgets {self.first}-{self.last}"
        return (f"regime {self.number} (" + ", ".join(f"{k}={v}" for k, v in self.series.items())
                + f": x{self.effect:.2f} at {where})")


def _series(da: xr.DataArray, series: Mapping[str, Any]) -> xr.DataArray:
    sel = {k: v for k, v in series.items() if k in da.dims}
    out = da.sel(sel)
    extra = [d for d in out.dims if d not in ("budget", "segment")]
    return out.median(dim=extra, skipna=True) if extra else out


def targets(ds: xr.Dataset, regimes: xr.Dataset | None, plans: tuple[RegimePlan, ...]) -> list[Target]:
    """One :class:`Target` per regime of the plan (``regimes``: the :func:`analysis.regimes` result of ``ds``)."""
    import analysis

    reg = analysis.regimes(ds) if regimes is None else regimes
    out = []
    for i, rp in enumerate(plans, 1):
        base = _series(reg["baseline"], rp.series)
        b = np.asarray(base["budget"].values, dtype=float)
        v = np.asarray(base.values, dtype=float)
        keep = np.isfinite(v) & (v > 0)
        noise = float(_series(reg["noise"], rp.series).values) if "noise" in reg else math.nan
        measured = np.isfinite(np.asarray(_series(ds["latency"], rp.series).values, dtype=float))
        budgets = sorted(int(x) for x in np.asarray(ds["budget"].values)[measured])
        before = [x for x in budgets if x < rp.first_budget]
        after = [x for x in budgets if x > rp.last_budget]
        out.append(Target(
            number=i, series=dict(rp.series), first=rp.first_budget, last=rp.last_budget,
            lo=before[-1] if before else None, hi=after[0] if after else None, effect=float(rp.effect),
            sigma=max(noise, NOISE_FLOOR) if math.isfinite(noise) else NOISE_FLOOR,
            budgets=tuple(int(x) for x in b[keep]), log_baseline=tuple(float(x) for x in np.log(v[keep]))))
    return out

