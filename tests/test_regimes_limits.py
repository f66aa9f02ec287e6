"""Long budget axes: refused beyond MAX_BUDGETS before any work, bounded memory below it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis import regimes
from analysis.detect import inference
from analysis.errors import InputError
from analysis.regimes import MAX_BUDGETS
from analysis.synthetic import make_dataset


def test_more_budgets_than_the_scan_takes_are_refused_with_the_way_out() -> None:
    ds = make_dataset(0, models=("gpt2",), caches=(True,), budgets=tuple(range(1, MAX_BUDGETS + 2)), trials=2,
                      step_time=False)
    with pytest.raises(InputError, match=rf"{MAX_BUDGETS + 1} budgets.*at most {MAX_BUDGETS}.*slice\(None, None, 2\)"):
        regimes(ds)


def test_small_sample_factors_follow_their_large_sample_laws_beyond_the_simulated_length() -> None:
    n0 = inference._SIMULATED_LENGTH
    b0, d0 = inference._small_sample(n0)
    for n in (n0 + 1, 200, 1500):
        b, d = inference._small_sample(n)
        assert 1.0 < b < b0 and d > d0
        assert b - 1.0 == pytest.approx((b0 - 1.0) * n0 / n)
        assert d == pytest.approx(d0 * (n - 1) / (n0 - 1))
    # the simulated factors are those of one draw of all rows (chunks draw the same numbers)
    rng = np.random.default_rng([0x5CA1E, 40])
    s2 = inference._diff_scale(rng.standard_normal((inference._CALIBRATION_ROWS, 40))) ** 2
    assert inference._small_sample(40)[0] == pytest.approx(float(s2.mean()), rel=1e-12)


def test_a_long_series_is_analysed() -> None:
    ds = make_dataset(0, models=("gpt2",), caches=(True,), budgets=tuple(range(4, 4 * 101, 4)), trials=2,
                      step_time=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = regimes(ds, n_perm=20)
    assert np.isfinite(r["p_series"]).all() and np.isfinite(r["cell_sd"]).all()


def test_rejected_steps_never_cover_every_budget_of_a_real_half() -> None:
    """A real 8-budget null series (half of a 10-trial H100 file) once had three rejected intervals covering
    every budget: the joint steps were not identified and their effects came out x2.5e7 (an OverflowError in
    ``compare`` for other halves). A further step must leave the smooth curve k + 1 budgets of its own."""
    from pathlib import Path

    import analysis

    path = Path(__file__).resolve().parent / "data" / "real" / "cuda-loop-ends-t10-off.nc"
    ds = analysis.open_dataset(path).load()
    perm = np.random.default_rng(1000 + 21).permutation(ds.sizes["trial"])  # the half that failed
    half = ds.isel(trial=np.sort(perm[:5])).assign_coords(trial=np.arange(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = regimes(half)
    eff = r["effect"].values[np.isfinite(r["effect"].values)]
    assert eff.size and np.all((eff > 0.5) & (eff < 2.0)), eff
    assert not bool(r["anomalous"].any())
    # within the scan: several rejected steps leave the curve's k + 1 budgets (here k = 2) and finite effects
    rng = np.random.default_rng(0)
    E = np.zeros((10, 5))
    E[3:6] += 1.0
    E[:2] -= 0.5
    E[7:] += 0.5
    E += 0.01 * rng.standard_normal(E.shape)
    x = np.linspace(-1, 1, 10)
    res = inference.test_series(E, np.stack([np.ones(10), x], axis=1) / np.sqrt(10), np.random.default_rng(1))
    assert len(res.intervals) > 1
    assert sum(j - i + 1 for i, j in res.intervals) <= 10 - 3, res.intervals
    assert np.all(np.abs(res.effect) < 2.0), res.effect
