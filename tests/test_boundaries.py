"""boundaries(): do onset and recovery line up on budget or on total length?"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.boundaries import boundaries, slope_range


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return boundaries(study)


def test_slope_range() -> None:
    p = np.array([16.0, 48.0])
    # onset in (96, 112] at P=16 and (64, 80] at P=48: slope -1 fits, 0 does not
    lo, hi = slope_range(p, np.array([96.5, 64.5]), np.array([112.0, 80.0]))
    assert lo < -1 < hi < 0
    np.testing.assert_allclose([lo, hi], [-1.484375, -0.515625])
    # identical intervals: slope 0 fits
    lo, hi = slope_range(p, np.array([160.0, 160.0]), np.array([175.0, 175.0]))
    assert lo < 0 < hi
    # censored bound: unbounded range
    np.testing.assert_allclose(slope_range(p, np.array([-np.inf, 64.5]), np.array([16.0, 80.0])), [1.515625, np.inf])
    # three prompts that no line passes through
    assert np.isnan(slope_range(np.array([0.0, 1.0, 2.0]), np.array([0.0, 10.0, 0.0]), np.array([1.0, 11.0, 1.0]))).all()
    assert np.isnan(slope_range(np.array([5.0, 5.0]), np.zeros(2), np.ones(2))).all()


def test_onset_on_total_length_recovery_on_budget(result: xr.Dataset) -> None:
    on = result.sel(device="mps", cache=True).squeeze(drop=True)
    assert str(on["onset_axis"].values) == "total"
    assert str(on["recovery_axis"].values) == "budget"
    np.testing.assert_allclose(on["onset_budget"].values, [112, 80])
    np.testing.assert_allclose(on["recovery_budget"].values, [160, 160])
    # planted: total >= 128 and budget <= 160
    assert float(on["onset_threshold_lo"]) <= 128 <= float(on["onset_threshold_hi"])
    assert float(on["recovery_threshold_lo"]) <= 160 <= float(on["recovery_threshold_hi"])
    assert float(on["onset_slope_lo"]) < -1 < float(on["onset_slope_hi"]) < 0
    assert "onset on total" in result.attrs["summary"]


def test_budget_onset_is_recognised() -> None:
    r = boundaries(sd.budget_onset()).sel(cache=True).squeeze(drop=True)
    assert str(r["onset_axis"].values) == "budget" and str(r["recovery_axis"].values) == "budget"
    assert float(r["onset_threshold_lo"]) <= 96 <= float(r["onset_threshold_hi"])


def test_no_regime_is_unknown(result: xr.Dataset) -> None:
    clean = result.sel(device=["cpu", "cuda"])
    assert (clean["onset_axis"] == "unknown").all() and (clean["n_prompts"] == 0).all()
    null = boundaries(sd.null())
    assert (null["onset_axis"] == "unknown").all()
    assert null.attrs["summary"].startswith("boundaries: 0 of 6 groups")


def test_one_trial_nan_and_dask(result: xr.Dataset, study: xr.Dataset) -> None:
    for ds in (sd.study(trials=1), sd.study(missing=0.15)):
        on = boundaries(ds).sel(device="mps", cache=True).squeeze(drop=True)
        assert str(on["onset_axis"].values) == "total" and str(on["recovery_axis"].values) == "budget"
    lazy = boundaries(study.chunk({"device": 1}))
    assert (lazy["onset_axis"] == result["onset_axis"]).all()
    xr.testing.assert_allclose(lazy["onset_budget"], result["onset_budget"])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ds: ds.isel(prompt_len=[0]), r"needs at least 2 prompt_len values to tell budget from total length, got \[16\]"),
        (lambda ds: ds.isel(prompt_len=0, drop=True), "needs a 'prompt_len' dim"),
        (lambda ds: ds.drop_vars("latency"), "needs variable 'latency'"),
        (lambda ds: ds.isel(budget=[0, 1]), "at least 3 budgets"),
    ],
)
def test_bad_input(study: xr.Dataset, make, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        boundaries(make(study))
