"""compare_backends(): which devices show regimes ("absent on CPU and CUDA")."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.backends import compare_backends
from analysis.regimes import regimes


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return compare_backends(study)


def test_regimes_on_mps_only(result: xr.Dataset) -> None:
    r = result.squeeze("model")
    assert r["shows_regimes"].sel(device="mps") and not r["shows_regimes"].sel(device=["cpu", "cuda"]).any()
    assert str(r["devices_with_regimes"].values) == "mps"
    assert int(r["n_series_with_regime"].sel(device="mps")) == 4
    assert (r["n_series"] == 4).all()
    np.testing.assert_allclose(float(r["max_ratio"].sel(device="mps")), 4.0, rtol=0.15)
    assert r["max_ratio"].sel(device=["cpu", "cuda"]).isnull().all()
    assert str(r["anomalous_budgets"].sel(device="mps").values) == "80,96,112,128,144,160,208,224"
    # cache on: 4 + 6 budgets, cache off: 2 + 2, of 4 series x 16 budgets
    np.testing.assert_allclose(float(r["share_anomalous"].sel(device="mps")), 14 / 64)
    assert "regimes on mps" in result.attrs["summary"] and "absent on cpu and cuda" in result.attrs["summary"]


def test_null_and_two_models() -> None:
    r = compare_backends(sd.null())
    assert not r["shows_regimes"].any()
    assert "no regime on any device" in r.attrs["summary"]
    two = xr.concat([sd.study(), sd.null().assign_coords(model=["opt-350m"])], dim="model")
    r = compare_backends(two)
    assert r["devices_with_regimes"].values.tolist() == ["mps", ""]


def test_one_trial_nan_dask_and_reuse(result: xr.Dataset, study: xr.Dataset) -> None:
    r = compare_backends(sd.study(missing=0.15)).squeeze("model")
    assert r["devices_with_regimes"].item() == "mps"
    # one trial: MPS still, CUDA never; the simulated CPU cache-off curve bends more than the quadratic family
    # (ratio 0.59 at the first budget, 1.2-1.28 over the last six), which one trial cannot tell from a wide step
    # (docs/methods.md, "Limits")
    one = compare_backends(sd.study(trials=1)).squeeze("model")
    assert "mps" in one["devices_with_regimes"].item().split(",")
    assert "cuda" not in one["devices_with_regimes"].item()
    lazy = compare_backends(study.chunk({"device": 1}))
    assert (lazy["shows_regimes"] == result["shows_regimes"]).all()
    again = compare_backends(study, reg=regimes(study))
    xr.testing.assert_allclose(again["max_ratio"], result["max_ratio"])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ds: ds.isel(device=0, drop=True), "needs a 'device' dim"),
        (lambda ds: ds.drop_vars("latency"), "needs variable 'latency'"),
        (lambda ds: ds.rename(budget="n_new"), "needs a 'budget' dim"),
    ],
)
def test_bad_input(study: xr.Dataset, make, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        compare_backends(make(study))


def test_extra_series_dim_is_kept() -> None:
    ds = xr.concat([sd.study(), sd.null()], dim="host").assign_coords(host=["mac", "linux"])
    r = compare_backends(ds)
    assert r["devices_with_regimes"].sel(host="mac").item() == "mps"
    assert r["devices_with_regimes"].sel(host="linux").item() == ""
    assert "linux/gpt2-medium: no regime on any device" in r.attrs["summary"]


def test_device_names_are_whole_when_the_first_series_has_no_regime() -> None:
    # failed before: np.apply_along_axis sized the strings by the first (empty) result, giving "m" for "mps"
    ds = xr.concat([sd.null(), sd.study()], dim="host").assign_coords(host=["linux", "mac"])
    r = compare_backends(ds)
    assert r["devices_with_regimes"].sel(host="linux").item() == ""
    assert r["devices_with_regimes"].sel(host="mac").item() == "mps"
