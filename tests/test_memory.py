"""memory_effect(): do the memory covariates explain a regime's excess latency?"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.memory import memory_effect


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return memory_effect(study)


def test_smooth_memory_does_not_explain_the_regime(result: xr.Dataset) -> None:
    mps = result.sel(device="mps")
    assert mps["has_regime"].all()
    assert (mps["r2_memory"] < 0.2).all()
    assert (mps["r2_added"] > 0.7).all()
    assert (mps["q"] < 1e-10).all()
    assert not mps["mem_changes"].any()
    # the deterministic device peak is a smooth function of budget; swap is constant 0
    assert not mps["used"].sel(covariate=["mem_device_peak", "swap_used"]).any()
    assert (mps["mem_jump"].sel(covariate="mem_device_peak") == 0).all()
    line = result.attrs["summary"].splitlines()[0]
    assert line.startswith("memory explains ") and "the regime adds " in line and "(p = " in line


def test_no_regime_nothing_to_explain(result: xr.Dataset) -> None:
    clean = result.sel(device=["cpu", "cuda"])
    assert not clean["has_regime"].any() and clean["r2_memory"].isnull().all()
    null = memory_effect(sd.null())
    assert not null["has_regime"].any()
    assert null.attrs["summary"].startswith("memory_effect: no regime found")


def test_memory_that_jumps_with_the_regime_explains_it() -> None:
    r = memory_effect(sd.memory_jump()).sel(cache=True).squeeze(drop=True)
    assert float(r["r2_memory"]) > 0.9
    assert float(r["r2_added"]) < 0.05
    assert float(r["p"]) > 1e-3
    jumped = r["mem_changes"].sel(covariate=["mem_device_peak", "mem_device_driver"])
    assert jumped.all()
    np.testing.assert_allclose(r["mem_jump"].sel(covariate="mem_device_peak"), 0.3, rtol=0.05)
    assert not r["mem_changes"].sel(covariate="mem_rss_peak")
    assert "mem_device_peak" in r.attrs["summary"]


def test_one_trial_nan_and_dask(result: xr.Dataset, study: xr.Dataset) -> None:
    one = memory_effect(sd.study(trials=1)).sel(device="mps", cache=True)
    assert (one["r2_added"] > 0.4).all() and (one["p"] < 1e-6).all()
    gappy = memory_effect(sd.study(missing=0.15)).sel(device="mps")
    assert (gappy["r2_added"] > 0.6).all() and not gappy["mem_changes"].any()
    lazy = memory_effect(study.chunk({"device": 1}))
    xr.testing.assert_allclose(lazy[["r2_memory", "r2_added", "p"]], result[["r2_memory", "r2_added", "p"]])


def test_named_covariates(study: xr.Dataset) -> None:
    r = memory_effect(study, covariates=["mem_rss_peak"])
    assert r["covariate"].values.tolist() == ["mem_rss_peak"]
    assert (r.sel(device="mps")["r2_memory"] < 0.2).all()


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda ds: ds.drop_vars(["mem_device_peak", "mem_device_driver", "mem_rss_peak", "mem_sys_available_min",
                                  "swap_used"]), {},
         "needs at least one memory covariate"),
        (lambda ds: ds, {"covariates": ["gpu_temp"]}, "needs variable 'gpu_temp'"),
        (lambda ds: ds, {"covariates": []}, "covariates is empty"),
        (lambda ds: ds, {"degree": 1.5}, "degree must be an integer >= 0, got 1.5"),
        (lambda ds: ds, {"alpha": 0}, "alpha must be in"),
        (lambda ds: ds.drop_vars("latency"), {}, "needs variable 'latency'"),
    ],
)
def test_bad_input(study: xr.Dataset, make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        memory_effect(make(study), **kwargs)
