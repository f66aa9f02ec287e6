"""Run-to-run spread of each cell: the coefficient of variation of its runs.

Per series and budget, :func:`spread` gives the coefficient of variation
(sample sd / mean) of a variable over the cell's ok runs (the trials), and
per series its median over the budgets and its largest cell. It says how
much the runs of one cell disagree before any model is fitted: the noise
every other analysis has to see through (a series whose runs scatter by 30 %
cannot show a 10 % regime).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, TRIAL, check_dataset, quiet, run_values
from analysis.core.labels import fmt_fixed, fmt_num, na
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.tables.table import Table, flat, labels, select_rows

__all__ = ["spread", "table", "NOISY", "VARIABLES"]

#: A series whose median coefficient of variation is above this is flagged as noisy (as regimes' ``noisy``).
NOISY = 0.1

#: Every variable of a :func:`spread` result, in order: over the series dims, then the series dims x ``budget``
#: (``{var}`` is the variable).
VARIABLES: dict[str, ResultVar] = {
    "cv_median": ResultVar(SERIES, "median over budgets of the coefficient of variation of {var} over runs", "1"),
    "cv_max": ResultVar(SERIES, "largest coefficient of variation of {var} over runs of one budget", "1"),
    "cv_max_budget": ResultVar(SERIES, "budget of the largest coefficient of variation", "tokens"),
    "cv": ResultVar(BUDGET, "coefficient of variation of {var} over the runs of the cell (sd / mean)", "1"),
    "n_runs": ResultVar(BUDGET, "ok runs of the cell with a finite {var}", "1"),
}


def spread(ds: xr.Dataset, var: str = "latency") -> xr.Dataset:
    """The coefficient of variation of ``var`` over the runs of each cell (series x budget).

    Per series (every dim but budget and trial) and budget, over the cell's
    ok runs with a finite value: ``cv = sd / mean`` (sample sd, ``ddof=1``),
    NaN where the cell has fewer than 2 such runs or a mean that is not
    positive. Per series, its median over the budgets and its largest value.

    Parameters
    ----------
    ds
        Dataset with ``var`` over a ``budget`` dim (``trial`` optional: without
        it every cell has one run and no spread). Cells whose status is not
        ok are left out.
    var
        Variable to measure, default ``latency`` (not one with a ``step`` dim).

    Returns
    -------
    xarray.Dataset
        Over the series dims:

        - ``cv_median``: median ``cv`` over the budgets (NaN when none has 2 runs).
        - ``cv_max``: the largest ``cv`` of the series, and ``cv_max_budget`` its budget.

        Over the series dims x budget:

        - ``cv``: sample sd / mean of the cell's runs.
        - ``n_runs``: the cell's ok runs with a finite value.

        Attrs ``var`` and ``summary`` (the median over series, the noisiest cell, the noisy series).

    Raises
    ------
    InputError
        When ``ds`` lacks ``var`` or a ``budget`` dim with at least 3 values, or
        when ``var`` has a ``step`` dim.
    """
    ds = check_dataset(ds, "spread", [var])
    da, series = run_values(ds, var, "spread")
    with quiet():
        n = da.count(TRIAL).compute()
        mean = da.mean(TRIAL).compute()
        sd = da.std(TRIAL, ddof=1).compute()
    n_runs = series.unwrap(n).astype(np.int64)
    m, s = series.unwrap(mean), series.unwrap(sd)
    cv = np.where((n_runs >= 2) & (m > 0), s / np.where(m > 0, m, 1.0), np.nan)
    budgets = np.asarray(ds[BUDGET].values, dtype=np.float64)
    has = np.isfinite(cv).any(axis=1)
    with quiet():
        cv_median = np.nanmedian(cv, axis=1)
    worst = np.argmax(np.where(np.isfinite(cv), cv, -np.inf), axis=1)
    values = {
        "cv_median": cv_median,
        "cv_max": np.where(has, cv[np.arange(series.size), worst], np.nan),
        "cv_max_budget": np.where(has, budgets[worst], np.nan),
        "cv": cv,
        "n_runs": n_runs,
    }
    out = xr.Dataset(wrap(VARIABLES, values, series, {BUDGET: ([BUDGET], {BUDGET: ds[BUDGET].values})}, var=var),
                     attrs={"var": var})
    out.attrs["summary"] = _summary(values, [series.name(i) for i in range(series.size)], var)
    return out


def _summary(values: dict[str, np.ndarray], names: list[str], var: str) -> str:
    """The median spread over series, the noisiest cell and the noisy series, for humans."""
    med = values["cv_median"]
    if not np.isfinite(med).any():
        return f"{var}: no cell has 2 or more ok runs; the run-to-run spread cannot be measured"
    worst = int(np.nanargmax(np.where(np.isfinite(values["cv_max"]), values["cv_max"], -np.inf)))
    noisy = [names[i] for i in np.flatnonzero(np.nan_to_num(med) > NOISY)]
    lines = [f"{var}: run-to-run spread (sd / mean over a cell's runs): median {fmt_fixed(100 * np.nanmedian(med), 1)}% over "
             f"{int(np.isfinite(med).sum())} series; noisiest cell {names[worst]} at budget "
             f"{values['cv_max_budget'][worst]:g}: {fmt_fixed(100 * values['cv_max'][worst], 1)}%"]
    if noisy:
        lines.append(f"noisy (median above {100 * NOISY:g}%): {', '.join(noisy)}")
    return "\n".join(lines)


def table(res: xr.Dataset, *, max_rows: int | None = None) -> Table:
    """One row per series: its median and largest spread, and the budgets with fewer than 2 runs."""
    dims = [str(d) for d in res["cv_median"].dims]
    names = labels(res, dims)
    med, top, at = (flat(res, k, dims) for k in ("cv_median", "cv_max", "cv_max_budget"))
    n_runs = flat(res, "n_runs", dims)
    rows, interesting = [], []
    for s in range(len(names)):
        single = na("1 run per budget")
        rows.append((names[s], fmt_num(100 * med[s], ".2g") or single, fmt_num(100 * top[s], ".2g") or na(),
                     fmt_num(at[s]) or na(), str(int((n_runs[s] == 1).sum()))))
        interesting.append(bool(np.nan_to_num(med[s]) > NOISY))
    measured = (n_runs.reshape(len(names), -1).sum(axis=1) > 0).tolist()
    # (a combination with no run is no series: left out without a word)
    rows_t, flags, note = select_rows(rows, ["hit" if i else "" for i in interesting], interesting,
                                      only_interesting=False, max_rows=max_rows, what="series", measured=measured,
                                      absent_count=0)
    return Table(title=f"spread: how much the runs of one cell disagree ({res.attrs.get('var', '')})",
                 columns=("series", "median cv %", "largest cv %", "at budget", "budgets with 1 run"),
                 rows=rows_t, flags=flags, note=note, right=(False, True, True, True, True),
                 key=("series", "median cv %", "largest cv %"),
                 legend=("cv: sample sd / mean of a cell's ok runs (%); median over the series' budgets, and its "
                         f"largest cell; budgets with 1 run: measured cells without a spread; bold: median above "
                         f"{100 * NOISY:g}%"))
