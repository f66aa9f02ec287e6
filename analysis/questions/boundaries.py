"""Do a regime's onset and recovery line up on the budget axis or on total length?

With several prompt lengths ``P``, a regime whose onset is set by the total
sequence length ``P + budget`` starts at a smaller budget for a longer prompt
(the first anomalous budget falls by one token per prompt token), while one
set by the budget starts at the same budget whatever the prompt.
:func:`boundaries` compares the two readings with the interval evidence the
budget grid allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, TRIAL, Series, check_dataset, ok_values, series_of
from analysis.core.labels import fmt_fixed, n_values, scalar
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.stacked import unstack_with
from analysis.detect.blocks import Block, get_regimes, reg_array, regime_blocks
from analysis.errors import InputError

__all__ = ["boundaries", "slope_range", "VARIABLES"]

PROMPT = "prompt_len"
#: Every variable of a :func:`boundaries` result, in order: over the group dims (every series dim but
#: ``prompt_len``) x ``prompt_len``, or over the group dims.
VARIABLES: dict[str, ResultVar] = {
    "onset_budget": ResultVar(PROMPT, "first anomalous budget", "tokens"),
    "onset_after": ResultVar(PROMPT, "last normal budget before the regime", "tokens"),
    "recovery_budget": ResultVar(PROMPT, "last anomalous budget", "tokens"),
    "recovery_before": ResultVar(PROMPT, "first normal budget after the regime", "tokens"),
    "n_prompts": ResultVar(SERIES, "prompt lengths showing the regime", "1"),
    "onset_axis": ResultVar(SERIES, "axis the onset lines up on"),
    "recovery_axis": ResultVar(SERIES, "axis the recovery lines up on"),
    "onset_slope_lo": ResultVar(SERIES, "smallest compatible slope of the onset budget in prompt_len", "1"),
    "onset_slope_hi": ResultVar(SERIES, "largest compatible slope of the onset budget in prompt_len", "1"),
    "recovery_slope_lo": ResultVar(SERIES, "smallest compatible slope of the recovery budget in prompt_len", "1"),
    "recovery_slope_hi": ResultVar(SERIES, "largest compatible slope of the recovery budget in prompt_len", "1"),
    "onset_threshold_lo": ResultVar(SERIES, "onset threshold, lower bound (units of onset_axis)", "tokens"),
    "onset_threshold_hi": ResultVar(SERIES, "onset threshold, upper bound (units of onset_axis)", "tokens"),
    "recovery_threshold_lo": ResultVar(SERIES, "last value inside, lower bound (units of recovery_axis)", "tokens"),
    "recovery_threshold_hi": ResultVar(SERIES, "last value inside, upper bound (units of recovery_axis)", "tokens"),
}


def slope_range(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """Range of slopes ``s`` for which some line ``c + s * p`` passes through every interval ``[lo_i, hi_i]``.

    Infinite bounds are allowed (a censored boundary). Returns ``(nan, nan)``
    when no line fits (the intervals are inconsistent with any straight line)
    or fewer than two distinct ``p`` are given.
    """
    p, lo, hi = (np.asarray(a, dtype=np.float64) for a in (p, lo, hi))
    if np.unique(p).size < 2:
        return (np.nan, np.nan)
    # variables (c, s); constraints  c + s p_i <= hi_i  and  -(c + s p_i) <= -lo_i
    A, b = [], []
    for pi, lo_i, hi_i in zip(p, lo, hi):
        if np.isfinite(hi_i):
            A.append([1.0, pi])
            b.append(hi_i)
        if np.isfinite(lo_i):
            A.append([-1.0, -pi])
            b.append(-lo_i)
    if not A:
        return (-np.inf, np.inf)
    bounds = [(None, None), (None, None)]
    from scipy.optimize import linprog  # on first use: scipy.optimize is slow to import

    out = []
    for sign in (1.0, -1.0):
        res = linprog([0.0, sign], A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
        if res.status == 2:  # infeasible
            return (np.nan, np.nan)
        out.append(sign * res.fun if res.status == 0 else sign * -np.inf)
    return (float(out[0]), float(out[1]))


def _axis(slopes: tuple[float, float], tol: float) -> str:
    lo, hi = slopes
    if not np.isfinite(lo) and not np.isfinite(hi):
        return "unknown" if np.isnan(lo) and np.isnan(hi) else "ambiguous"
    fits_budget = lo - tol <= 0.0 <= hi + tol
    fits_total = lo - tol <= -1.0 <= hi + tol
    if fits_budget and fits_total:
        return "ambiguous"
    if fits_budget:
        return "budget"
    if fits_total:
        return "total"
    return "neither"


def boundaries(ds: xr.Dataset, *, reg: xr.Dataset | None = None, alpha: float = 0.05, **regimes_kwargs: Any) -> xr.Dataset:
    """Whether regime onset and recovery track the budget or the total length.

    Regimes come from :func:`analysis.regimes.regimes` on ``latency`` (or
    ``reg``). Per group (every series dim but ``prompt_len``) and prompt
    length ``P``, the main slow regime (most anomalous budgets, then the
    largest ratio) gives:

    * onset: the true threshold lies in ``(b_before, b_first]`` (last normal
      budget before, first anomalous budget; ``b_before = -inf`` when the
      regime starts at the first budget);
    * recovery: the last budget inside lies in ``[b_last, b_after)``.

    If onset is set by the budget, ``b_first(P)`` is the same threshold for
    every ``P`` (slope 0 in ``P``); if by total length ``P + budget``,
    ``b_first(P) = theta - P`` (slope -1). :func:`slope_range` gives the
    slopes of all lines through every prompt's interval (a linear program);
    the axis is ``budget`` when only slope 0 fits, ``total`` when only -1
    fits, ``ambiguous`` when both fit (the grid is too coarse), ``neither``
    when none does and ``unknown`` with fewer than two prompt lengths showing
    the regime. The same for recovery.

    Parameters
    ----------
    ds
        Dataset with ``latency`` and a ``prompt_len`` dim of at least two values.
    reg
        A result of :func:`analysis.regimes.regimes` on ``ds`` to reuse; None computes it.
    alpha
        Significance level passed to the regimes call.
    **regimes_kwargs
        Other settings of :func:`analysis.regimes.regimes`.

    Returns
    -------
    xarray.Dataset
        Over the group dims x ``prompt_len``:

        - ``onset_budget``: first anomalous budget (NaN: no regime).
        - ``onset_after``: last normal budget the series measured before it (-inf: none before it).
        - ``recovery_budget``: last anomalous budget.
        - ``recovery_before``: first normal budget the series measured after it (+inf: none after it).

        Over the group dims:

        - ``n_prompts``: prompt lengths showing the regime.
        - ``onset_axis``, ``recovery_axis``: ``budget``, ``total``, ``ambiguous``, ``neither`` or ``unknown``.
        - ``onset_slope_lo``, ``onset_slope_hi``: range of slopes of the onset budget in prompt_len
          compatible with every interval (0: budget, -1: total length).
        - ``recovery_slope_lo``, ``recovery_slope_hi``: the same for recovery.
        - ``onset_threshold_lo``, ``onset_threshold_hi``: interval of the onset threshold in the units of
          ``onset_axis`` (budget or total length; NaN when not budget/total).
        - ``recovery_threshold_lo``, ``recovery_threshold_hi``: the same for the last value inside.

        Attr ``summary``: one line per group with a regime, with the evidence.

    Raises
    ------
    InputError
        When ``latency`` or the budget dim is missing, or ``prompt_len`` has fewer than two values.
    """
    fn = "boundaries"
    ds, reg = unstack_with(ds, reg, (PROMPT,))  # stacked series (several files): compared along it
    ds = check_dataset(ds, fn, ["latency"])
    if PROMPT not in ds["latency"].dims or PROMPT not in ds.coords:
        raise InputError(f"{fn}() needs a {PROMPT!r} dim on 'latency'; it has dims {ds['latency'].dims!r}")
    prompts = np.asarray(ds[PROMPT].values, dtype=np.float64)
    if prompts.size < 2:
        raise InputError(f"{fn}() needs at least 2 prompt_len values to tell budget from total length, "
                         f"got {prompts.astype(int).tolist()!r}")
    lat = ok_values(ds, "latency")
    series = series_of(lat)
    budgets = np.asarray(ds[BUDGET].values, dtype=np.float64)
    if np.any(np.diff(budgets) <= 0):
        order = np.argsort(budgets)
        ds, lat, budgets = ds.isel({BUDGET: order}), lat.isel({BUDGET: order}), budgets[order]
    reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, **regimes_kwargs)
    blocks = regime_blocks(reg, series, budgets.astype(ds[BUDGET].dtype), fn)
    # the budgets each series ran: the normal budget next to a boundary is the nearest one it measured
    measured = np.isfinite(reg_array(reg, "ratio", series, budgets.astype(ds[BUDGET].dtype), fn).astype(float))
    groups = Series(tuple(d for d in series.dims if d != PROMPT), series.template.isel({PROMPT: 0}, drop=True))
    values = _main_regimes(blocks, _by_prompt(series), budgets, measured)
    values.update(_axes(values, prompts))
    out = xr.Dataset(wrap(VARIABLES, values, groups, {PROMPT: ([PROMPT], {PROMPT: ds[PROMPT].values})}),
                     attrs={"alpha": alpha})
    # a group with no ok run at any prompt is no group (a combination of a sparse file's labels)
    with_data = int(groups.unwrap(lat.notnull().any([d for d in (BUDGET, TRIAL, PROMPT) if d in lat.dims]).compute()).sum())
    out.attrs["summary"] = "\n".join([_summary(values, groups, prompts, with_data), *origin_lines(out)])
    return out


def _by_prompt(series: Series) -> np.ndarray:
    """``(group, prompt)``: the flat series index of each prompt length of each group (C order over the group dims)."""
    gpos = series.dims.index(PROMPT)
    idx = np.moveaxis(np.arange(series.size).reshape(series.shape), gpos, -1)
    return idx.reshape(-1, series.shape[gpos])


def _main_regimes(blocks: list[list[Block]], idx: np.ndarray, budgets: np.ndarray,
                  measured: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per group and prompt length (``idx``: :func:`_by_prompt`), where the main slow regime starts and ends and
    the normal budgets around it: the per-prompt variables of the result ``(group, prompt)``.

    ``measured`` ``(series, budget)``: the budgets each series ran (default: all). The normal budget before the
    onset and after the recovery is the nearest one the series measured, not the next budget of the grid."""
    if measured is None:
        measured = np.ones((len(blocks), budgets.size), dtype=bool)
    G, P = idx.shape
    out = {n: np.full((G, P), np.nan) for n in ("onset_budget", "onset_after", "recovery_budget", "recovery_before")}
    for g in range(G):
        for j in range(P):
            slow = [b for b in blocks[idx[g, j]] if b.kind == "slow"]
            if not slow:
                continue
            main = max(slow, key=lambda b: (b.last - b.first, b.ratio))
            ran = np.flatnonzero(measured[idx[g, j]])
            before, after = ran[ran < main.first], ran[ran > main.last]
            out["onset_budget"][g, j] = budgets[main.first]
            out["onset_after"][g, j] = budgets[before[-1]] if before.size else -np.inf
            out["recovery_budget"][g, j] = budgets[main.last]
            out["recovery_before"][g, j] = budgets[after[0]] if after.size else np.inf
    return out


def _axes(values: dict[str, np.ndarray], prompts: np.ndarray) -> dict[str, np.ndarray]:
    """Per group ``(group,)``: the prompt lengths showing the regime, the slopes of the onset and recovery
    in prompt_len compatible with every interval, the axis each lines up on and its threshold interval."""
    onset, onset_after = values["onset_budget"], values["onset_after"]
    rec, rec_before = values["recovery_budget"], values["recovery_before"]
    G = onset.shape[0]
    res = {f"{w}_{k}_{e}": np.full(G, np.nan) for w in ("onset", "recovery") for k in ("slope", "threshold")
           for e in ("lo", "hi")}
    axes = {w: np.full(G, "unknown", dtype=object) for w in ("onset", "recovery")}
    tol = 1e-9
    for g in range(G):
        have = np.isfinite(onset[g])
        if have.sum() < 2:
            continue
        p = prompts[have]
        # onset threshold interval (b_before, b_first]; a small epsilon turns the open end closed
        bounds = {"onset": (onset_after[g, have] + 1e-6, onset[g, have]),
                  "recovery": (rec[g, have], rec_before[g, have] - 1e-6)}
        for w, (lo, hi) in bounds.items():
            res[f"{w}_slope_lo"][g], res[f"{w}_slope_hi"][g] = slope_range(p, lo, hi)
            axes[w][g] = _axis((res[f"{w}_slope_lo"][g], res[f"{w}_slope_hi"][g]), tol)
            if axes[w][g] in ("budget", "total"):
                shift = p if axes[w][g] == "total" else 0.0
                res[f"{w}_threshold_lo"][g] = float(np.max(lo + shift))
                res[f"{w}_threshold_hi"][g] = float(np.min(hi + shift))
        # report the onset threshold as integer tokens: (after, first] -> [after + 1, first]
        if np.isfinite(res["onset_threshold_lo"][g]):
            res["onset_threshold_lo"][g] = np.ceil(res["onset_threshold_lo"][g])
        if np.isfinite(res["recovery_threshold_hi"][g]):
            res["recovery_threshold_hi"][g] = np.floor(res["recovery_threshold_hi"][g])
    return {"n_prompts": np.isfinite(onset).sum(axis=1).astype(np.int64), "onset_axis": axes["onset"].astype(str),
            "recovery_axis": axes["recovery"].astype(str), **res}


def _axis_words(axis: str) -> str:
    """An axis value of the result in the summary's words."""
    return {"ambiguous": "either axis (the grid cannot tell)", "neither": "neither axis"}.get(axis, axis)


def _summary(values: dict[str, np.ndarray], groups: Series, prompts: np.ndarray, with_data: int) -> str:
    """One line per group with a slow regime: the axis its onset and recovery line up on, with the evidence."""
    template, v = groups.template, values
    lines = []
    for g in range(groups.size):
        have = np.isfinite(v["onset_budget"][g])
        if not have.any():
            continue
        name = "/".join(str(scalar(x)) if d in ("model", "device") else f"{d}={scalar(x)}"
                        for d, x in groups.label(g).items() if d in ("model", "device") or n_values(template, d) > 1) or "all"
        firsts = ", ".join(f"{v['onset_budget'][g, j]:g} (P={prompts[j]:g})" for j in np.flatnonzero(have))
        lasts = ", ".join(f"{v['recovery_budget'][g, j]:g} (P={prompts[j]:g})" for j in np.flatnonzero(have))
        on_axis, re_axis = v["onset_axis"][g], v["recovery_axis"][g]
        if not (np.isfinite(v["onset_slope_lo"][g]) and np.isfinite(v["onset_slope_hi"][g])):
            # one prompt length shows the regime: nothing to tell budget from total length by
            j = int(np.flatnonzero(have)[0])
            a, b = v["onset_budget"][g, j], v["recovery_budget"][g, j]
            span = f"budget {a:g}" if a == b else f"budgets {a:g}-{b:g}"
            lines.append(f"{name}: slow regime at {span} with prompt_len {prompts[j]:g} only; whether onset and "
                         "recovery follow the budget or the total length needs the regime at a second prompt length")
            continue
        text = f"{name}: onset on {_axis_words(on_axis)}"
        if on_axis in ("budget", "total"):
            text += (f" (threshold {v['onset_threshold_lo'][g]:g}..{v['onset_threshold_hi'][g]:g} "
                     f"{'tokens total' if on_axis == 'total' else 'budget'})")
        text += (f", first anomalous budget {firsts}, slopes in prompt_len {fmt_fixed(v['onset_slope_lo'][g])}.."
                 f"{fmt_fixed(v['onset_slope_hi'][g])}; recovery on {_axis_words(re_axis)}")
        if re_axis in ("budget", "total"):
            text += (f" (last inside {v['recovery_threshold_lo'][g]:g}..{v['recovery_threshold_hi'][g]:g} "
                     f"{'tokens total' if re_axis == 'total' else 'budget'})")
        text += (f", last anomalous budget {lasts}, slopes {fmt_fixed(v['recovery_slope_lo'][g])}.."
                 f"{fmt_fixed(v['recovery_slope_hi'][g])}")
        lines.append(text)
    head = (f"boundaries: {len(lines)} of {with_data} groups show a slow regime "
            "(slope 0 in prompt_len = budget axis, -1 = total length)")
    return "\n".join([head, *lines])
