"""kv_speedup(): cache-off / cache-on latency with bootstrap CIs, and its collapse."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.kv import bootstrap_ratio, kv_speedup


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return kv_speedup(study, n_boot=300)


def test_bootstrap_ratio_point_and_interval() -> None:
    rng = np.random.default_rng(1)
    num = 8.0 * np.exp(rng.normal(0, 0.05, (4, 5, 6)))
    den = np.exp(rng.normal(0, 0.05, (4, 5, 6)))
    ratio, lo, hi = bootstrap_ratio(num, den, n_boot=400, seed=0)
    np.testing.assert_allclose(ratio, num.mean(-1) / den.mean(-1))
    assert (lo < ratio).all() and (ratio < hi).all()
    np.testing.assert_allclose(np.median(hi - lo), 8 * 0.05 * np.sqrt(2 / 6) * 2 * 1.96, rtol=0.35)
    r1, lo1, hi1 = bootstrap_ratio(num[..., :1], den[..., :1])
    assert np.isfinite(r1).all() and np.isnan(lo1).all() and np.isnan(hi1).all()


def test_speedup_about_8x_outside_and_2x_inside(result: xr.Dataset, study: xr.Dataset) -> None:
    mps = result.sel(device="mps").squeeze(drop=True)
    np.testing.assert_allclose(mps["speedup_outside"].values, 8.0, rtol=0.2)
    np.testing.assert_allclose(mps["speedup_inside"].values, 2.0, rtol=0.2)
    truth = study["truth_anomalous"].sel(device="mps", cache=True).any("trial").squeeze(drop=True)
    assert (mps["collapse"] == truth).all()
    np.testing.assert_allclose(mps["collapse_start"].values, [112, 80])
    np.testing.assert_allclose(mps["collapse_end"].values, [160, 160])
    # the collapsed speedup is about a quarter of its trend (cache-on decode 4x slower)
    np.testing.assert_allclose(mps["collapse_ratio"].where(mps["collapse"]).median().item(), 0.25, rtol=0.2)
    # CIs bracket the point estimates and are narrow-ish
    assert (result["speedup_lo"] <= result["speedup"]).all() and (result["speedup"] <= result["speedup_hi"]).all()
    assert ((result["speedup_hi"] - result["speedup_lo"]) / result["speedup"]).median() < 0.2


def test_cpu_and_cuda_do_not_collapse(result: xr.Dataset) -> None:
    clean = result.sel(device=["cpu", "cuda"])
    assert not clean["collapse"].any()
    assert (clean["n_collapsed"] == 0).all() and clean["speedup_inside"].isnull().all()
    assert ((clean["speedup"] > 4) & (clean["speedup"] < 12)).all()
    assert "2 of 6 series collapse" in result.attrs["summary"]


def test_null_data_report_no_collapse() -> None:
    r = kv_speedup(sd.null(), n_boot=100)
    assert not r["collapse"].any()
    assert "0 of 6 series collapse" in r.attrs["summary"]


def test_one_trial_nan_and_dask(result: xr.Dataset, study: xr.Dataset) -> None:
    one = kv_speedup(sd.study(trials=1))
    assert one["speedup_lo"].isnull().all()
    # the MPS collapses are the same with one trial; on CPU one trial cannot tell the baselines' misfit (the
    # expected speedup x1.85 off at the first budget, a smooth decline after it) from a drop of the last six
    # budgets (the scan's null rests on the budget-to-budget scatter alone), so CPU may differ there
    assert (one["collapse"].sel(device="mps") == result["collapse"].sel(device="mps")).all()
    assert not one["collapse"].sel(device="cuda").any()
    gappy = kv_speedup(sd.study(missing=0.15), n_boot=100)
    np.testing.assert_allclose(gappy.sel(device="mps")["speedup_inside"].values.ravel(), 2.0, rtol=0.25)
    assert not gappy.sel(device=["cpu", "cuda"])["collapse"].any()
    lazy = kv_speedup(study.chunk({"device": 1}), n_boot=300)
    xr.testing.assert_allclose(lazy[["speedup", "speedup_lo", "expected"]], result[["speedup", "speedup_lo", "expected"]])
    assert (lazy["collapse"] == result["collapse"]).all()


def test_reuses_a_given_latency_regimes_result(study: xr.Dataset, result: xr.Dataset) -> None:
    from analysis.regimes import regimes

    r = kv_speedup(study, reg=regimes(study), n_boot=300)
    assert (r["collapse"] == result["collapse"]).all()


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda ds: ds.isel(cache=[1]), {}, r"needs cache values False and True to compare, got \[True\]"),
        (lambda ds: ds.isel(cache=0, drop=True), {}, "needs a 'cache' dim"),
        (lambda ds: ds.drop_vars("latency"), {}, "needs variable 'latency'"),
        (lambda ds: ds, {"n_boot": 0}, "n_boot must be an integer >= 1, got 0"),
        (lambda ds: ds, {"ci": 95}, "ci must be in"),
        (lambda ds: ds, {"scaling": "linear"}, "'scaling' is fixed for the speedup series"),
        (lambda ds: ds, {"reg": "nope"}, "reg must be the xarray.Dataset returned by analysis.regimes"),
        (lambda ds: ds.assign(latency=ds["latency"].where(ds["cache"])), {}, "no finite value with the cache off"),
    ],
)
def test_bad_input(study: xr.Dataset, make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        kv_speedup(make(study), **kwargs)


def test_summary_counts_only_series_with_both_cache_settings() -> None:
    # failed before: a series measured only with the cache on (or off) was counted ("1 of 96" on the study file)
    ds = xr.concat([sd.study(), sd.study()], dim="host").assign_coords(host=["both", "one"])
    ds["latency"] = ds["latency"].where((ds["host"] == "both") | ds["cache"])
    r = kv_speedup(ds)
    assert "of 6 series collapse below their trend (6 more series lack cache on or off at every budget)" in \
        r.attrs["summary"]
