"""The headline: one plain sentence per finding, strongest first, built from the analyses' results.

:func:`headline` turns a :func:`analysis.regimes` result, and where they were computed the results of
:func:`analysis.compare_backends`, :func:`analysis.kv_speedup` and :func:`analysis.phases`, into sentences a
reader can repeat: which series is how much slower (effect and 95 % CI) at which budgets than its smooth
curve, whether the other devices show it, what happens to the KV-cache speedup there and which phase carries
the extra time. Without a regime it says so, with the smallest slowdown the data could have shown.

Strongest first: a regime resting on several runs (several budgets, or several trials) before one resting
on a single run, which cannot be told from one slow run; then by the lower end of its effect's CI (the
slowdown the data vouch for). :func:`headline_of` computes the other analyses where the data allow them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.labels import fmt_fixed, iter_series, n_values, series_name
from analysis.core.stacked import levels
from analysis.errors import AnalysisError

__all__ = ["headline", "headline_of"]

_LEAD = ("model", "device")  # the words a reader leads with: "gpt2-medium on mps"
_FOLLOW_UPS = ("compare_backends", "kv_speedup", "phases")


def _x(v: float) -> str:
    return "x" + fmt_fixed(float(v), 1)


def _budgets(first: Any, last: Any) -> str:
    return f"budget {int(first)}" if first == last else f"budgets {int(first)}-{int(last)}"


def _budget_list(values: np.ndarray) -> str:
    """``budget 512`` or ``budgets 512, 528``."""
    vals = [str(int(v)) for v in values]
    return f"budget {vals[0]}" if len(vals) == 1 else f"budgets {', '.join(vals)}"


def _join(words: Sequence[str], last: str = "or") -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


def _who(row: dict[str, Any], sdims: Sequence[str], varying: set[str]) -> str:
    """``gpt2-medium on mps (experiment=instability_probe, cache on, prompt 65)``: the factors that vary."""
    lead = [series_name({d: row[d]}, [d]) for d in _LEAD if d in sdims]
    rest = [series_name({d: row[d]}, [d]) for d in sdims if d not in _LEAD and d in varying]
    name = " on ".join(lead) if lead else series_name({d: row[d] for d in sdims}, varying)
    return f"{name} ({', '.join(rest)})" if rest and lead else name


def _sel(res: xr.Dataset, row: dict[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """The ``{dim: value}`` of ``row`` that ``res`` is indexed by (scalar dims of the result, and the levels of
    its stacked series, minus ``skip``)."""
    return {d: row[d] for d in [*map(str, res.dims), *levels(res)] if d in row and d not in skip}


def _factors(res: xr.Dataset) -> list[str]:
    """The series factors of a result: its dims but ``budget``, a dim of stacked series by its levels."""
    out: list[str] = []
    for d in map(str, res.dims):
        if d != "budget":
            out.extend(levels(res, d) or [d])
    return out


def _evidence(row: dict[str, Any], trials: int) -> tuple[int, float]:
    """Sort key, strongest first: several runs before one, then the larger CI-vouched effect."""
    several = int(row["n_cells"]) * max(trials, 1) >= 2
    lo, hi = float(row["effect_lo"]), float(row["effect_hi"])
    vouched = lo if row["kind"] == "slow" else (1.0 / hi if hi > 0 else math.nan)
    return (0 if several else 1, -(math.log(vouched) if vouched > 0 and math.isfinite(vouched) else 0.0))


def _effect(row: dict[str, Any]) -> str:
    e, lo, hi = float(row["effect"]), float(row["effect_lo"]), float(row["effect_hi"])
    if row["kind"] == "slow" or e >= 1:
        return f"is {_x(e)} [{fmt_fixed(lo, 1)}, {fmt_fixed(hi, 1)}] slower"
    return f"is {_x(1 / e)} [{fmt_fixed(1 / hi, 1)}, {fmt_fixed(1 / lo, 1)}] faster"


def _devices(bk: xr.Dataset | None, row: dict[str, Any]) -> str:
    """Whether the other devices show regimes: in the same group, else where the same model ran."""
    if bk is None or "device" not in bk.dims or "device" not in row:
        return ""
    here = row["device"]
    group = bk.sel(_sel(bk, row, skip=("device",)))
    others = [(str(d), bool(group["shows_regimes"].sel(device=d))) for d in group["device"].values
              if d != here and int(group["n_series"].sel(device=d)) > 0]
    where = ""
    if not others and "model" in bk.dims and len(bk.dims) > 2:  # other experiments / origins of the same model
        same = bk.sel(model=row["model"]) if "model" in row else bk
        other = [str(d) for d in same.dims if d != "device"]
        seen: dict[str, bool] = {}
        places: list[str] = []
        for d in same["device"].values:
            if d == here:
                continue
            sub = same.sel(device=d)
            for index, values in iter_series(sub, other):  # C order, a stacked dim by its levels
                one = sub.isel(index)
                if int(one["n_series"].values) <= 0:
                    continue
                seen[str(d)] = seen.get(str(d), False) or bool(one["shows_regimes"].values)
                label = ", ".join(series_name({k: v}, [k]) for k, v in values.items() if k != "model")
                if label and label not in places:
                    places.append(label)
        others = list(seen.items())
        if others and places:
            where = f" ({series_name({'model': row['model']}, ['model'])} measured there in {'; '.join(places)})"
    if not others:
        return "no other device was measured with it"
    clean = [d for d, shows in others if not shows]
    shown = [d for d, shows in others if shows]
    parts = []
    if clean:
        parts.append(f"not seen on {_join(clean)}{where}")
    if shown:
        parts.append(f"{_join(shown, 'and')} {'show' if len(shown) > 1 else 'shows'} regimes too{where if not clean else ''}")
    return "; ".join(parts)


def _kv_clause(kv: xr.Dataset | None, row: dict[str, Any], budgets: np.ndarray, order: Sequence[str]) -> str:
    """What the KV-cache speedup does at the regime's budgets: in the same series, else in a series of the same
    model and device whose speedup collapses there."""
    if kv is None or "speedup" not in kv:
        return ""
    first, last = row["first_budget"], row["last_budget"]
    inside = (budgets >= first) & (budgets <= last)

    def at(sub: xr.Dataset) -> tuple[float, float, np.ndarray]:
        sp = np.asarray(sub["speedup"].values, dtype=float)
        col = np.asarray(sub["collapse"].values, dtype=bool) & inside
        there = sp[col] if col.any() else sp[inside]
        level = float(np.nanmedian(there)) if np.isfinite(there).any() else math.nan
        return float(sub["speedup_outside"].values), level, budgets[col]

    same = kv.sel(_sel(kv, row))
    if all(d == "budget" for d in same.dims):
        outside, there, collapsed = at(same)
        if math.isfinite(outside) and math.isfinite(there):
            if collapsed.size:
                at_budgets = "" if collapsed.size == inside.sum() else f" at {_budget_list(collapsed)}"
                return f"the KV-cache speedup falls from {_x(outside)} to {_x(there)} there{at_budgets}"
            return f"the KV-cache speedup holds there ({_x(there)}, {_x(outside)} elsewhere)"
    lead = {d: row[d] for d in _LEAD if d in row and (d in kv.dims or d in levels(kv))}
    sub = kv.sel(lead)
    rest = [d for d in order if d in sub.dims and d != "budget"] + [str(d) for d in sub.dims if levels(sub, d)]
    if not rest:
        return ""
    for index, values in iter_series(sub, rest):  # C order, a stacked dim by its levels
        outside, there, collapsed = at(sub.isel(index))
        if collapsed.size and math.isfinite(outside) and math.isfinite(there):
            label = ", ".join(series_name({d: v}, [d]) for d, v in values.items() if v != row.get(d))
            return (f"in {label or 'its cache on/off pair'} the KV-cache speedup falls from {_x(outside)} to "
                    f"{_x(there)} at {_budget_list(collapsed)}")
    return ""


def _phase_clause(ph: xr.Dataset | None, row: dict[str, Any]) -> str:
    """Which phase carries the regime's extra time (nothing when the runs have no phase times)."""
    if ph is None or "decode_share" not in ph:
        return ""
    sub = ph.sel(_sel(ph, row, skip=("regime",)))
    starts = np.asarray(sub["regime_start"].values, dtype=float)
    hit = np.flatnonzero(starts == float(row["first_budget"]))
    if hit.size == 0:
        return ""
    k = int(hit[0])
    share = float(sub["decode_share"].values[k])
    if not math.isfinite(share):
        return ""
    lo, hi = (float(sub[v].values[k]) for v in ("decode_share_lo", "decode_share_hi"))
    ci = f" [{lo:.0%}, {hi:.0%}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    phase = "decode" if share >= 0.5 else "prefill"
    part = share if share >= 0.5 else 1 - share
    return f"the {phase} phase carries {part:.0%}{ci if phase == 'decode' else ''} of the extra time"


def _null(reg: xr.Dataset) -> str:
    n = int(np.asarray(reg["noise"].notnull().values).sum()) if "noise" in reg else 0
    mde = np.asarray(reg["mde"].values, dtype=float) if "mde" in reg else np.array([])
    mde = mde[np.isfinite(mde)]
    what = f"{n} series" if n != 1 else "1 series"
    if mde.size:
        lo, hi = float(mde.min()), float(mde.max())
        size = _x(lo) if fmt_fixed(lo, 1) == fmt_fixed(hi, 1) else f"{_x(lo)} to {_x(hi)}"
        return (f"No regime was found in {what}: latency follows a smooth curve in the budget; the smallest "
                f"slowdown this data could have shown (80% of the time, over one budget) is {size}.")
    return (f"No regime was found in {what}: latency follows a smooth curve in the budget; the smallest "
            f"detectable slowdown cannot be stated here (too few budgets or runs).")


def headline(reg: xr.Dataset, *, backends: xr.Dataset | None = None, kv: xr.Dataset | None = None,
             phases: xr.Dataset | None = None, limit: int = 5) -> list[str]:
    """One sentence per finding, strongest first (at most ``limit``, then one line counting the rest).

    Parameters
    ----------
    reg
        A :func:`analysis.regimes` result.
    backends, kv, phases
        The results of :func:`analysis.compare_backends`, :func:`analysis.kv_speedup` and
        :func:`analysis.phases` on the same data (None: their clause is left out).
    limit
        Most regimes given a sentence.

    Returns
    -------
    list of str
        The sentences; without a regime, one sentence saying so and what could have been seen.
    """
    from analysis.tables.tidy import regime_table

    per_series = reg["anomalous"].isel(budget=0, drop=True).astype(float) * math.nan
    table = regime_table(reg.assign({v: per_series for v in ("mde", "mde_4") if v not in reg}))  # older results
    if table.empty:
        return [_null(reg)]
    sdims = _factors(reg["anomalous"].to_dataset())
    varying = {d for d in sdims if n_values(reg, d) > 1}
    trials = int(reg.attrs.get("trials_min", reg.attrs.get("n_trials", 1)) or 1)
    rows = sorted(table.to_dict("records"), key=lambda r: _evidence(r, trials))
    budgets = np.asarray(reg["budget"].values)
    out = []
    for row in rows[:limit]:
        words = f"{_who(row, sdims, varying)} {_effect(row)} at {_budgets(row['first_budget'], row['last_budget'])}"
        words += " than its smooth curve"
        if row["n_cells"] == 1 and trials < 2:
            words += " (one run)"
        if bool(row.get("confounded")):
            words += ", but budget and execution time cannot be separated there"
        clauses = [c for c in (_devices(backends, row), _kv_clause(kv, row, budgets, sdims), _phase_clause(phases, row))
                   if c]
        out.append("; ".join([words, *clauses]) + ".")
    if len(rows) > limit:
        more = len(rows) - limit
        out.append(f"{more} more regime{'s' if more > 1 else ''}: see the regimes table.")
    return out


def headline_of(ds: xr.Dataset, reg: xr.Dataset, *, limit: int = 5) -> list[str]:
    """:func:`headline` of ``ds``, computing the backends, KV-speedup and phases results where they apply.

    An analysis the data do not allow (no cache on/off pair, no phase times) only loses its clause.
    """
    from analysis.core.common import quiet
    from analysis.registry import BY_NAME

    if reg["anomalous"].sum() == 0:
        return headline(reg, limit=limit)
    results: dict[str, xr.Dataset | None] = {}
    for name in _FOLLOW_UPS:
        entry = BY_NAME[name]
        results[name] = None
        if all(v in ds for v in entry.needs):
            try:
                with quiet():
                    results[name] = entry.function(ds, reg=reg)
            except AnalysisError:
                pass
    return headline(reg, backends=results["compare_backends"], kv=results["kv_speedup"], phases=results["phases"],
                    limit=limit)
