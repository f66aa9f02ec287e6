"""Residual non-monotonicity of a variable along the budget axis (isotonic fit).

Generating more tokens should never take less time. :func:`monotonicity`
fits the best non-decreasing curve (scikit-learn's ``IsotonicRegression``)
to each series' typical value per budget and reports what it cannot explain:
the share of variance left over, the *inversions* (a smaller budget
significantly slower than a larger one) and the largest spike ratio.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr
from scipy import stats

from analysis.core.common import BUDGET, TRIAL, Series, bh, check_dataset, check_fraction, ok_values, quiet, series_of
from analysis.core.labels import fmt_fixed
from analysis.core.origins import origin_lines
from analysis.core.outputs import SERIES, ResultVar, wrap
from analysis.core.series import apply_named, as_series_array, is_lazy
from analysis.errors import InputError

__all__ = ["monotonicity", "cell_centers", "noise_sd", "VARIABLES"]

#: Every variable of a :func:`monotonicity` result, in order: over the series dims or the series dims x
#: ``budget`` (``{var}`` is the variable checked, ``{units}`` its units).
VARIABLES: dict[str, ResultVar] = {
    "unexplained_share": ResultVar(SERIES, "share of variance of log centres the isotonic fit leaves unexplained", "1"),
    "n_inversions": ResultVar(SERIES, "significant inversions (budget pairs)", "1"),
    "spike_ratio": ResultVar(SERIES, "largest significant inversion ratio value(b1)/value(b2), b1 < b2", "1"),
    "spike_budget": ResultVar(SERIES, "smaller budget b1 of the largest inversion", "tokens"),
    "spike_recovery_budget": ResultVar(SERIES, "larger budget b2 of the largest inversion", "tokens"),
    "noise_sd": ResultVar(SERIES, "noise SD of one log value", "1"),
    "monotone": ResultVar(SERIES, "no significant inversion"),
    "center": ResultVar(BUDGET, "typical {var} per budget", "{units}"),
    "isotonic": ResultVar(BUDGET, "isotonic (non-decreasing) fit of {var}", "{units}"),
    "inverted": ResultVar(BUDGET, "budget is the smaller member of a significant inversion"),
    "inversion_q": ResultVar(BUDGET, "smallest BH q-value of an inversion starting here", "1"),
}

_MEDIAN_EFF = np.sqrt(np.pi / 2.0)  # SE(median) / SE(mean) for normal data


def cell_centers(logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (series, budget) centre of log values over trials and the trial count.

    The centre is the median (robust to one slow run) when a cell has 3 or
    more finite trials, else the mean.
    """
    n = np.sum(np.isfinite(logs), axis=-1)
    with quiet():
        center = np.where(n >= 3, np.nanmedian(logs, axis=-1), np.nanmean(logs, axis=-1))
    return center, n


def noise_sd(logs: np.ndarray, center: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-series noise standard deviation of one log value, robustly.

    With replicates: the median of the per-cell sample variances, rescaled by
    the median of a chi-square variable so that it is unbiased for normal
    noise (robust to a few cells with a slow run). With one trial: the median
    absolute second difference of the centres along budget over sqrt(6),
    scaled to a normal sd (a smooth trend's second differences are ~0).
    """
    n_series = logs.shape[0]
    out = np.full(n_series, np.nan)
    with quiet():
        var = np.nanvar(logs, axis=-1, ddof=1)
    for s in range(n_series):
        ok = (n[s] >= 2) & np.isfinite(var[s])
        if ok.sum() >= 2:
            df = int(np.median(n[s][ok])) - 1
            out[s] = np.sqrt(np.median(var[s][ok]) * df / stats.chi2.median(df))
            continue
        c = center[s][np.isfinite(center[s])]
        if c.size >= 4:
            d2 = c[2:] - 2 * c[1:-1] + c[:-2]
            out[s] = stats.median_abs_deviation(d2, scale="normal") / np.sqrt(6.0)
    return out


def _pair_reproducibility(logs: np.ndarray, center: np.ndarray) -> np.ndarray:
    """How reproducible each inversion ``b1 < b2`` is across trials, per series and budget pair.

    The smaller of: the share of ``b1``'s trials above ``b2``'s centre, and
    the share of ``b2``'s trials below ``b1``'s centre. NaN when either budget
    has fewer than 3 finite trials (too few to judge).
    """
    S, B, T = logs.shape
    out = np.full((S, B, B), np.nan)
    if T < 3:
        return out
    n = np.isfinite(logs).sum(-1)
    with quiet():
        # above[s, i, j]: share of trials of budget i above the centre of budget j
        above = np.sum(logs[:, :, None, :] > center[:, None, :, None], axis=-1) / n[:, :, None]
        below = np.sum(logs[:, :, None, :] < center[:, None, :, None], axis=-1) / n[:, :, None]
    share = np.minimum(above, np.swapaxes(below, 1, 2))
    enough = (n[:, :, None] >= 3) & (n[:, None, :] >= 3)
    out[enough] = share[enough]
    return out


_PAIR = "_budget2"


def _series_block(values: np.ndarray, *, budgets: np.ndarray, min_effect: float) -> dict[str, np.ndarray]:
    """The per-series part of :func:`monotonicity` on a block ``(..., budget, trial)`` of positive values:
    centres and trial counts, noise, the isotonic fit, the unexplained share, and per budget pair the
    inversion p-value and its reproducibility (``(..., budget, budget)``)."""
    lead = values.shape[:-2]
    B, T = values.shape[-2:]
    with quiet():
        logs = np.log(np.asarray(values, dtype=np.float64).reshape(-1, B, T))
    center, n = cell_centers(logs)
    sd = noise_sd(logs, center, n)
    se = np.where(n >= 3, _MEDIAN_EFF, 1.0) * sd[:, None] / np.sqrt(np.maximum(n, 1))
    S = center.shape[0]
    iso = np.full((S, B), np.nan)
    unexplained = np.full(S, np.nan)
    p_pairs = np.full((S, B, B), np.nan)
    diff = center[:, :, None] - center[:, None, :]
    upper = np.triu(np.ones((B, B), dtype=bool), k=1)
    from sklearn.isotonic import IsotonicRegression  # scikit-learn on first use: `import analysis` stays light

    for s in range(S):
        ok = np.isfinite(center[s])
        if ok.sum() < 2:
            continue
        w = n[s][ok].astype(float)
        fit = IsotonicRegression(increasing=True).fit(budgets[ok], center[s][ok], sample_weight=w)
        iso[s, ok] = fit.predict(budgets[ok])
        mean = np.average(center[s][ok], weights=w)
        total = float(np.sum(w * (center[s][ok] - mean) ** 2))
        resid = float(np.sum(w * (center[s][ok] - iso[s, ok]) ** 2))
        unexplained[s] = resid / total if total > 0 else 0.0
        if not np.isfinite(sd[s]) or sd[s] <= 0:
            continue
        pair_se = np.sqrt(se[s][:, None] ** 2 + se[s][None, :] ** 2)
        tested = upper & ok[:, None] & ok[None, :] & (diff[s] > np.log1p(min_effect))
        with np.errstate(all="ignore"):
            p_pairs[s][tested] = stats.norm.sf(diff[s][tested] / pair_se[tested])
    out = {"center": center, "n": n.astype(np.float64), "sd": sd, "iso": iso, "unexplained": unexplained,
           "p_pairs": p_pairs, "repro": _pair_reproducibility(logs, center)}
    return {k: v.reshape(lead + v.shape[1:]) for k, v in out.items()}


def monotonicity(ds: xr.Dataset, var: str = "latency", *, alpha: float = 0.05, min_effect: float = 0.0) -> xr.Dataset:
    """How far ``var`` is from non-decreasing in budget, per series.

    Per series (every dim but budget and trial) and budget, the centre is the
    median over trials of ``log(var)`` (the mean for fewer than 3 trials).
    An isotonic (non-decreasing) regression of the centres on budget,
    weighted by the number of trials, is the best monotone explanation.
    An *inversion* is a pair of budgets ``b1 < b2`` whose centres satisfy
    ``c1 - c2 > log(1 + min_effect)`` with the one-sided z-test of
    ``c1 - c2 > 0`` (noise from :func:`noise_sd`) significant at ``alpha``
    after Benjamini-Hochberg correction over every pair tested in the dataset,
    and, with 3 or more trials at both budgets, reproducible: at least 3/4 of
    ``b1``'s trials lie above ``c2`` and at least 3/4 of ``b2``'s trials below
    ``c1`` (a few slow runs in one cell are noise, not an inversion).

    Parameters
    ----------
    ds
        Dataset with ``var`` over a ``budget`` dim (``trial`` optional).
        Values must be positive; cells whose status is not ok are ignored.
    var
        Variable to check, default ``latency``.
    alpha
        False-discovery rate of the inversion tests.
    min_effect
        Smallest inversion, as a fraction of the larger budget's value, that
        counts (0: any significant inversion).

    Returns
    -------
    xarray.Dataset
        Over the series dims:

        - ``unexplained_share``: share of the (weighted) variance of the log
          centres the isotonic fit leaves unexplained, 0..1.
        - ``n_inversions``: number of significant inversions (pairs).
        - ``spike_ratio``: largest ``exp(c1 - c2)`` over significant
          inversions (1 when there are none).
        - ``spike_budget``, ``spike_recovery_budget``: ``b1`` and ``b2`` of
          that inversion (NaN when none).
        - ``noise_sd``: noise SD of one log value (about the coefficient of variation).
        - ``monotone``: True when there is no significant inversion.

        Over the series dims x budget:

        - ``center``: typical value (``exp`` of the centre, units of ``var``).
        - ``isotonic``: the isotonic fit (units of ``var``).
        - ``inverted``: the budget is the smaller member of a significant inversion.
        - ``inversion_q``: smallest BH q-value of an inversion starting at this budget.

        Attr ``summary``: one line per non-monotone series.

    Raises
    ------
    InputError
        When ``ds`` lacks ``var`` or a ``budget`` dim with at least 3 values,
        when ``var`` has non-positive values or no finite value, or when
        ``alpha``/``min_effect`` are out of range.
    """
    fn = "monotonicity"
    ds = check_dataset(ds, fn, [var])
    alpha = check_fraction(alpha, "alpha", fn)
    if not (isinstance(min_effect, (int, float)) and 0 <= min_effect < 10):
        raise InputError(f"{fn}(): min_effect must be a number in [0, 10), got {min_effect!r}")
    da = ok_values(ds, var)
    finite = np.isfinite(da)
    checks = (finite.any().data, (da <= 0).where(finite, False).any().data, da.where(finite).min().data)
    any_finite, any_nonpos, smallest = dask.compute(*checks) if is_lazy(da) else checks
    if not bool(any_finite):
        raise InputError(f"{fn}(): variable {var!r} has no finite value")
    if bool(any_nonpos):
        raise InputError(f"{fn}(): variable {var!r} must be positive (it is compared on a log scale); found {float(smallest)!r}")
    series = series_of(da)
    budgets = np.asarray(ds[BUDGET].values, dtype=np.float64)  # sorted by check_dataset
    values = _inversions(_fit(da, series, budgets, min_effect=float(min_effect)), budgets, alpha=alpha)
    units = str(ds[var].attrs.get("units", ""))
    out = xr.Dataset(wrap(VARIABLES, values, series, {BUDGET: ([BUDGET], {BUDGET: ds[BUDGET].values})}, var=var,
                          units=units),
                     attrs={"var": var, "alpha": alpha, "min_effect": float(min_effect)})
    out.attrs["summary"] = "\n".join([_summary(values, series, var, alpha), *origin_lines(out)])
    return out


def _fit(da: xr.DataArray, series: Series, budgets: np.ndarray, *, min_effect: float) -> dict[str, np.ndarray]:
    """:func:`_series_block`'s outputs ``(series, ...)``: per series, lazily for dask-backed input (blocks of
    series at a time)."""
    fitted = apply_named(
        _series_block, [as_series_array(da)], [[BUDGET, TRIAL]],
        outputs={"center": (BUDGET,), "n": (BUDGET,), "sd": (), "iso": (BUDGET,), "unexplained": (),
                 "p_pairs": (BUDGET, _PAIR), "repro": (BUDGET, _PAIR)},
        sizes={_PAIR: budgets.size}, kwargs={"budgets": budgets, "min_effect": min_effect},
    ).compute()
    return {name: series.unwrap(fitted[name]) for name in ("center", "sd", "iso", "unexplained", "p_pairs", "repro")}


def _inversions(fit: dict[str, np.ndarray], budgets: np.ndarray, *, alpha: float) -> dict[str, np.ndarray]:
    """The dataset-wide decisions on the per-series fits (Benjamini-Hochberg over every budget pair tested):
    every variable of the result, arrays ``(series,)`` or ``(series, budget)``."""
    center, p_pairs, repro = fit["center"], fit["p_pairs"], fit["repro"]
    S, B = center.shape
    diff = center[:, :, None] - center[:, None, :]
    q_pairs = bh(p_pairs)
    sig = (np.nan_to_num(q_pairs, nan=1.0) <= alpha) & ~(repro < 0.75)

    n_inv = sig.sum(axis=(1, 2))
    spike = np.ones(S)
    spike_b = np.full(S, np.nan)
    spike_r = np.full(S, np.nan)
    for s in range(S):
        if n_inv[s]:
            d = np.where(sig[s], diff[s], -np.inf)
            i, j = np.unravel_index(int(np.argmax(d)), d.shape)
            spike[s], spike_b[s], spike_r[s] = float(np.exp(d[i, j])), budgets[i], budgets[j]
    with quiet():
        inv_q = np.nanmin(np.where(np.isfinite(q_pairs), q_pairs, np.inf), axis=2)
    inv_q[~np.isfinite(inv_q)] = np.nan
    return {
        "unexplained_share": fit["unexplained"], "n_inversions": n_inv.astype(np.int64), "spike_ratio": spike,
        "spike_budget": spike_b, "spike_recovery_budget": spike_r, "noise_sd": fit["sd"], "monotone": n_inv == 0,
        "center": np.exp(center), "isotonic": np.exp(fit["iso"]), "inverted": sig.any(axis=2), "inversion_q": inv_q,
    }


def _summary(values: dict[str, np.ndarray], series: Series, var: str, alpha: float) -> str:
    """How many series are monotone, and one line per series that is not, for humans."""
    n_inv = values["n_inversions"]
    lines = []
    for s in range(series.size):
        if n_inv[s]:
            lines.append(
                f"{series.name(s)}: {var} not monotone in budget: {int(n_inv[s])} significant inversion(s), "
                f"largest {fmt_fixed(values['spike_ratio'][s])}x ({values['spike_budget'][s]:g} slower than "
                f"{values['spike_recovery_budget'][s]:g}); "
                f"{fmt_fixed(100 * values['unexplained_share'][s], 1)}% of variance not monotone"
            )
    # a series without any value is neither monotone nor not: it is not counted (cells of a sparse dataset)
    n_budgets = np.isfinite(values["center"]).reshape(series.size, -1).sum(axis=1)
    measured = n_budgets >= 2
    short = int(np.sum((n_budgets == 1)))  # (a series with no value at all is no series: not even mentioned)
    n_mono = int(np.sum((n_inv == 0) & measured))
    head = (f"{var}: {n_mono} of {int(measured.sum())} series monotone in budget (isotonic fit, BH alpha={alpha:g})"
            + (f"; {short} series with one measured budget not counted" if short else ""))
    return "\n".join([head, *lines])
