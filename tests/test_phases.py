"""phases(): the prefill / decode split of each regime's excess latency."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.phases import phases
from analysis.regimes import regimes


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return phases(study)


def _true_excess(ds: xr.Dataset, var: str) -> xr.DataArray:
    """Mean extra time inside the planted regime: same seed without regimes = same noise."""
    null = sd.null(trials=ds.sizes["trial"])
    return (ds[var] - null[var]).where(ds["truth_anomalous"]).mean(["budget", "trial"])


def test_decode_carries_the_cache_on_excess(result: xr.Dataset, study: xr.Dataset) -> None:
    on = result.isel(regime=0).sel(device="mps", cache=True).squeeze(drop=True)
    np.testing.assert_allclose(on["regime_start"].values, [112, 80])
    np.testing.assert_allclose(on["regime_end"].values, [160, 160])
    truth = _true_excess(study, "decode_time").sel(device="mps", cache=True).squeeze(drop=True)
    np.testing.assert_allclose(on["excess_decode"].values, truth.values, rtol=0.15)
    assert ((on["excess_decode_lo"] < truth) & (truth < on["excess_decode_hi"])).all()
    assert (np.abs(on["excess_prefill"]) < 0.01 * on["excess_decode"]).all()
    assert (on["decode_share"] > 0.99).all() and (on["decode_share_lo"] > 0.95).all()
    assert (on["q_decode"] < 1e-6).all()


def test_cache_off_regime_is_decode_too(result: xr.Dataset) -> None:
    off = result.isel(regime=0).sel(device="mps", cache=False).squeeze(drop=True)
    np.testing.assert_allclose(off["regime_start"].values, [208, 208])
    assert (off["decode_share"] > 0.99).all()


def test_a_prefill_regime_is_attributed_to_prefill() -> None:
    ds = sd.prefill_regime()
    r = phases(ds).isel(regime=0).sel(cache=True).squeeze(drop=True)
    np.testing.assert_allclose(float(r["regime_start"]), 64)
    np.testing.assert_allclose(float(r["regime_end"]), 96)
    truth = float(ds["prefill_time"].sel(budget=[64, 80, 96], cache=True).mean() * (1 - 1 / 30))
    np.testing.assert_allclose(float(r["excess_prefill"]), truth, rtol=0.1)
    assert float(r["decode_share"]) < 0.2
    assert float(r["q_prefill"]) < 1e-6


def test_no_regime_on_cpu_cuda_or_null(result: xr.Dataset) -> None:
    assert (result.sel(device=["cpu", "cuda"])["n_regimes"] == 0).all()
    assert result.sel(device=["cpu", "cuda"])["excess_decode"].isnull().all()
    null = phases(sd.null())
    assert (null["n_regimes"] == 0).all()
    assert null.attrs["summary"].startswith("phases: 0 regime(s)")


def test_one_trial_nan_and_dask(result: xr.Dataset, study: xr.Dataset) -> None:
    one = phases(sd.study(trials=1)).sel(device="mps", cache=True).isel(regime=0)
    assert (one["decode_share"] > 0.99).all()
    assert np.isfinite(one["excess_decode_lo"]).all()
    gappy = phases(sd.study(missing=0.15)).sel(device="mps", cache=True).isel(regime=0)
    assert (gappy["decode_share"] > 0.99).all()
    lazy = phases(study.chunk({"device": 1}))
    xr.testing.assert_allclose(lazy[["excess_decode", "decode_share"]], result[["excess_decode", "decode_share"]])


def test_reuses_a_given_regimes_result(study: xr.Dataset, result: xr.Dataset) -> None:
    r = phases(study, reg=regimes(study))
    xr.testing.assert_allclose(r["excess_decode"], result["excess_decode"])


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda ds: ds.drop_vars("prefill_time"), {}, "needs variable 'prefill_time'"),
        (lambda ds: ds, {"degree": -1}, "degree must be an integer >= 0, got -1"),
        (lambda ds: ds, {"ci": 1.0}, "ci must be in"),
        (lambda ds: ds.isel(budget=[0, 1]), {}, "at least 3 budgets"),
        (lambda ds: ds, {"reg": xr.Dataset()}, "reg lacks 'anomalous'"),
    ],
)
def test_bad_input(study: xr.Dataset, make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        phases(make(study), **kwargs)


def test_mismatched_regimes_result(study: xr.Dataset) -> None:
    other = regimes(study.isel(prompt_len=[0]))
    with pytest.raises(InputError, match="reg does not match the dataset: prompt_len=48"):
        phases(study, reg=other)


def test_package_attributes_are_callable(study: xr.Dataset) -> None:
    import analysis
    import analysis.questions.boundaries
    import analysis.questions.phases  # importing the modules by name leaves the package attributes the functions

    assert int(analysis.phases(study)["n_regimes"].sum()) == 4
    assert str(analysis.boundaries(study).sel(device="mps", cache=True).squeeze()["onset_axis"].values) == "total"
