"""Does memory explain a latency regime?

:func:`memory_effect` regresses each run's excess latency (log of observed
over the regimes baseline) on the memory covariates, with and without the
regime indicators (statsmodels OLS, nested-model F test), reports each
covariate's R^2 alone and its partial R^2, and checks whether each memory
series itself jumps inside the regime beyond its smooth trend in budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, TRIAL, Series, bh, check_dataset, check_fraction, ok_values, quiet, series_of
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.series import apply_named, as_series_array
from analysis.core.stats import ols
from analysis.detect.blocks import Block, get_regimes, reg_array, regime_blocks
from analysis.errors import InputError

__all__ = ["memory_effect", "MEMORY_VARS", "VARIABLES"]

#: The memory covariates of the schema (present since v1).
MEMORY_VARS: tuple[str, ...] = ("mem_device_peak", "mem_device_driver", "mem_rss_peak", "mem_sys_available_min", "swap_used")
COVARIATE = "covariate"
#: Every variable of a :func:`memory_effect` result, in order: over the series dims or the series dims x ``covariate``.
VARIABLES: dict[str, ResultVar] = {
    "has_regime": ResultVar(SERIES, "series has at least one regime"),
    "n_runs": ResultVar(SERIES, "runs in the models", "1"),
    "r2_memory": ResultVar(SERIES, "adjusted share of the excess memory explains (M1 over M0)", "1"),
    "p_memory": ResultVar(SERIES, "p-value of the F test of M1 against M0", "1"),
    "r2_full": ResultVar(SERIES, "adjusted share memory + regime explain (M2 over M0)", "1"),
    "r2_added": ResultVar(SERIES, "share the regime adds to memory", "1"),
    "f_stat": ResultVar(SERIES, "F statistic of M2 against M1", "1"),
    "p": ResultVar(SERIES, "p-value of the F test", "1"),
    "q": ResultVar(SERIES, "BH q-value of the F test", "1"),
    "used": ResultVar(COVARIATE, "covariate entered the models"),
    "r2_alone": ResultVar(COVARIATE, "adjusted share of the excess the covariate alone explains", "1"),
    "partial_r2": ResultVar(COVARIATE, "partial R^2 of the covariate in M2", "1"),
    "mem_jump": ResultVar(COVARIATE, "relative change inside the regimes beyond the budget trend", "1"),
    "mem_jump_p": ResultVar(COVARIATE, "p-value of the memory change", "1"),
    "mem_jump_q": ResultVar(COVARIATE, "BH q-value of the memory change", "1"),
    "mem_changes": ResultVar(COVARIATE, "covariate changes significantly inside the regimes"),
}


def _usable(x: np.ndarray) -> bool:
    """A covariate column that varies (not all NaN, not constant)."""
    x = x[np.isfinite(x)]
    return x.size > 2 and float(np.std(x)) > 1e-9 * max(float(np.mean(np.abs(x))), 1e-300)


def _partial(small: Any, big: Any) -> float:
    """Adjusted share of the small model's residual variance the big model explains, floored at 0.

    ``1 - (SSR_big / df_big) / (SSR_small / df_small)``: noise regressors explain about nothing.
    """
    if small.df_resid <= 0 or big.df_resid <= 0 or small.ssr <= 0:
        return float("nan")
    return max(0.0, 1.0 - (big.ssr / big.df_resid) / (small.ssr / small.df_resid))


def _ssr(y: np.ndarray, X: np.ndarray) -> float:
    return float(ols(y, X).fit().ssr)


#: Per-series outputs of the models and per-covariate outputs (see :func:`memory_effect`'s Returns).
SERIES_OUTPUTS: tuple[str, ...] = ("r2_memory", "r2_full", "r2_added", "f_stat", "p", "p_memory")
COVARIATE_OUTPUTS: tuple[str, ...] = ("r2_alone", "partial_r2", "mem_jump", "mem_jump_p")


def _fit_series(excess: np.ndarray, mem: np.ndarray, blocks: list[Block], budgets: np.ndarray, degree: int) -> dict[str, Any]:
    """The models of one series: ``excess`` ``(budget, trial)`` log ratio to the baseline, ``mem``
    ``(covariate, budget, trial)``, ``blocks`` its regimes (at least one)."""
    C = mem.shape[0]
    B, T = excess.shape
    out: dict[str, Any] = {n: np.nan for n in SERIES_OUTPUTS}
    out.update({n: np.full(C, np.nan) for n in COVARIATE_OUTPUTS})
    out["used"] = np.zeros(C)
    out["n_runs"] = 0.0
    x_b = (np.broadcast_to(budgets[:, None], (B, T)) - budgets.min()) / max(float(np.ptp(budgets)), 1.0)
    inside = np.zeros((len(blocks), B, T), dtype=bool)
    for r, blk in enumerate(blocks):
        inside[r, blk.first : blk.last + 1] = True
    ok = np.isfinite(excess)
    any_in = np.asarray(inside.any(0))
    # each covariate's departure from its smooth budget trend (least squares over the runs)
    P = np.column_stack([x_b.ravel() ** d for d in range(degree + 1)])
    resid: dict[int, np.ndarray] = {}
    for j in range(C):
        m = mem[j]
        if not np.isfinite(m[ok]).all() or not _usable(m[ok]) or np.unique(x_b[ok]).size < degree + 2:
            continue
        flat_ok = ok.ravel()
        coef = np.linalg.lstsq(P[flat_ok], m.ravel()[flat_ok], rcond=None)[0]
        r = m - P.dot(coef).reshape(m.shape)
        if float(np.std(r[ok])) > 1e-9 * float(np.mean(np.abs(m[ok]))):
            resid[j] = r
        else:  # an exact smooth function of budget: carries nothing beyond the budget
            out["r2_alone"][j], out["partial_r2"][j] = 0.0, 0.0
    cols = sorted(resid)
    # memory trend jump test: on every run where the covariate is finite
    for j in range(C):
        m = mem[j]
        okm = np.isfinite(m)
        if not _usable(m[okm]) or not any_in[okm].any() or (~any_in[okm]).sum() < degree + 2:
            continue
        Xm = np.column_stack([x_b[okm] ** d for d in range(degree + 1)] + [any_in[okm].astype(float)])
        fit = ols(m[okm], Xm).fit()
        level = float(np.mean(fit.fittedvalues[any_in[okm]] - fit.params[-1]))
        scale = max(abs(level), 1e-300)
        jump = float(fit.params[-1]) / scale
        resid_scale = np.sqrt(fit.scale) / scale if fit.df_resid > 0 else 0.0
        if abs(jump) < 1e-9 and resid_scale < 1e-9:  # an exact smooth function of budget
            out["mem_jump"][j], out["mem_jump_p"][j] = 0.0, 1.0
        else:
            out["mem_jump"][j], out["mem_jump_p"][j] = jump, float(fit.pvalues[-1])
    n = int(ok.sum())
    out["n_runs"] = n
    k0 = degree + 1
    if n < k0 + len(cols) + len(blocks) + 2:
        return out
    y = excess[ok]
    X0 = P[ok.ravel()]
    Z = np.column_stack([resid[j][ok] for j in cols]) if cols else np.empty((n, 0))
    if cols:
        Z = (Z - Z.mean(0)) / Z.std(0)
    In = np.column_stack([inside[r][ok] for r in range(inside.shape[0])]).astype(float)
    X1 = np.hstack([X0, Z])
    X2 = np.hstack([X0, Z, In])
    m0, m1, m2 = ols(y, X0).fit(), ols(y, X1).fit(), ols(y, X2).fit()
    if m0.ssr <= 0 or m2.df_resid <= 0:
        return out
    # without a usable covariate M1 is M0: memory explains nothing measurable, which is not "0 %" (NaN)
    out["r2_memory"] = _partial(m0, m1) if cols else np.nan
    out["r2_full"] = _partial(m0, m2)
    out["r2_added"] = out["r2_full"] - (out["r2_memory"] if cols else 0.0)
    if m2.ssr > 0:
        fs, pv, _ = m2.compare_f_test(m1)
        out["f_stat"], out["p"] = float(fs), float(pv)
    if cols and m1.ssr > 0:
        out["p_memory"] = float(m1.compare_f_test(m0)[1])
    for i, j in enumerate(cols):
        out["used"][j] = 1.0
        out["r2_alone"][j] = _partial(m0, ols(y, np.column_stack([X0, Z[:, i]])).fit())
        reduced = _ssr(y, np.delete(X2, k0 + i, axis=1))
        out["partial_r2"][j] = (reduced - m2.ssr) / reduced if reduced > 0 else 0.0
    return out


def _fit_block(lat: np.ndarray, baseline: np.ndarray, mem: np.ndarray, first: np.ndarray, last: np.ndarray, *,
               budgets: np.ndarray, degree: int) -> dict[str, np.ndarray]:
    """:func:`_fit_series` over a block of series: ``lat`` ``(..., budget, trial)``, ``baseline``
    ``(..., budget)``, ``mem`` ``(..., covariate, budget, trial)``, the regimes' first and last budget
    indices ``(..., regime)`` (NaN past the series' number)."""
    lead = lat.shape[:-2]
    B, T = lat.shape[-2:]
    C, R = mem.shape[-3], first.shape[-1]
    lat, baseline = lat.reshape(-1, B, T), baseline.reshape(-1, B)
    mem, first, last = mem.reshape(-1, C, B, T), first.reshape(-1, R), last.reshape(-1, R)
    S = lat.shape[0]
    out = {n: np.full(S, np.nan) for n in SERIES_OUTPUTS}
    out.update({n: np.full((S, C), np.nan) for n in COVARIATE_OUTPUTS})
    out["used"] = np.zeros((S, C))
    out["n_runs"] = np.zeros(S)
    with quiet():
        excess = np.log(lat / baseline[:, :, None])
    for s in range(S):
        blocks = [Block(int(a), int(b), np.nan, r) for r, (a, b) in enumerate(zip(first[s], last[s])) if np.isfinite(a)]
        if not blocks:
            continue
        for name, value in _fit_series(excess[s], mem[s], blocks, budgets, degree).items():
            out[name][s] = value
    return {n: v.reshape(lead + v.shape[1:]) for n, v in out.items()}


def memory_effect(
    ds: xr.Dataset,
    *,
    reg: xr.Dataset | None = None,
    covariates: Sequence[str] | None = None,
    degree: int = 2,
    alpha: float = 0.05,
    min_jump: float = 0.02,
    **regimes_kwargs: Any,
) -> xr.Dataset:
    """Whether the memory covariates explain the excess latency of each series' regimes.

    Regimes come from :func:`analysis.regimes.regimes` on ``latency`` (or
    ``reg``). Per series with at least one regime, each run's *excess* is
    ``e = log(latency / baseline)``: its departure from the expected budget
    scaling. Three nested OLS models of ``e`` over the runs:

    * M0 (smooth): a degree-``degree`` polynomial in budget;
    * M1 (memory): M0 + the usable memory covariates (standardised);
    * M2 (memory + regime): M1 + one indicator per regime.

    M0 absorbs whatever part of the excess is a smooth function of budget;
    memory that only grows with the context is collinear with it and so
    explains nothing beyond it. Shares are of M0's residual variance,
    adjusted for the regressors added (``1 - (SSR_big / df_big) / (SSR_0 /
    df_0)``, floored at 0, so noise covariates explain about nothing):
    ``r2_memory`` for M1 ("memory explains X% of the excess", ``p_memory``
    from the F test of M1 against M0), ``r2_full`` for M2 and ``r2_added =
    r2_full - r2_memory`` ("the regime adds Y%"), tested with the nested F
    test of M2 against M1 (q-values: Benjamini-Hochberg over the series
    tested). A covariate's ``r2_alone`` is the same share for M0 + that
    covariate; its ``partial_r2`` is ``(SSR(M2 without it) - SSR(M2)) /
    SSR(M2 without it)``.

    Each covariate itself: per series, ``mem ~ poly(budget, degree) + I``
    with ``I`` = 1 inside any regime; ``mem_jump`` is the coefficient of ``I``
    over the mean fitted level inside (relative change beyond the smooth
    trend) with its p-value; it *changes* when ``|mem_jump| >= min_jump`` and
    the BH q-value is below ``alpha``.

    Covariates that are all NaN, constant or not finite at every run of a series
    (e.g. ``mem_device_peak`` on CPU, ``swap_used`` with no swap) are skipped
    for that series; so is one that is an exact smooth function of budget
    (its ``r2_alone`` and ``partial_r2`` are then 0).

    Parameters
    ----------
    ds
        Dataset with ``latency`` and memory covariates.
    reg
        A result of :func:`analysis.regimes.regimes` on ``ds`` to reuse; None computes it.
    covariates
        Memory variables to use (default: those of :data:`MEMORY_VARS` present).
    degree
        Degree of the budget polynomial of the memory trend.
    alpha
        Significance level (regimes call, q-value thresholds).
    min_jump
        Smallest relative memory change inside a regime that counts.
    **regimes_kwargs
        Other settings of :func:`analysis.regimes.regimes`.

    Returns
    -------
    xarray.Dataset
        Over the series dims:

        - ``has_regime``: the series has at least one regime.
        - ``n_runs``: runs in the models.
        - ``r2_memory``: adjusted share of the excess memory explains (M1 over M0); NaN where no
          covariate was usable in the series' runs (no memory readings), never a "0 %" nobody measured.
        - ``p_memory``: p-value of the F test of M1 against M0.
        - ``r2_full``: adjusted share memory and the regime explain together (M2 over M0).
        - ``r2_added``: ``r2_full - r2_memory``, the share the regime adds.
        - ``f_stat``, ``p``, ``q``: F test of M2 against M1, p-value, BH q-value.

        Over the series dims x ``covariate``:

        - ``used``: the covariate entered the models of the series.
        - ``r2_alone``: adjusted share of the excess the covariate alone explains (over M0).
        - ``partial_r2``: partial R^2 in M2.
        - ``mem_jump``: relative change of the covariate inside the regimes beyond its budget trend.
        - ``mem_jump_p``, ``mem_jump_q``: its p-value and BH q-value.
        - ``mem_changes``: the covariate changes significantly (and by ``min_jump`` or more) inside.

        Attr ``summary``: "memory explains X% of the excess; the regime adds Y% (p = ...)" per series.

    Raises
    ------
    InputError
        When ``latency``, the budget dim or every memory covariate is missing,
        a named covariate is unknown, or a setting is out of range.
    """
    fn = "memory_effect"
    ds, covs = _check_covariates(ds, fn, covariates)
    alpha = check_fraction(alpha, "alpha", fn)
    min_jump = check_fraction(min_jump, "min_jump", fn, low=-1e-12, high=10.0)
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise InputError(f"{fn}(): degree must be an integer >= 0, got {degree!r}")

    lat = ok_values(ds, "latency")
    series = series_of(lat)
    budgets = np.asarray(ds[BUDGET].values)
    reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, **regimes_kwargs)
    if "baseline" not in reg.data_vars:
        raise InputError(f"{fn}(): reg lacks 'baseline'; pass the Dataset returned by analysis.regimes()")
    blocks = regime_blocks(reg, series, budgets, fn)
    baseline = reg_array(reg, "baseline", series, budgets, fn).astype(np.float64)
    mems = [as_series_array(_on_dims(ds[c], lat).astype(np.float64)) for c in covs]
    values = _fit(lat, baseline, mems, blocks, series, budgets, degree=degree)
    values.update(_tests(values, alpha=alpha, min_jump=min_jump))
    ccoord = {COVARIATE: np.asarray(covs, dtype=str)}
    out = xr.Dataset(wrap(VARIABLES, values, series, {COVARIATE: ([COVARIATE], ccoord)}),
                     attrs={"alpha": alpha, "min_jump": min_jump, "degree": degree, "covariates": ",".join(covs)})
    out.attrs["summary"] = "\n".join([_summary(values, series, covs, mems), *origin_lines(out)])
    return out


def _check_covariates(ds: xr.Dataset, fn: str, covariates: Sequence[str] | None) -> tuple[xr.Dataset, list[str]]:
    """``ds`` checked for ``latency`` and the covariates, and the covariates' names (default: those present)."""
    ds = check_dataset(ds, fn, ["latency"])
    if covariates is None:
        covs = [c for c in MEMORY_VARS if c in ds.data_vars]
        if not covs:
            raise InputError(f"{fn}() needs at least one memory covariate of {list(MEMORY_VARS)!r}; the dataset has none")
    else:
        covs = list(covariates)
        if not covs:
            raise InputError(f"{fn}(): covariates is empty; give names such as {list(MEMORY_VARS)!r}")
    return check_dataset(ds, fn, covs), covs


def _on_dims(da: xr.DataArray, lat: xr.DataArray) -> xr.DataArray:
    """``da`` over the dims of ``lat``, in their order (broadcast where it lacks some)."""
    if set(da.dims) != set(lat.dims):
        da = da.broadcast_like(lat)
    return da.transpose(*lat.dims)


def _fit(lat: xr.DataArray, baseline: np.ndarray, mems: list[xr.DataArray], blocks: list[list[Block]], series: Series,
         budgets: np.ndarray, *, degree: int) -> dict[str, np.ndarray]:
    """The models of every series with a regime: the kernel's outputs ``(series,)`` or ``(series, covariate)``
    and ``has_regime``. Runs and covariates stay lazy (dask-backed input is fitted block by block); the regimes
    are small."""
    S = series.size
    R = max([len(b) for b in blocks] + [1])
    first = np.full((S, R), np.nan)
    last = np.full((S, R), np.nan)
    for s in range(S):
        for r, blk in enumerate(blocks[s]):
            first[s, r], last[s, r] = blk.first, blk.last
    rcoord = {"regime": np.arange(R)}
    fitted = apply_named(
        _fit_block,
        [as_series_array(lat), series.wrap(baseline, [BUDGET], {BUDGET: budgets}),
         xr.concat(mems, dim="_covariate", coords="minimal", compat="override", join="override"),
         series.wrap(first, ["regime"], rcoord), series.wrap(last, ["regime"], rcoord)],
        [[BUDGET, TRIAL], [BUDGET], ["_covariate", BUDGET, TRIAL], ["regime"], ["regime"]],
        outputs={**{n: () for n in (*SERIES_OUTPUTS, "n_runs")}, **{n: ("_covariate",) for n in (*COVARIATE_OUTPUTS, "used")}},
        kwargs={"budgets": budgets.astype(np.float64), "degree": degree},
    ).compute()
    values = {n: series.unwrap(fitted[n]) for n in (*SERIES_OUTPUTS, *COVARIATE_OUTPUTS)}
    values["used"] = series.unwrap(fitted["used"]) == 1
    values["n_runs"] = series.unwrap(fitted["n_runs"]).astype(np.int64)
    values["has_regime"] = np.array([bool(b) for b in blocks])
    return values


def _tests(values: dict[str, np.ndarray], *, alpha: float, min_jump: float) -> dict[str, np.ndarray]:
    """The dataset-wide decisions: ``q`` and ``mem_jump_q`` (Benjamini-Hochberg) and ``mem_changes``."""
    jump_q = bh(values["mem_jump_p"])
    changes = (np.nan_to_num(jump_q, nan=1.0) <= alpha) & (np.abs(np.nan_to_num(values["mem_jump"])) >= min_jump)
    return {"q": bh(values["p"]), "mem_jump_q": jump_q, "mem_changes": changes}


def _fmt_p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def _summary(values: dict[str, np.ndarray], series: Series, covs: list[str], mems: list[xr.DataArray]) -> str:
    """Per series with a regime, how much of the excess memory explains and what the regime adds, for humans."""
    idx = np.flatnonzero(values["has_regime"])
    if idx.size == 0:
        return "memory_effect: no regime found, so there is no excess for memory to explain"
    r2_memory, r2_added, p, q = values["r2_memory"], values["r2_added"], values["p"], values["q"]
    # which series have any memory reading at all (a reading the fit could not use is not "no memory data")
    measured = np.zeros(series.size, dtype=bool)
    for m in mems:
        measured |= series.unwrap(m.notnull().any([BUDGET, TRIAL]))
    # a split needs memory readings in the series' runs; without them M1 is M0 and "memory explains 0%" would be a guess
    with_mem = np.array([s for s in idx if values["used"][s].any() and np.isfinite(r2_memory[s])], dtype=np.int64)
    if with_mem.size == 0:
        n_read = int(measured[idx].sum())
        lines = [f"memory_effect: no usable memory data in the {idx.size} series with a regime (" +
                 (f"no covariate of {', '.join(covs)} was measured in their runs" if n_read == 0 else
                  f"{n_read} with readings the fit could not use, {idx.size - n_read} without readings") +
                 "), so how much of the excess memory explains cannot be said"]
    else:
        with quiet():
            x = np.nanmedian(r2_memory[with_mem])
            y = np.nanmedian(r2_added[with_mem])
            pmax = np.nanmax(p[with_mem]) if np.isfinite(p[with_mem]).any() else np.nan
        lines = [
            f"memory explains {100 * x:.0f}% of the excess; the regime adds {100 * y:.0f}% (p = {_fmt_p(pmax)}) "
            f"[median over {with_mem.size} series with a regime and memory data; largest p]"
            + (f"; {idx.size - with_mem.size} more series with a regime have no memory data" if with_mem.size < idx.size
               else "")
        ]
    for s in map(int, idx):
        if s not in with_mem:
            lines.append(f"{series.name(s)}: " + ("memory readings, but too few runs or budgets to fit their share "
                                                  "(or collinear with the budget trend)" if measured[s] else
                                                  "no memory data in its runs"))
            continue
        jumped = [c for j, c in enumerate(covs) if values["mem_changes"][s, j]]
        lines.append(
            f"{series.name(s)}: memory explains {100 * r2_memory[s]:.0f}% of the excess; the regime adds "
            f"{100 * r2_added[s]:.0f}% (p = {_fmt_p(p[s])}, q = {_fmt_p(q[s])}); memory "
            + (f"changes inside the regime: {', '.join(jumped)}" if jumped else "smooth through the regime")
        )
    return "\n".join(lines)
