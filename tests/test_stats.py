"""analysis.core.stats helpers against the scipy functions they stand in for."""

from __future__ import annotations

import warnings

import numpy as np


def test_mad_sd_is_scipys_normal_mad() -> None:
    """analysis.core.stats.mad_sd: scipy's median_abs_deviation(scale='normal', nan_policy='omit'), on a fast path."""
    from scipy import stats

    from analysis.core.stats import mad_sd

    r = np.random.default_rng(1).normal(size=(50, 7))
    r[r > 1.2] = np.nan
    r[3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = stats.median_abs_deviation(r, axis=-1, scale="normal", nan_policy="omit")
        about_zero = stats.median_abs_deviation(r, axis=-1, center=lambda a, axis: np.zeros(np.delete(a.shape, axis)),
                                                scale="normal", nan_policy="omit")
    np.testing.assert_allclose(mad_sd(r), expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(mad_sd(r, center=0.0), about_zero, rtol=1e-12, equal_nan=True)
