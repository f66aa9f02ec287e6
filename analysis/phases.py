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
import statsmodels.api as sm
import xarray as xr
from scipy import stats

from analysis._common import (
    BUDGET,
    TRIAL,
    Block,
    bh,
    check_dataset,
    check_fraction,
    check_positive_int,
    get_regimes,
    ok_values,
    quiet,
    regime_blocks,
    series_of,
)
from analysis._origins import origin_lines
from analysis._series import apply_named, as_series_array

__all__ = ["phases"]


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
    model = sm.OLS(y, X)
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

    S = series.size
    R = max([len(b) for b in blocks] + [1])
    start = np.full((S, R), np.nan)
    end = np.full((S, R), np.nan)
    ratio = np.full((S, R), np.nan)
    first = np.full((S, R), np.nan)
    last = np.full((S, R), np.nan)
    for s in range(S):
        for r, blk in enumerate(blocks[s]):
            start[s, r], end[s, r], ratio[s, r] = budgets[blk.first], budgets[blk.last], blk.ratio
            first[s, r], last[s, r] = blk.first, blk.last
    coord = {"regime": np.arange(R)}
    # the phase times stay lazy (dask-backed input is fitted block by block); the regimes are small
    fitted = apply_named(
        _fit_block,
        [as_series_array(ok_values(ds, "decode_time")), as_series_array(ok_values(ds, "prefill_time")),
         series.wrap(first, ["regime"], coord), series.wrap(last, ["regime"], coord)],
        [[BUDGET, TRIAL], [BUDGET, TRIAL], ["regime"], ["regime"]],
        outputs={n: ("regime",) for n in FIT_OUTPUTS},
        kwargs={"budgets": budgets.astype(np.float64), "degree": degree, "ci": ci},
    ).compute()
    res = {n: np.asarray(fitted[n].transpose(*series.dims, "regime").values).reshape(S, R) for n in FIT_OUTPUTS}
    q = bh(np.stack([res["p_decode"], res["p_prefill"]]))

    def var(name: str, long_name: str) -> xr.DataArray:
        unit = "s" if name.startswith("excess") else "1"
        return series.wrap(res[name], ["regime"], coord, {"units": unit, "long_name": long_name})

    out = xr.Dataset(
        {
            "regime_start": series.wrap(start, ["regime"], coord, {"units": "tokens", "long_name": "first budget of the regime"}),
            "regime_end": series.wrap(end, ["regime"], coord, {"units": "tokens", "long_name": "last budget of the regime"}),
            "regime_ratio": series.wrap(ratio, ["regime"], coord, {"units": "1", "long_name": "observed / baseline latency inside"}),
            "excess_decode": var("excess_decode", "mean extra decode time inside the regime"),
            "excess_decode_lo": var("excess_decode_lo", f"excess_decode {ci:.0%} CI, lower"),
            "excess_decode_hi": var("excess_decode_hi", f"excess_decode {ci:.0%} CI, upper"),
            "excess_prefill": var("excess_prefill", "mean extra prefill time inside the regime"),
            "excess_prefill_lo": var("excess_prefill_lo", f"excess_prefill {ci:.0%} CI, lower"),
            "excess_prefill_hi": var("excess_prefill_hi", f"excess_prefill {ci:.0%} CI, upper"),
            "decode_share": var("decode_share", "excess_decode / (excess_decode + excess_prefill)"),
            "decode_share_lo": var("decode_share_lo", f"decode_share {ci:.0%} CI, lower"),
            "decode_share_hi": var("decode_share_hi", f"decode_share {ci:.0%} CI, upper"),
            "q_decode": series.wrap(q[0], ["regime"], coord, {"units": "1", "long_name": "BH q-value of no decode excess"}),
            "q_prefill": series.wrap(q[1], ["regime"], coord, {"units": "1", "long_name": "BH q-value of no prefill excess"}),
            "n_regimes": series.wrap(np.array([len(b) for b in blocks], dtype=np.int64), attrs={"units": "1", "long_name": "regimes of the series"}),
        },
        attrs={"degree": degree, "ci": ci, "alpha": alpha},
    )
    n_reg = sum(len(b) for b in blocks)
    lines = [f"phases: {n_reg} regime(s) in {sum(1 for b in blocks if b)} of {S} series"]
    for s in range(S):
        for r, blk in enumerate(blocks[s]):
            if not np.isfinite(res["decode_share"][s, r]):
                lines.append(f"{series.name(s)}, budgets {start[s, r]:g}-{end[s, r]:g}: too few budgets outside the regime to fit")
                continue
            lines.append(
                f"{series.name(s)}, budgets {start[s, r]:g}-{end[s, r]:g} ({blk.ratio:.2f}x): "
                f"decode {res['excess_decode'][s, r]:+.3g} s [{res['excess_decode_lo'][s, r]:.3g}, {res['excess_decode_hi'][s, r]:.3g}], "
                f"prefill {res['excess_prefill'][s, r]:+.3g} s [{res['excess_prefill_lo'][s, r]:.3g}, {res['excess_prefill_hi'][s, r]:.3g}]; "
                f"decode share {100 * res['decode_share'][s, r]:.1f}% [{100 * res['decode_share_lo'][s, r]:.1f}, {100 * res['decode_share_hi'][s, r]:.1f}]"
            )
    out.attrs["summary"] = "\n".join([*lines, *origin_lines(out)])
    return out
