"""Did it change? Two datasets of the same cells compared: :func:`compare`.

For the cells both datasets measured (same series coordinates and budget;
the files may come from different hosts and hold different numbers of
trials): per series and budget, ``d_b = mean log B - mean log A`` (geometric means). The
budget, not the run, is the unit of evidence: the noise of every statement
is the scatter of ``d_b`` over the series' budgets (which holds runs, cells
and host states alike) plus the shifts a file's trials share (estimated from
the trials). The verdicts:

- *slower / faster*: the level of B/A over the budgets "elsewhere" (outside
  the regimes of both files and the local changes), a t-test with that noise;
- *B/A differs at some budgets*: the scan of B - A, an interaction test
  (inside an interval against outside, max-T over every interval of the
  series, so it holds for intervals chosen from the data);
- both tests of every series in one Benjamini-Hochberg family; in the
  series whose scan is significant, the changes proposed by the regimes of
  each file (:func:`analysis.regimes` on the shared cells) and the scan's
  own interval are confirmed by the same interaction test (Benjamini &
  Bogomolov's level for selected families): *appeared / vanished / moved*;
- a warning where the per-run noise of A and B differs by more than 2x or
  either is high (a loaded host, slow run states).

Methods and their measured error rates: docs/methods.md ("compare").

The package: this module compares and assembles the result;
:mod:`analysis.compare.statistics` holds the numbers (B/A per budget, its
noise, the scan and the tests), :mod:`analysis.compare.changes` the regime
changes the two files' regimes propose and the verdict line of a series.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from analysis.compare import changes as _cr
from analysis.compare import statistics as _cs
from analysis.core.common import check_axes, quiet
from analysis.core.labels import fmt_change, fmt_fixed, is_simulated, iter_series, series_name, varying_dims
from analysis.core.outputs import ResultVar
from analysis.core.stacked import levels
from analysis.errors import InputError

__all__ = ["FAIL_ON", "NOISE_RATIO", "NOISY", "VARIABLES", "compare", "fails"]

_TIME_VARS = ("order", "started_at")
_SEGMENT_FIELDS = ("segment_anomalous", "start", "end", "start_lo", "start_hi", "end_lo", "end_hi", "kind", "effect")
_SIDE_FIELDS = ("start", "end", "start_lo", "start_hi", "end_lo", "end_hi", "effect")

#: Per-run noise (sd of log runs in a cell) above which a file is called noisy, as in :mod:`analysis.regimes`.
NOISY = 0.1
#: Per-run noise of one file this many times the other's draws the noise warning.
NOISE_RATIO = 2.0
#: What ``--fail-on`` / :func:`fails` can test.
FAIL_ON: tuple[str, ...] = ("slower", "changed")

_B, _S, _C = "budget", "series", "change"
#: Every variable of the result, in order.
VARIABLES: dict[str, ResultVar] = {
    "ratio": ResultVar(_B, "geometric mean of B over geometric mean of A", "1"),
    "ratio_lo": ResultVar(_B, "ratio: CI lower bound (noise of one budget)", "1"),
    "ratio_hi": ResultVar(_B, "ratio: CI upper bound (noise of one budget)", "1"),
    "p": ResultVar(_B, "p-value of no change in the cell (noise of one budget)"),
    "q": ResultVar(_B, "BH q-value over every shared cell"),
    "cell_changed": ResultVar(_B, "q < alpha"),
    "n_a": ResultVar(_B, "runs with data in A"),
    "n_b": ResultVar(_B, "runs with data in B"),
    "shared": ResultVar(_B, "both datasets have data in the cell"),
    "anomalous_a": ResultVar(_B, "budget lies in a regime of A"),
    "anomalous_b": ResultVar(_B, "budget lies in a regime of B"),
    "series_ratio": ResultVar(_S, "B / A elsewhere (geometric mean over budgets)", "1"),
    "series_ratio_lo": ResultVar(_S, "series ratio: CI lower", "1"),
    "series_ratio_hi": ResultVar(_S, "series ratio: CI upper", "1"),
    "series_p": ResultVar(_S, "t-test of no change elsewhere (budget-level noise)"),
    "series_q": ResultVar(_S, "BH q-value across series (one family with local_p)"),
    "series_df": ResultVar(_S, "degrees of freedom of the series test (Satterthwaite)"),
    "series_mde": ResultVar(_S, "ratio found with 80% power by the series test at alpha", "1"),
    "n_budgets": ResultVar(_S, "shared budgets of the level (elsewhere)"),
    "local_start": ResultVar(_S, "scan of B - A: first budget of the interval that differs most"),
    "local_end": ResultVar(_S, "scan of B - A: last budget of that interval"),
    "local_ratio": ResultVar(_S, "scan of B - A: B/A in the interval over B/A elsewhere", "1"),
    "local_p": ResultVar(_S, "scan of B - A: max-T p-value of B/A the same at every budget"),
    "local_q": ResultVar(_S, "BH q-value of local_p (one family with series_p)"),
    "level_a": ResultVar(_S, "A elsewhere: geometric mean of its cells over the budgets of series_ratio", "{units}"),
    "level_b": ResultVar(_S, "B elsewhere: geometric mean of its cells over the budgets of series_ratio", "{units}"),
    "spread_a": ResultVar(_S, "per-run spread of A at level_a (level_a x noise_a)", "{units}"),
    "spread_b": ResultVar(_S, "per-run spread of B at level_b (level_b x noise_b)", "{units}"),
    "noise_a": ResultVar(_S, "per-run noise of A (pooled sd of log runs within a cell)", "1"),
    "noise_b": ResultVar(_S, "per-run noise of B (pooled sd of log runs within a cell)", "1"),
    "noise_warning": ResultVar(_S, "noise of A and B differs by more than 2x or either is high"),
    "slower": ResultVar(_S, "B significantly slower: its level, or a tested regime change"),
    "series_changed": ResultVar(_S, "significant level or scan: a change of B/A outside or at some budgets"),
    "verdict": ResultVar(_S, "one-line verdict"),
    "change_kind": ResultVar(_C, "vanished, appeared, moved, unconfirmed or persists"),
    "change_source": ResultVar(_C, "what proposed it: regimes (of A or B) or scan (of B - A)"),
    "change_confirmed": ResultVar(_C, "the test confirmed it (change_q < alpha)"),
    "change_ratio": ResultVar(_C, "B/A on the tested budgets over B/A elsewhere", "1"),
    "change_p": ResultVar(_C, "interaction test of B - A on the tested budgets (max-T)"),
    "change_q": ResultVar(_C, "its level after the correction across the dataset"),
    **{f"{side}_{f}": ResultVar(_C, f"{f.replace('_', ' ')} of the regime in {side.upper()}")
       for side in ("a", "b") for f in _SIDE_FIELDS},
}


def _check_settings(alpha: float, level: float, sweep_sd: float, labels: Sequence[str]) -> list[str]:
    """The settings of :func:`compare` in their domains (InputError); the two labels as strings."""
    if not 0 < alpha < 1:
        raise InputError(f"compare(): alpha must be in (0, 1), got {alpha!r}")
    if not 0 < level < 1:
        raise InputError(f"compare(): level must be in (0, 1), got {level!r}")
    if not (isinstance(sweep_sd, (int, float)) and math.isfinite(sweep_sd) and sweep_sd >= 0):
        raise InputError(f"compare(): sweep_sd must be a finite number >= 0, got {sweep_sd!r}")
    names = [str(x) for x in labels]
    if len(names) != 2:
        raise InputError(f"compare(): labels must be two names, got {names!r}")
    return names


def compare(
    a: xr.Dataset,
    b: xr.Dataset,
    var: str = "latency",
    *,
    alpha: float = 0.05,
    level: float = 0.95,
    labels: Sequence[str] = ("A", "B"),
    sweep_sd: float = 0.0,
    **regimes_kwargs: Any,
) -> xr.Dataset:
    """Compare dataset ``b`` against dataset ``a`` on the cells both measured.

    Parameters
    ----------
    a, b
        Datasets with ``var`` over ``budget`` (``trial`` optional; the
        counts may differ). Their series dims must match, except dims of
        length 1 present in one only (dropped). Runs whose status is not ok
        are ignored.
    var
        The variable compared (default ``latency``; values must be positive).
    alpha
        False discovery rate of each family of tests (cells; series levels;
        regime changes).
    level
        Confidence level of the intervals.
    labels
        Names of ``a`` and ``b`` in the summary (e.g. file names).
    sweep_sd
        The sd of a series' log level between repeated sweeps of the same
        configuration on one host, where known (default 0: not counted).
        Two files differ by this much with no change at all; it widens the
        series and cell intervals by ``2 sweep_sd^2`` in variance.
    **regimes_kwargs
        Settings of :func:`analysis.regimes` (method, penalty, min_effect, ...).

    Returns
    -------
    xarray.Dataset
        Over the shared series dims x budget:

        - ``ratio``: geometric mean of B over that of A (over trials); ``ratio_lo``, ``ratio_hi``:
          its CI, with the noise of one budget (the scatter of the series'
          log ratios over its budgets plus the shifts common to a file).
        - ``p``, ``q``: t-test of "no change" in the cell with that noise,
          BH q-value over every shared cell; ``cell_changed``: ``q < alpha``.
        - ``n_a``, ``n_b``: runs with data; ``shared``: both have at least one.
        - ``anomalous_a``, ``anomalous_b``: the budget lies in a regime of A / of B.

        Over the series dims:

        - ``series_ratio``, ``series_ratio_lo``, ``series_ratio_hi``: geometric
          mean of the cell ratios over the shared budgets "elsewhere" (outside
          every regime found in both files, every proposed change and the
          scan's interval where their test is significant by itself; a regime
          found in one file only with no significant B - A stays in), and its CI.
        - ``series_p``: its t-test (noise: the scatter of the budgets' log
          ratios, ``n_budgets - 1`` df, plus the trials' common shifts;
          ``series_df``: Satterthwaite df); ``series_q``: its BH q-value in
          one family with ``local_p`` (two tests per series).
        - ``series_mde``: the ratio (or its inverse) that test finds with
          80 % power at ``alpha`` (before the correction).
        - ``n_budgets``: budgets in it.
        - ``local_start``, ``local_end``, ``local_ratio``, ``local_p``,
          ``local_q``: the scan of B - A: the interval where B/A differs most
          from elsewhere, B/A there over B/A elsewhere, the max-T p-value of
          "B/A is the same at every budget" and its BH q-value.
        - ``level_a``, ``level_b``: each file's typical ``var`` over the budgets of
          ``series_ratio`` (geometric mean of its cells there, in ``var``'s units:
          ``level_b / level_a == series_ratio``); ``spread_a``, ``spread_b``: the
          per-run spread at that level (``level x noise``; NaN with one run a cell).
        - ``noise_a``, ``noise_b``: per-run noise of each file (pooled sd of
          log runs within a cell); ``noise_warning``: they differ by more
          than :data:`NOISE_RATIO` or either is above :data:`NOISY`.
        - ``slower``: the level is significantly above 1, or a confirmed
          change has B/A higher on its budgets (a slow regime appeared, a fast
          one vanished, a regime moved onto new budgets, grew).
        - ``series_changed``: ``series_q`` or ``local_q`` below ``alpha``
          (every such series has a confirmed change or a significant level).
        - ``verdict`` (str): one line, e.g. ``gpt2 mps cache on: regime
          512-624 (x4.10) vanished (B/A there x0.25 of elsewhere, q=0.001);
          elsewhere 1.04x [1.01, 1.07], q=0.003``.

        Over the series dims x ``change`` (padded; kind ""):

        - ``change_kind`` (str): ``vanished``, ``appeared``, ``moved``,
          ``unconfirmed`` (found in one file only, but B - A does not differ
          significantly there) or ``persists``.
        - ``change_source`` (str): ``regimes`` (proposed by the regimes of A
          and B) or ``scan`` (the scan's interval, named by the file whose
          latency there deviates more from a smooth curve through its other
          budgets; its ``effect`` is that deviation).
        - ``change_confirmed``: its test confirmed it (``change_q < alpha``).
        - ``change_ratio``: B/A on the tested budgets over B/A elsewhere;
          ``change_p``: the interaction test (max-T over every interval of
          the series; NaN: not tested); ``change_q``: its level after the
          correction across the dataset (``max(local_q, change_p m / R)``,
          see docs/methods.md).
        - ``a_start``, ``a_end``, ``a_start_lo``, ``a_start_hi``, ``a_end_lo``,
          ``a_end_hi``, ``a_effect``: the regime in A (NaN: none).
        - ``b_start``, ``b_end``, ``b_start_lo``, ``b_start_hi``, ``b_end_lo``,
          ``b_end_hi``, ``b_effect``: the same in B.

        Attrs: ``var``, ``alpha``, ``level``, ``sweep_sd``, ``label_a``,
        ``label_b``, ``simulated_a``, ``simulated_b`` (0/1),
        ``n_shared_cells``, ``regimes_note``, ``warning`` (the noise warning,
        "" when none) and ``summary`` (the verdicts).

    Raises
    ------
    InputError
        When either is not a Dataset with ``var`` over ``budget``, their
        series dims differ, a setting is out of range, or they share no cell.
    """
    labels = _check_settings(alpha, level, sweep_sd, labels)
    sa, sb = _prepare(a, var, labels[0]), _prepare(b, var, labels[1])
    sa, sb = _same_dims(sa, sb, var, labels)
    sdims = [str(d) for d in sa[var].dims if d not in ("budget", "trial")]
    sb = sb.transpose(*[d for d in sa.dims if d in sb.dims], ...)
    sa, sb = xr.align(sa, sb, join="inner", exclude=["trial"])
    xa = sa[var].transpose(*sdims, "budget", "trial")
    xb = sb[var].transpose(*sdims, "budget", "trial")
    S = int(np.prod([xa.sizes[d] for d in sdims], dtype=np.int64))
    nbud = xa.sizes["budget"]
    if S == 0 or nbud == 0:
        raise InputError(f"{labels[0]!r} and {labels[1]!r} share no cell with data: {_describe(a, b, var)}")
    LA = np.log(np.asarray(xa.values, dtype=float).reshape(S, nbud, -1))
    LB = np.log(np.asarray(xb.values, dtype=float).reshape(S, nbud, -1))
    shared = (np.isfinite(LA).any(-1)) & (np.isfinite(LB).any(-1))
    if not shared.any():
        raise InputError(f"{labels[0]!r} and {labels[1]!r} share no cell with data: {_describe(a, b, var)}")
    LA = np.where(shared[..., None], LA, np.nan)
    LB = np.where(shared[..., None], LB, np.nan)
    mA, nA = _cs.centers(LA)
    mB, nB = _cs.centers(LB)
    d = np.where(shared, mB - mA, np.nan)

    reg_a, reg_b, note = _regimes(sa, sb, var, shared, sdims, nbud, alpha, regimes_kwargs)
    anom_a = _budget_array(reg_a, "anomalous", sdims, S, nbud) & shared
    anom_b = _budget_array(reg_b, "anomalous", sdims, S, nbud) & shared
    budgets = np.asarray(xa["budget"].values, dtype=float)
    proposals = _proposals(reg_a, reg_b, sdims, S, d, budgets)
    local = _scan(d, budgets)
    common = (*_cs.trial_variance(LA), *_cs.trial_variance(LB))
    elsewhere = shared & ~_apart(proposals, local, budgets, alpha)
    ser = _cs.level_stats(d, elsewhere, common, level=level, alpha=alpha, sweep_sd=sweep_sd)
    # one family: each series' level test and its scan (B/A the same at every budget); BH across all of them
    q_all = _cs.bh(np.concatenate([ser["p"], local["p"]]))
    ser["q"], local["q"] = q_all[:S], q_all[S:]
    m, R = int(np.isfinite(q_all).sum()), int((np.nan_to_num(q_all, nan=1.0) < alpha).sum())
    changes = _decide(proposals, local, d, mA, mB, budgets, m, R, alpha)
    cell = _cs.cell_stats(d, ser["cell_se"], ser["cell_df"], level=level)
    cell["q"] = _cs.bh(cell["p"])
    noise_a, noise_b = _cs.run_noise(LA), _cs.run_noise(LB)

    template = xa.isel(budget=0, trial=0, drop=True)
    varying = varying_dims(template, sdims)
    warn = _noise_flags(noise_a, noise_b)
    levels = _levels(mA, mB, np.isfinite(np.where(elsewhere, d, np.nan)), noise_a, noise_b)
    units = str(a[var].attrs.get("units", ""))
    verdicts = []
    for s, (_, coords) in enumerate(iter_series(template, sdims)):
        name = series_name(coords, varying)
        if not shared[s].any():
            verdicts.append(f"{name}: no shared cell")
            continue
        lvl = {k: float(ser[k][s]) for k in ("log_ratio", "lo", "hi", "q", "mde", "n")}
        note_s = f"noisy: per-run noise A {fmt_fixed(noise_a[s])}, B {fmt_fixed(noise_b[s])}" if warn[s] else ""
        absolute = fmt_change(float(levels["level_a"][s]), float(levels["spread_a"][s]), float(levels["level_b"][s]),
                              float(levels["spread_b"][s]), units)
        verdicts.append(_cr.verdict(name, changes[s], lvl, alpha, note_s, absolute))
    sig = np.nan_to_num(ser["q"], nan=1.0) < alpha
    local_sig = np.nan_to_num(local["q"], nan=1.0) < alpha
    up = np.array([any(c.confirmed and c.log_diff > 0 for c in ch) for ch in changes], dtype=bool)
    with np.errstate(invalid="ignore"):
        slower = (sig & (ser["log_ratio"] > 0)) | up
    values = _values(cell, ser, local, d, nA, nB, shared, anom_a, anom_b, noise_a, noise_b, warn, slower,
                     sig | local_sig, verdicts, changes, alpha)
    values.update(levels)
    out = _assemble(xa, sdims, values, max([len(c) for c in changes] + [1]), units=units)
    out.attrs.update({
        "var": var, "alpha": float(alpha), "level": float(level), "sweep_sd": float(sweep_sd),
        "label_a": labels[0], "label_b": labels[1],
        "simulated_a": int(is_simulated(a.attrs)), "simulated_b": int(is_simulated(b.attrs)),
        "n_shared_cells": int(shared.sum()), "regimes_note": note,
        "warning": _warning_text(noise_a, noise_b, warn, labels),
    })
    out.attrs["summary"] = _summary(out, verdicts)
    return out


def fails(result: xr.Dataset, on: str) -> bool:
    """Whether a :func:`compare` result fails a check: ``"slower"`` (a series is significantly slower) or
    ``"changed"`` (a series changed either way, or a regime appeared, vanished or moved).

    Raises
    ------
    InputError
        When ``on`` is not one of :data:`FAIL_ON` or ``result`` lacks the variable.
    """
    if on not in FAIL_ON:
        raise InputError(f"fails(): on must be one of {FAIL_ON!r}, got {on!r}")
    name = "slower" if on == "slower" else "series_changed"
    if not isinstance(result, xr.Dataset) or name not in result:
        raise InputError(f"fails() needs the Dataset returned by analysis.compare(); it lacks {name!r}")
    return bool(result[name].any())


# ----------------------------------------------------------------------------- inputs
def _prepare(ds: Any, var: str, label: str) -> xr.Dataset:
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"compare() needs two xarray.Datasets; {label!r} is a {type(ds).__name__!r}")
    if var not in ds.data_vars:
        raise InputError(f"compare(): {label!r} lacks variable {var!r}; it has {sorted(map(str, ds.data_vars))!r}")
    if "budget" not in ds[var].dims:
        raise InputError(f"compare(): {var!r} of {label!r} has no 'budget' dim; its dims are {list(ds[var].dims)!r}")
    ds = check_axes(ds, "compare", [var])
    keep = [var] + [v for v in _TIME_VARS if v in ds.data_vars]
    out = ds[keep]
    val = out[var]
    if "status" in ds.data_vars:
        val = val.where(ds["status"] == 0)
    if "trial" not in val.dims:
        val = val.expand_dims(trial=[0], axis=-1)
    if "step" in val.dims:
        raise InputError(f"compare(): {var!r} has a 'step' dim; compare a per-run variable such as 'latency'")
    if np.issubdtype(val.dtype, np.number) and bool((val <= 0).any()):
        raise InputError(f"compare(): {var!r} of {label!r} has values <= 0; ratios need positive values")
    out = out.assign({var: val.astype(float)})
    stacked = {str(n) for d in out.dims for n in levels(out, d)}  # the levels of stacked series stay its index
    return out.drop_vars([c for c in out.coords if c not in out.dims and c not in stacked])


def _same_dims(sa: xr.Dataset, sb: xr.Dataset, var: str, labels: list[str]) -> tuple[xr.Dataset, xr.Dataset]:
    da, db = set(sa[var].dims) - {"trial"}, set(sb[var].dims) - {"trial"}
    for ds, extra, name in ((sa, da - db, labels[0]), (sb, db - da, labels[1])):
        big = [d for d in extra if ds.sizes[d] > 1]
        if big:
            raise InputError(f"compare(): {name!r} has dim {big[0]!r} ({ds.sizes[big[0]]} values) that the other "
                             f"lacks; select one value first")
    sa = sa.squeeze([d for d in da - db], drop=True)
    sb = sb.squeeze([d for d in db - da], drop=True)
    return sa, sb


def _describe(a: xr.Dataset, b: xr.Dataset, var: str) -> str:
    parts = []
    for d in a[var].dims:
        if d in ("trial",) or d not in b[var].dims or d not in a.indexes or d not in b.indexes:
            continue
        va, vb = [str(x) for x in a[d].values.tolist()], [str(x) for x in b[d].values.tolist()]
        if not set(va) & set(vb):
            parts.append(f"{d} {va[:5]!r} vs {vb[:5]!r}")
    return "; ".join(parts) or "their shared coordinates hold no run with data in both"


# ----------------------------------------------------------------------------- regimes
def _regimes(sa: xr.Dataset, sb: xr.Dataset, var: str, shared: np.ndarray, sdims: list[str], nbud: int,
             alpha: float, kwargs: dict[str, Any]) -> tuple[xr.Dataset | None, xr.Dataset | None, str]:
    from analysis.regimes import regimes

    if nbud < 3:
        return None, None, f"regimes not compared: only {nbud} shared budget(s)"
    mask = xr.DataArray(shared.reshape([sa.sizes[d] for d in sdims] + [nbud]), dims=(*sdims, "budget"),
                        coords={d: sa[d] for d in (*sdims, "budget")})
    out = []
    for ds in (sa, sb):
        ds = ds.assign({var: ds[var].where(mask)})
        with quiet():
            out.append(regimes(ds, var, alpha=alpha, **kwargs))
    return out[0], out[1], ("regimes of each dataset on the shared cells (analysis.regimes) propose the changes; "
                            "an interaction test of B - A decides them")


def _budget_array(reg: xr.Dataset | None, name: str, sdims: list[str], S: int, nbud: int) -> np.ndarray:
    if reg is None:
        return np.zeros((S, nbud), dtype=bool)
    return np.asarray(reg[name].transpose(*sdims, "budget").values, dtype=bool).reshape(S, nbud)


def _segment_arrays(reg: xr.Dataset | None, sdims: list[str], S: int) -> dict[str, np.ndarray]:
    if reg is None or "segment_anomalous" not in reg:
        return {}
    return {k: np.asarray(reg[k].transpose(*sdims, ...).values).reshape(S, -1) for k in _SEGMENT_FIELDS if k in reg}


def _proposals(reg_a: xr.Dataset | None, reg_b: xr.Dataset | None, sdims: list[str], S: int, d: np.ndarray,
               budgets: np.ndarray) -> list[list[_cr.Change]]:
    """Per series: the regime changes the two regimes() results propose, each with its interaction test."""
    ga, gb = _segment_arrays(reg_a, sdims, S), _segment_arrays(reg_b, sdims, S)
    out = []
    for s in range(S):
        pairs = _cr.match(_cr.segments(ga, s) if ga else [], _cr.segments(gb, s) if gb else [])
        out.append([_cr.test(c, d[s], budgets) for c in pairs])
    return out


def _apart(proposals: list[list[_cr.Change]], local: dict[str, Any], budgets: np.ndarray,
           alpha: float) -> np.ndarray:
    """Per series and budget: kept out of the level ("elsewhere"): the budgets of a regime found in both files,
    of a proposed change whose test is significant by itself (p < alpha, before any correction), and of the
    scan's interval where that is. A regime found in one file only whose B - A does not differ stays in: leaving
    it out would choose the budgets of the level by the noise of one file."""
    out = np.zeros(local["mask"].shape, dtype=bool)
    for s, ch in enumerate(proposals):
        for c in ch:
            if c.proposed == "persists" or (math.isfinite(c.p) and c.p < alpha):
                for g in (c.a, c.b):
                    if g is not None:
                        out[s] |= (budgets >= g.start) & (budgets <= g.end)
        if math.isfinite(local["p"][s]) and local["p"][s] < alpha:
            out[s] |= local["mask"][s]
    return out


def _scan(d: np.ndarray, budgets: np.ndarray) -> dict[str, Any]:
    """Per series: the scan of B - A over its shared budgets (interval, log difference, max-T p, budget mask)."""
    S, nbud = d.shape
    out: dict[str, Any] = {"best": [], "p": np.full(S, np.nan), "diff": np.full(S, np.nan),
                           "start": np.full(S, np.nan), "end": np.full(S, np.nan),
                           "mask": np.zeros((S, nbud), dtype=bool)}
    for s in range(S):
        ok = np.flatnonzero(np.isfinite(d[s]))
        idx = ok[np.argsort(budgets[ok], kind="stable")]
        best = _cs.scan(d[s, idx])
        out["best"].append(best)
        i, j, diff, p = best
        if j > i:
            out["p"][s], out["diff"][s] = p, diff
            out["start"][s], out["end"][s] = budgets[idx[i]], budgets[idx[j - 1]]
            out["mask"][s, idx[i:j]] = True
    return out


def _decide(proposals: list[list[_cr.Change]], local: dict[str, Any], d: np.ndarray, mA: np.ndarray, mB: np.ndarray,
            budgets: np.ndarray, m: int, R: int, alpha: float) -> list[list[_cr.Change]]:
    """Confirm the changes of the series whose scan is significant (BH across the family of ``m`` tests, ``R``
    rejected): a change is confirmed where its max-T p-value is below ``alpha R / m`` (Benjamini & Bogomolov
    2014: the families selected by BH, then tested within at that level); ``q`` = ``max(series q, p m / R)``."""
    out = []
    for s, ch in enumerate(proposals):
        qs = float(local["q"][s])
        qs = qs if math.isfinite(qs) else 1.0

        def level_q(p: float) -> float:
            return max(qs, min(1.0, p * m / max(R, 1))) if math.isfinite(p) else math.nan

        decided = [_cr.decide(c, level_q(c.p), alpha) if c.proposed != "persists" else c for c in ch]
        if qs < alpha:
            decided = _cr.scan_change(d[s], mA[s], mB[s], budgets, local["best"][s], level_q(local["p"][s]),
                                      decided)
        out.append(decided)
    return out


# ----------------------------------------------------------------------------- noise warning
def _noise_flags(noise_a: np.ndarray, noise_b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.maximum(noise_a / noise_b, noise_b / noise_a)
        return (np.nan_to_num(ratio, nan=1.0) > NOISE_RATIO) | (np.nan_to_num(noise_a) > NOISY) | (
            np.nan_to_num(noise_b) > NOISY)


def _warning_text(noise_a: np.ndarray, noise_b: np.ndarray, warn: np.ndarray, labels: list[str]) -> str:
    """One paragraph naming the likely cause, from the series with the warning (medians over them)."""
    if not warn.any():
        return ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        na, nb = float(np.nanmedian(noise_a[warn])), float(np.nanmedian(noise_b[warn]))
    la, lb = labels
    k, n = int(warn.sum()), warn.size
    head = f"Warning: per-run noise (sd of log runs within a cell) {la} {fmt_fixed(na)}, {lb} {fmt_fixed(nb)} " \
           f"(median of the {k} of {n} series concerned). "
    if math.isfinite(na) and math.isfinite(nb) and max(na, nb) > NOISE_RATIO * min(na, nb):
        loud, calm = (lb, la) if nb > na else (la, lb)
        return head + (f"{loud} is {fmt_fixed(max(na, nb) / max(min(na, nb), 1e-12), 1)}x noisier than {calm}: it likely ran "
                       f"on a loaded host (other processes, thermal or power throttling) or in slow run states, so its "
                       f"ratio may show the host's state rather than a change of the code or setup; measure both on "
                       f"the same quiet host before trusting it.")
    return head + (f"Noise above {NOISY:g}: a loaded host or slow run states (whole runs fast or slow); the tests "
                   f"count this noise, so only large changes can be seen (see series_mde).")


# ----------------------------------------------------------------------------- output
def _values(cell: dict[str, np.ndarray], ser: dict[str, np.ndarray], local: dict[str, Any], d: np.ndarray,
            nA: np.ndarray, nB: np.ndarray,
            shared: np.ndarray, anom_a: np.ndarray, anom_b: np.ndarray, noise_a: np.ndarray, noise_b: np.ndarray,
            warn: np.ndarray, slower: np.ndarray, changed: np.ndarray, verdicts: list[str],
            changes: list[list[_cr.Change]], alpha: float) -> dict[str, np.ndarray]:
    S = len(changes)
    K = max([len(c) for c in changes] + [1])
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", over="ignore"):
        out.update({
            "ratio": np.exp(d), "ratio_lo": np.exp(cell["lo"]), "ratio_hi": np.exp(cell["hi"]), "p": cell["p"],
            "q": cell["q"], "cell_changed": np.nan_to_num(cell["q"], nan=1.0) < alpha, "n_a": nA, "n_b": nB,
            "shared": shared, "anomalous_a": anom_a, "anomalous_b": anom_b,
            "series_ratio": np.exp(ser["log_ratio"]), "series_ratio_lo": np.exp(ser["lo"]),
            "series_ratio_hi": np.exp(ser["hi"]), "series_p": ser["p"], "series_q": ser["q"],
            "series_df": ser["df"], "series_mde": np.exp(ser["mde"]), "n_budgets": ser["n"],
            "local_start": local["start"], "local_end": local["end"], "local_ratio": np.exp(local["diff"]),
            "local_p": local["p"], "local_q": local["q"],
            "noise_a": noise_a, "noise_b": noise_b, "noise_warning": warn, "slower": slower,
            "series_changed": changed, "verdict": np.array(verdicts, dtype=object).astype(str),
        })
    kind = np.full((S, K), "", dtype=object)
    source = np.full((S, K), "", dtype=object)
    confirmed = np.zeros((S, K), dtype=bool)
    fields = {k: np.full((S, K), np.nan) for k in ("change_ratio", "change_p", "change_q")}
    fields.update({f"{side}_{f}": np.full((S, K), np.nan) for side in ("a", "b") for f in _SIDE_FIELDS})
    for s, ch in enumerate(changes):
        for k, c in enumerate(ch):
            kind[s, k], source[s, k], confirmed[s, k] = c.kind, c.source, c.confirmed
            fields["change_ratio"][s, k] = math.exp(c.log_diff) if math.isfinite(c.log_diff) else math.nan
            fields["change_p"][s, k], fields["change_q"][s, k] = c.p, c.q
            for side, g in (("a", c.a), ("b", c.b)):
                if g is not None:
                    for f in _SIDE_FIELDS:
                        fields[f"{side}_{f}"][s, k] = getattr(g, f)
    out["change_kind"] = kind.astype(str)
    out["change_source"] = source.astype(str)
    out["change_confirmed"] = confirmed
    out.update(fields)
    return out


def _levels(mA: np.ndarray, mB: np.ndarray, use: np.ndarray, noise_a: np.ndarray,
            noise_b: np.ndarray) -> dict[str, np.ndarray]:
    """Per series: each file's level over the budgets of the series ratio (``use``; the geometric mean of
    its cell centres, so ``level_b / level_a`` is the series ratio) and its per-run spread there."""
    n = use.sum(axis=1)
    with quiet():
        la = np.where(n > 0, np.exp(np.nanmean(np.where(use, mA, np.nan), axis=1)), np.nan)
        lb = np.where(n > 0, np.exp(np.nanmean(np.where(use, mB, np.nan), axis=1)), np.nan)
    return {"level_a": la, "level_b": lb, "spread_a": la * noise_a, "spread_b": lb * noise_b}


def _assemble(xa: xr.DataArray, sdims: list[str], values: dict[str, np.ndarray], K: int, *,
              units: str = "") -> xr.Dataset:
    shape = [xa.sizes[d] for d in sdims]
    dims = {_B: (*sdims, "budget"), _S: tuple(sdims), _C: (*sdims, "change")}
    extra = {_B: [xa.sizes["budget"]], _S: [], _C: [K]}
    coords: dict[str, Any] = {d: xa[d].values for d in (*sdims, "budget")}
    data = {name: (dims[v.over], np.asarray(values[name]).reshape(shape + extra[v.over]), v.attrs(units=units))
            for name, v in VARIABLES.items()}
    out = xr.Dataset(data, coords=coords | {"change": np.arange(K)})
    for d in sdims:  # stacked series (several files): their levels, as in the inputs
        index = xa.indexes.get(d)
        if levels(xa, d) and index is not None:
            out = out.drop_vars(d).assign_coords(xr.Coordinates.from_pandas_multiindex(index, d))
    return out


def _summary(out: xr.Dataset, verdicts: list[str]) -> str:
    a = out.attrs
    n_changed = int(out["series_changed"].sum())
    n_slower = int(out["slower"].sum())
    head = (f"{a['label_b']} vs {a['label_a']} ({a['var']}, {a['n_shared_cells']} shared cells, "
            f"{len(verdicts)} series): {n_changed} changed, {n_slower} slower.")
    lines = [head]
    if a["warning"]:
        lines.append(a["warning"])
    lines += ["  " + v for v in verdicts[:40]]
    if len(verdicts) > 40:
        lines.append(f"  ... and {len(verdicts) - 40} more")
    sweep = (f"a declared sweep-to-sweep sd of {a['sweep_sd']:g}" if a["sweep_sd"] > 0 else
             "not the difference between two sweeps of one host (declare it with sweep_sd)")
    lines.append(f"Noise of the intervals and tests: the scatter of B/A over each series' budgets and the shifts "
                 f"its trials share; {sweep}.")
    if a["simulated_a"] or a["simulated_b"]:
        lines.append("At least one dataset is simulated.")
    return "\n".join(lines)
