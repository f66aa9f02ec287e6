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
