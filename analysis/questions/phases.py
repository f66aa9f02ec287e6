"""Which phase (prefill or decode) carries a regime's excess latency.

:func:`phases` fits, per series, one least-squares regression of both phase
times on a smooth budget trend plus an indicator of each regime, all
interacted with the phase (statsmodels, run-clustered standard errors). The
indicator coefficients are each regime's mean excess prefill and decode
time; their ratio is the decode share of the excess, with a delta-method CI.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from analysis.core.common import (
    BUDGET,
    TRIAL,
    Series,
    bh,
    check_dataset,
    check_fraction,
    check_positive_int,
    ok_values,
    quiet,
    series_of,
)
from analysis.core.labels import fmt_fixed
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.series import apply_named, as_series_array
from analysis.core.stats import ols
from analysis.detect.blocks import Block, get_regimes, regime_blocks

__all__ = ["phases", "VARIABLES"]

REGIME = "regime"
#: Every variable of a :func:`phases` result, in order: over the series dims x ``regime`` or the series dims
#: (``{ci}`` is the confidence level).
VARIABLES: dict[str, ResultVar] = {
    "regime_start": ResultVar(REGIME, "first budget of the regime", "tokens"),
    "regime_end": ResultVar(REGIME, "last budget of the regime", "tokens"),
    "regime_ratio": ResultVar(REGIME, "observed / baseline latency inside", "1"),
    "excess_decode": ResultVar(REGIME, "mean extra decode time inside the regime", "s"),
    "excess_decode_lo": ResultVar(REGIME, "excess_decode {ci:.0%} CI, lower", "s"),
    "excess_decode_hi": ResultVar(REGIME, "excess_decode {ci:.0%} CI, upper", "s"),
    "excess_prefill": ResultVar(REGIME, "mean extra prefill time inside the regime", "s"),
    "excess_prefill_lo": ResultVar(REGIME, "excess_prefill {ci:.0%} CI, lower", "s"),
    "excess_prefill_hi": ResultVar(REGIME, "excess_prefill {ci:.0%} CI, upper", "s"),
    "decode_share": ResultVar(REGIME, "excess_decode / (excess_decode + excess_prefill)", "1"),
    "decode_share_lo": ResultVar(REGIME, "decode_share {ci:.0%} CI, lower", "1"),
    "decode_share_hi": ResultVar(REGIME, "decode_share {ci:.0%} CI, upper", "1"),
    "q_decode": ResultVar(REGIME, "BH q-value of no decode excess", "1"),
    "q_prefill": ResultVar(REGIME, "BH q-value of no prefill excess", "1"),
    "n_regimes": ResultVar(SERIES, "regimes of the series", "1"),
    "n_split_runs": ResultVar(SERIES, "ok runs with both prefill_time and decode_time", "1"),
}


def _fit_series(
    dec: np.ndarray, pre: np.ndarray, budgets: np.ndarray, blocks: list[Any], degree: int, ci: float
) -> dict[str, np.ndarray] | None:
    """Stacked regression of one series; None when it cannot be fitted."""
    B, T = dec.shape
    bb = np.broadcast_to(budgets[:, None], (B, T))
    ok = np.isfinite(dec) & np.isfinite(pre)
    n_runs = int(ok.sum())
    R = len(blocks)
    inside = np.zeros((R, B, T), dtype=bool)
    for r, blk in enumerate(blocks):
        inside[r, blk.first : blk.last + 1, :] = True
    outside_budgets = np.unique(bb[ok & ~inside.any(0)])
    if outside_budgets.size < degree + 2 or n_runs < 2 * (degree + 1) + R + 2:
        return None
    x = (bb[ok] - budgets.min()) / max(float(np.ptp(budgets)), 1.0)
    trend = np.column_stack([x**d for d in range(degree + 1)])  # 1, x, x^2, ...
    ind = np.column_stack([inside[r][ok] for r in range(R)]).astype(float)
    zeros_t, zeros_i = np.zeros_like(trend), np.zeros_like(ind)
    # rows: all decode observations, then all prefill observations (same runs)
    X = np.block([[trend, zeros_t, ind, zeros_i], [zeros_t, trend, zeros_i, ind]])
    y = np.concatenate([dec[ok], pre[ok]])
    groups = np.tile(np.arange(n_runs), 2)
    model = ols(y, X)
    k = trend.shape[1]
    i_dec = 2 * k + np.arange(R)
    i_pre = 2 * k + R + np.arange(R)
    res = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    params = res.params
    cov = np.asarray(res.cov_params())
    ci_ = np.asarray(res.conf_int(alpha=1 - ci))
    pvals = np.asarray(res.pvalues)
    z = stats.norm.ppf(0.5 + ci / 2)
    ed, ep = params[i_dec], params[i_pre]
    total = ed + ep
    with quiet():
        share = ed / total
        g_d, g_p = ep / total**2, -ed / total**2
        var = g_d**2 * cov[i_dec, i_dec] + g_p**2 * cov[i_pre, i_pre] + 2 * g_d * g_p * cov[i_dec, i_pre]
        se = np.sqrt(np.maximum(var, 0))
    return {
        "excess_decode": ed,
        "excess_decode_lo": ci_[i_dec, 0],
        "excess_decode_hi": ci_[i_dec, 1],
        "p_decode": pvals[i_dec],
        "excess_prefill": ep,
        "excess_prefill_lo": ci_[i_pre, 0],
        "excess_prefill_hi": ci_[i_pre, 1],
        "p_prefill": pvals[i_pre],
        "decode_share": share,
        "decode_share_lo": share - z * se,
        "decode_share_hi": share + z * se,
    }


#: What :func:`_fit_series` returns for each regime of a series.
FIT_OUTPUTS: tuple[str, ...] = (
    "excess_decode", "excess_decode_lo", "excess_decode_hi", "p_decode", "excess_prefill", "excess_prefill_lo",
    "excess_prefill_hi", "p_prefill", "decode_share", "decode_share_lo", "decode_share_hi",
)


def _fit_block(dec: np.ndarray, pre: np.ndarray, first: np.ndarray, last: np.ndarray, *, budgets: np.ndarray,
               degree: int, ci: float) -> dict[str, np.ndarray]:
    """:func:`_fit_series` over a block of series: ``dec``, ``pre`` ``(..., budget, trial)``, the regimes'
    first and last budget indices ``(..., regime)`` (NaN past the series' number); outputs ``(..., regime)``."""
    lead, R = first.shape[:-1], first.shape[-1]
    B, T = dec.shape[-2:]
    dec, pre = dec.reshape(-1, B, T), pre.reshape(-1, B, T)
    first, last = first.reshape(-1, R), last.reshape(-1, R)
    out = {n: np.full(first.shape, np.nan) for n in FIT_OUTPUTS}
    for s in range(first.shape[0]):
        blocks = [Block(int(a), int(b), np.nan, r) for r, (a, b) in enumerate(zip(first[s], last[s])) if np.isfinite(a)]
        fit = _fit_series(dec[s], pre[s], budgets, blocks, degree, ci) if blocks else None
        if fit is not None:
            for n in FIT_OUTPUTS:
                out[n][s, : len(blocks)] = fit[n]
    return {n: v.reshape(lead + (R,)) for n, v in out.items()}


def phases(
    ds: xr.Dataset,
    *,
    reg: xr.Dataset | None = None,
    degree: int = 2,
    ci: float = 0.95,
    alpha: float = 0.05,
    **regimes_kwargs: Any,
) -> xr.Dataset:
    """Split each regime's excess latency into prefill and decode.

    Regimes come from :func:`analysis.regimes.regimes` on ``latency`` (or
    ``reg``). Per series with at least one regime, the decode and prefill
    times of every run are stacked into one regression

    ``time = sum_phase [ poly_phase(budget) + sum_r excess_{r,phase} * I_r ]``

    where ``poly_phase`` is a degree-``degree`` polynomial in budget (one per
    phase: the smooth expectation) and ``I_r`` is 1 for runs whose budget lies
    in regime ``r`` (the regime x phase interaction). ``excess_{r,decode}`` and
    ``excess_{r,prefill}`` are the mean extra seconds of each phase inside the
    regime. Standard errors are clustered by run (the two phases of a run
    share its noise). ``decode_share = excess_decode / (excess_decode +
    excess_prefill)`` with a delta-method CI.

    Parameters
    ----------
    ds
        Dataset with ``latency``, ``prefill_time`` and ``decode_time``.
    reg
        A result of :func:`analysis.regimes.regimes` on ``ds`` to reuse; None computes it.
    degree
        Degree of the budget polynomial of each phase.
    ci
        Confidence level of the intervals.
    alpha
        Significance level (passed to the regimes call and used for the q-values).
    **regimes_kwargs
        Other settings of :func:`analysis.regimes.regimes`.

    Returns
    -------
    xarray.Dataset
        Over the series dims x ``regime`` (the series' anomalous intervals in
        budget order; NaN past their number):

        - ``regime_start``, ``regime_end``: first and last budget of the regime.
        - ``regime_ratio``: mean observed / baseline latency inside (from regimes).
        - ``excess_decode``, ``excess_decode_lo``, ``excess_decode_hi``: mean extra decode time (s) and CI.
        - ``excess_prefill``, ``excess_prefill_lo``, ``excess_prefill_hi``: mean extra prefill time (s) and CI.
        - ``decode_share``, ``decode_share_lo``, ``decode_share_hi``: share of the excess in decode and CI.
        - ``q_decode``, ``q_prefill``: BH q-values of "no excess" over all tests made.

        Over the series dims:

        - ``n_regimes``: number of regimes of the series.
        - ``n_split_runs``: ok runs with both phase times (0: the phase split was not measured, so no
          regime's excess can be split).

        Attr ``summary``: one line per regime.

    Raises
    ------
    InputError
        When a phase variable or the budget dim (>= 3 budgets) is missing, or a setting is out of range.
    """
    fn = "phases"
    ds = check_dataset(ds, fn, ["latency", "prefill_time", "decode_time"])
    degree = check_positive_int(degree, "degree", fn, minimum=0)
    ci = check_fraction(ci, "ci", fn)
    alpha = check_fraction(alpha, "alpha", fn)
    lat = ok_values(ds, "latency")
    series = series_of(lat)
    budgets = np.asarray(ds[BUDGET].values)
    reg = get_regimes(ds, "latency", reg, fn, alpha=alpha, **regimes_kwargs)
    blocks = regime_blocks(reg, series, budgets, fn)
    values = _regimes(blocks, budgets)
    values.update(_fit(ds, series, budgets, values["first"], values["last"], degree=degree, ci=ci))
    both = (ok_values(ds, "decode_time").notnull() & ok_values(ds, "prefill_time").notnull()).sum([BUDGET, TRIAL])
    values["n_split_runs"] = series.unwrap(both.compute()).astype(np.int64)
    R = values["regime_start"].shape[1]
    out = xr.Dataset(wrap(VARIABLES, values, series, {REGIME: ([REGIME], {REGIME: np.arange(R)})}, ci=ci),
                     attrs={"degree": degree, "ci": ci, "alpha": alpha})
    # within one file, a series with no ok run is no series: the count is of those with one
    with_data = int(series.unwrap(lat.notnull().any([BUDGET, TRIAL]).compute()).sum())
    out.attrs["summary"] = "\n".join([_summary(values, series, with_data), *origin_lines(out)])
    return out


def _regimes(blocks: list[list[Block]], budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Where the regimes of each series lie: ``regime_start``, ``regime_end``, ``regime_ratio`` ``(series,
    regime)`` (NaN past the series' number), ``n_regimes``, and their budget indices ``first``, ``last``."""
    S = len(blocks)
    R = max([len(b) for b in blocks] + [1])
    out = {n: np.full((S, R), np.nan) for n in ("regime_start", "regime_end", "regime_ratio", "first", "last")}
    for s in range(S):
        for r, blk in enumerate(blocks[s]):
            out["regime_start"][s, r], out["regime_end"][s, r] = budgets[blk.first], budgets[blk.last]
            out["regime_ratio"][s, r], out["first"][s, r], out["last"][s, r] = blk.ratio, blk.first, blk.last
    out["n_regimes"] = np.array([len(b) for b in blocks], dtype=np.int64)
    return out


def _fit(ds: xr.Dataset, series: Series, budgets: np.ndarray, first: np.ndarray, last: np.ndarray, *, degree: int,
         ci: float) -> dict[str, np.ndarray]:
    """The excess of each phase in each regime ``(series, regime)`` (:func:`_fit_series`; the regimes' budget
    indices ``first``, ``last``) and the q-values of "no excess". The phase times stay lazy (dask-backed input
    is fitted block by block); the regimes are small."""
    S, R = first.shape
    coord = {REGIME: np.arange(R)}
    fitted = apply_named(
        _fit_block,
        [as_series_array(ok_values(ds, "decode_time")), as_series_array(ok_values(ds, "prefill_time")),
         series.wrap(first, [REGIME], coord), series.wrap(last, [REGIME], coord)],
        [[BUDGET, TRIAL], [BUDGET, TRIAL], [REGIME], [REGIME]],
        outputs={n: (REGIME,) for n in FIT_OUTPUTS},
        kwargs={"budgets": budgets.astype(np.float64), "degree": degree, "ci": ci},
    ).compute()
    res = {n: series.unwrap(fitted[n]) for n in FIT_OUTPUTS}
    res["q_decode"], res["q_prefill"] = bh(np.stack([res["p_decode"], res["p_prefill"]]))
    return res


def _summary(values: dict[str, np.ndarray], series: Series, with_data: int) -> str:
    """One line per regime: its excess decode and prefill time and the decode share, for humans (``with_data``:
    the series with an ok run)."""
    n_regimes = values["n_regimes"]
    lines = [f"phases: {int(n_regimes.sum())} regime(s) in {int(np.sum(n_regimes > 0))} of {with_data} series"]
    for s in range(series.size):
        for r in range(n_regimes[s]):
            v = {name: x[s, r] for name, x in values.items() if x.ndim == 2}
            where = f"{series.name(s)}, budgets {v['regime_start']:g}-{v['regime_end']:g}"
            if not np.isfinite(v["decode_share"]):
                lines.append(f"{where}: " + ("no prefill/decode times in its runs, so the excess cannot be split"
                                             if values["n_split_runs"][s] == 0 else
                                             "too few budgets outside the regime to fit"))
                continue
            lines.append(
                f"{where} ({fmt_fixed(v['regime_ratio'])}x): "
                f"decode {v['excess_decode']:+.3g} s [{v['excess_decode_lo']:.3g}, {v['excess_decode_hi']:.3g}], "
                f"prefill {v['excess_prefill']:+.3g} s [{v['excess_prefill_lo']:.3g}, {v['excess_prefill_hi']:.3g}]; "
                f"decode share {fmt_fixed(100 * v['decode_share'], 1)}% [{fmt_fixed(100 * v['decode_share_lo'], 1)}, "
                f"{fmt_fixed(100 * v['decode_share_hi'], 1)}]"
            )
    return "\n".join(lines)
