"""Did it change? Two datasets of the same cells compared: :func:`compare`.

For the cells both datasets measured (same series coordinates and budget;
the files may come from different hosts and hold different numbers of
trials), the ratio B/A of the median over trials per cell and per series,
with confidence intervals and Benjamini-Hochberg corrected tests, and the
regimes of each (:func:`analysis.regimes` on the shared cells) matched:
which appear, vanish, move or persist. One verdict line per series.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from analysis import _compare_regimes as _cr
from analysis import _compare_stats as _cs
from analysis._common import check_axes
from analysis._labels import is_simulated, iter_series, series_name, varying_dims
from analysis._regimes_vars import SEGMENT_BOUNDS
from analysis.errors import InputError
from analysis.stats import bh

__all__ = ["compare"]

_TIME_VARS = ("order", "started_at")
_REGIME_FIELDS = ("segment_anomalous", *SEGMENT_BOUNDS, "kind", "effect")


def compare(
    a: xr.Dataset,
    b: xr.Dataset,
    var: str = "latency",
    *,
    alpha: float = 0.05,
    level: float = 0.95,
    labels: Sequence[str] = ("A", "B"),
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
        False discovery rate of the tests (cells, series and regimes).
    level
        Confidence level of the intervals.
    labels
        Names of ``a`` and ``b`` in the summary (e.g. file names).
    **regimes_kwargs
        Settings of :func:`analysis.regimes` (method, penalty, min_effect, ...).

    Returns
    -------
    xarray.Dataset
        Over the shared series dims x budget:

        - ``ratio``: median of B over median of A; ``ratio_lo``, ``ratio_hi``: its CI.
        - ``p``, ``q``: z-test of "no change" (robust noise from the trials),
          BH q-value over every shared cell.
        - ``cell_changed``: ``q < alpha``.
        - ``n_a``, ``n_b``: runs with data; ``shared``: both have at least one.
        - ``anomalous_a``, ``anomalous_b``: the budget lies in a regime of A / of B.

        Over the series dims:

        - ``series_ratio``, ``series_ratio_lo``, ``series_ratio_hi``: geometric
          mean of the cell ratios over the shared budgets outside every
          regime of A and B ("elsewhere"), and its CI.
        - ``series_p``, ``series_q``: its test and BH q-value across series.
        - ``n_budgets``: budgets in it.
        - ``series_changed``: significant ratio, or a regime appeared, vanished or moved.
        - ``verdict`` (str): one line, e.g. ``gpt2 mps cache on: regime
          512-624 (x4.10) vanished; elsewhere 1.04x [1.01, 1.07], q=0.003``.

        Over the series dims x ``change`` (padded; kind ""):

        - ``change_kind`` (str): ``vanished``, ``appeared``, ``moved`` or ``persists``.
        - ``a_start``, ``a_end``, ``a_start_lo``, ``a_start_hi``, ``a_end_lo``,
          ``a_end_hi``, ``a_effect``: the regime in A (NaN: none).
        - ``b_start`` ... ``b_effect``: the same in B.

        Attrs: ``var``, ``alpha``, ``level``, ``label_a``, ``label_b``,
        ``simulated_a``, ``simulated_b`` (0/1), ``n_shared_cells``,
        ``regimes_note`` and ``summary`` (the verdicts).

    Raises
    ------
    InputError
        When either is not a Dataset with ``var`` over ``budget``, their
        series dims differ, a setting is out of range, or they share no cell.
    """
    if not 0 < alpha < 1:
        raise InputError(f"compare(): alpha must be in (0, 1), got {alpha!r}")
    if not 0 < level < 1:
        raise InputError(f"compare(): level must be in (0, 1), got {level!r}")
    labels = [str(x) for x in labels]
    if len(labels) != 2:
        raise InputError(f"compare(): labels must be two names, got {labels!r}")
    sa, sb = _prepare(a, var, labels[0]), _prepare(b, var, labels[1])
    sa, sb = _same_dims(sa, sb, var, labels)
    sdims = [d for d in sa[var].dims if d not in ("budget", "trial")]
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
    cell = _cs.cell_stats(LA, LB, level=level)
    cell["q"] = bh(cell["p"])

    reg_a, reg_b, note = _regimes(sa, sb, var, shared, sdims, S, nbud, alpha, regimes_kwargs)
    anom_a = _budget_array(reg_a, "anomalous", sdims, S, nbud)
    anom_b = _budget_array(reg_b, "anomalous", sdims, S, nbud)
    ser = _cs.series_stats(cell, shared & ~anom_a & ~anom_b, level=level)

    changes: list[list[_cr.Change]] = []
    ga = _segment_arrays(reg_a, sdims, S)
    gb = _segment_arrays(reg_b, sdims, S)
    for s in range(S):
        sa_seg = _cr.segments(ga, s) if ga else []
        sb_seg = _cr.segments(gb, s) if gb else []
        changes.append(_cr.match(sa_seg, sb_seg))
    template = xa.isel(budget=0, trial=0, drop=True)
    varying = varying_dims(template, sdims)
    verdicts = []
    for s, (_, coords) in enumerate(iter_series(template, sdims)):
        if not shared[s].any():
            verdicts.append(f"{series_name(coords, varying)}: no shared cell")
            continue
        verdicts.append(_cr.verdict(series_name(coords, varying), changes[s], ser["log_ratio"][s], ser["lo"][s],
                                    ser["hi"][s], ser["q"][s], alpha, int(ser["n"][s])))
    moved = np.array([any(c.kind != "persists" for c in ch) for ch in changes])
    out = _assemble(xa, sdims, S, nbud, cell, ser, shared, anom_a, anom_b, changes, verdicts, moved, alpha)
    out.attrs.update({
        "var": var, "alpha": float(alpha), "level": float(level), "label_a": labels[0], "label_b": labels[1],
        "simulated_a": int(is_simulated(a.attrs)), "simulated_b": int(is_simulated(b.attrs)),
        "n_shared_cells": int(shared.sum()), "regimes_note": note,
    })
    out.attrs["summary"] = _summary(out, verdicts)
    return out


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
    return out.drop_vars([c for c in out.coords if c not in out.dims])


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
def _regimes(sa: xr.Dataset, sb: xr.Dataset, var: str, shared: np.ndarray, sdims: list[str], S: int, nbud: int,
             alpha: float, kwargs: dict[str, Any]) -> tuple[xr.Dataset | None, xr.Dataset | None, str]:
    from analysis.regimes import regimes

    if nbud < 3:
        return None, None, f"regimes not compared: only {nbud} shared budget(s)"
    mask = xr.DataArray(shared.reshape([sa.sizes[d] for d in sdims] + [nbud]), dims=(*sdims, "budget"),
                        coords={d: sa[d] for d in (*sdims, "budget")})
    out = []
    for ds in (sa, sb):
        ds = ds.assign({var: ds[var].where(mask)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(regimes(ds, var, alpha=alpha, **kwargs))
    return out[0], out[1], "regimes of each dataset on the shared cells (analysis.regimes)"


def _budget_array(reg: xr.Dataset | None, name: str, sdims: list[str], S: int, nbud: int) -> np.ndarray:
    if reg is None:
        return np.zeros((S, nbud), dtype=bool)
    return np.asarray(reg[name].transpose(*sdims, "budget").values, dtype=bool).reshape(S, nbud)


def _segment_arrays(reg: xr.Dataset | None, sdims: list[str], S: int) -> dict[str, np.ndarray]:
    if reg is None:
        return {}
    return {k: np.asarray(reg[k].transpose(*sdims, "segment").values).reshape(S, -1) for k in _REGIME_FIELDS}


# ----------------------------------------------------------------------------- output
def _assemble(xa: xr.DataArray, sdims: list[str], S: int, nbud: int, cell: dict[str, np.ndarray],
              ser: dict[str, np.ndarray], shared: np.ndarray, anom_a: np.ndarray, anom_b: np.ndarray,
              changes: list[list[_cr.Change]], verdicts: list[str], moved: np.ndarray, alpha: float) -> xr.Dataset:
    shape = [xa.sizes[d] for d in sdims]
    coords: dict[str, Any] = {d: xa[d].values for d in (*sdims, "budget")}
    SB, SS, SC = (*sdims, "budget"), tuple(sdims), (*sdims, "change")

    def sb(v: np.ndarray) -> np.ndarray:
        return np.asarray(v).reshape(shape + [nbud])

    def ss(v: np.ndarray) -> np.ndarray:
        return np.asarray(v).reshape(shape)

    K = max([len(c) for c in changes] + [1])
    fields: dict[str, np.ndarray] = {"change_kind": np.full((S, K), "", dtype=object)}
    for side in ("a", "b"):
        for f in (*SEGMENT_BOUNDS, "effect"):
            fields[f"{side}_{f}"] = np.full((S, K), np.nan)
    for s, ch in enumerate(changes):
        for k, c in enumerate(ch):
            fields["change_kind"][s, k] = c.kind
            for side, g in (("a", c.a), ("b", c.b)):
                if g is not None:
                    for f in (*SEGMENT_BOUNDS, "effect"):
                        fields[f"{side}_{f}"][s, k] = getattr(g, f)
    q_ok = np.nan_to_num(ser["q"], nan=1.0) < alpha
    with np.errstate(invalid="ignore"):
        data = {
            "ratio": (SB, sb(np.exp(cell["log_ratio"])), {"long_name": "median B / median A", "units": "1"}),
            "ratio_lo": (SB, sb(np.exp(cell["lo"])), {"long_name": "ratio: CI lower bound", "units": "1"}),
            "ratio_hi": (SB, sb(np.exp(cell["hi"])), {"long_name": "ratio: CI upper bound", "units": "1"}),
            "p": (SB, sb(cell["p"]), {"long_name": "p-value of no change in the cell"}),
            "q": (SB, sb(cell["q"]), {"long_name": "BH q-value over every shared cell"}),
            "cell_changed": (SB, sb(np.nan_to_num(cell["q"], nan=1.0) < alpha), {"long_name": "q < alpha"}),
            "n_a": (SB, sb(cell["nA"]), {"long_name": "runs with data in A"}),
            "n_b": (SB, sb(cell["nB"]), {"long_name": "runs with data in B"}),
            "shared": (SB, sb(shared), {"long_name": "both datasets have data in the cell"}),
            "anomalous_a": (SB, sb(anom_a), {"long_name": "budget lies in a regime of A"}),
            "anomalous_b": (SB, sb(anom_b), {"long_name": "budget lies in a regime of B"}),
            "series_ratio": (SS, ss(np.exp(ser["log_ratio"])), {"long_name": "B / A outside regimes", "units": "1"}),
            "series_ratio_lo": (SS, ss(np.exp(ser["lo"])), {"long_name": "series ratio: CI lower", "units": "1"}),
            "series_ratio_hi": (SS, ss(np.exp(ser["hi"])), {"long_name": "series ratio: CI upper", "units": "1"}),
            "series_p": (SS, ss(ser["p"]), {"long_name": "p-value of no change outside regimes"}),
            "series_q": (SS, ss(ser["q"]), {"long_name": "BH q-value across series"}),
            "n_budgets": (SS, ss(ser["n"]), {"long_name": "shared budgets outside regimes"}),
            "series_changed": (SS, ss(q_ok | moved), {"long_name": "significant ratio or a regime changed"}),
            "verdict": (SS, ss(np.array(verdicts, dtype=object)).astype(str), {"long_name": "one-line verdict"}),
        }
    for name, arr in fields.items():
        values = arr.astype(str) if name == "change_kind" else arr
        data[name] = (SC, values.reshape(shape + [K]), {"long_name": name.replace("_", " ")})
    return xr.Dataset(data, coords=coords | {"change": np.arange(K)})


def _summary(out: xr.Dataset, verdicts: list[str]) -> str:
    a = out.attrs
    n_changed = int(out["series_changed"].sum())
    head = (f"{a['label_b']} vs {a['label_a']} ({a['var']}, {a['n_shared_cells']} shared cells, "
            f"{len(verdicts)} series): {n_changed} changed.")
    lines = [head, *("  " + v for v in verdicts[:40])]
    if len(verdicts) > 40:
        lines.append(f"  ... and {len(verdicts) - 40} more")
    if a["simulated_a"] or a["simulated_b"]:
        lines.append("At least one dataset is simulated.")
    return "\n".join(lines)
