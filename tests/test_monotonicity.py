"""monotonicity(): isotonic fit, significant inversions, spike ratio."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.monotonicity import monotonicity


@pytest.fixture(scope="module")
def result(study: xr.Dataset) -> xr.Dataset:
    return monotonicity(study)


def _sel(r: xr.Dataset, device: str, cache: bool) -> xr.Dataset:
    return r.sel(device=device, cache=cache).squeeze(drop=True)


def test_cache_on_regime_is_a_large_significant_spike(result: xr.Dataset) -> None:
    on = _sel(result, "mps", True)
    assert not on["monotone"].any()
    # 4x slower decode at budget 160 against a normal 176: about 4 * 160/176 ~ 3.6x
    np.testing.assert_allclose(on["spike_ratio"].values, 3.6, rtol=0.15)
    assert set(on["spike_budget"].values.tolist()) == {160.0}
    assert set(on["spike_recovery_budget"].values.tolist()) == {176.0}
    assert (on["unexplained_share"] > 0.05).all()
    assert on["inverted"].sel(budget=160).all()


def test_residual_cache_off_non_monotonicity_is_weaker(result: xr.Dataset) -> None:
    off = _sel(result, "mps", False)
    assert (off["n_inversions"] > 0).all()
    # 1.6x at budget 224 against 240, whose cache-off latency is ~1.1x larger
    assert ((off["spike_ratio"] > 1.25) & (off["spike_ratio"] < 1.75)).all()
    assert set(off["spike_budget"].values.tolist()) <= {208.0, 224.0}
    assert (off["spike_ratio"] < _sel(result, "mps", True)["spike_ratio"]).all()


def test_cpu_and_cuda_are_monotone(result: xr.Dataset) -> None:
    clean = result.sel(device=["cpu", "cuda"])
    assert clean["monotone"].all()
    assert (clean["spike_ratio"] == 1.0).all()
    assert (clean["unexplained_share"] < 1e-3).all()
    assert clean["spike_budget"].isnull().all()


def test_null_data_report_no_effect() -> None:
    r = monotonicity(sd.null())
    assert r["monotone"].all() and (r["n_inversions"] == 0).all()
    assert "12 of 12 series monotone" in r.attrs["summary"]
    # noise estimate is the simulated 5% run-to-run CV (log units)
    np.testing.assert_allclose(float(r["noise_sd"].median()), 0.05, rtol=0.3)


def test_one_trial() -> None:
    r = monotonicity(sd.study(trials=1))
    on = _sel(r, "mps", True)
    np.testing.assert_allclose(on["spike_ratio"].values, 3.6, rtol=0.15)
    assert r.sel(device=["cpu", "cuda"])["monotone"].all()
    assert monotonicity(sd.null(trials=1))["monotone"].all()


def test_nan_cells() -> None:
    ds = sd.study(missing=0.15)
    r = monotonicity(ds)
    assert not _sel(r, "mps", True)["monotone"].any()
    assert r.sel(device=["cpu", "cuda"])["monotone"].all()
    # a budget with no data at all gets NaN, not an error
    ds["latency"][dict(budget=3)] = np.nan
    r = monotonicity(ds)
    assert r["center"].isel(budget=3).isnull().all()
    assert np.isfinite(r["center"].isel(budget=4)).all()


def test_dask_input_matches_eager(study: xr.Dataset, result: xr.Dataset) -> None:
    lazy = monotonicity(study.chunk({"device": 1}))
    names = ["spike_ratio", "unexplained_share", "center"]
    xr.testing.assert_allclose(lazy[names], result[names])
    assert (lazy["n_inversions"] == result["n_inversions"]).all()


def test_other_variable_and_min_effect(study: xr.Dataset) -> None:
    r = monotonicity(study, var="decode_time", min_effect=2.0)
    # only the cache-on regime's inversions exceed a 3x ratio
    assert not _sel(r, "mps", True)["monotone"].any()
    assert _sel(r, "mps", False)["monotone"].all()


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda ds: ds, {"var": "nope"}, "needs variable 'nope'"),
        (lambda ds: ds.isel(budget=[0, 1]), {}, "at least 3 budgets"),
        (lambda ds: ds.assign(latency=-ds["latency"]), {}, "must be positive"),
        (lambda ds: ds.assign(latency=ds["latency"] * np.nan), {}, "no finite value"),
        (lambda ds: ds["latency"], {}, "expects an xarray.Dataset, got 'DataArray'"),
        (lambda ds: ds, {"alpha": 1.5}, r"alpha must be in \(0.0, 1.0\), got 1.5"),
        (lambda ds: ds, {"min_effect": -1}, "min_effect must be a number"),
        (lambda ds: ds.drop_dims("budget"), {"var": "n_params"}, "needs a 'budget' dim"),
    ],
)
def test_bad_input(study: xr.Dataset, make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        monotonicity(make(study), **kwargs)


def test_slow_runs_in_one_cell_are_noise_unless_every_trial_is_slow() -> None:
    ds = sd.null(devices=("cpu",))
    cell = dict(cache=1, prompt_len=0, budget=10)
    two = ds.copy(deep=True)
    two["latency"][cell | dict(trial=[0, 1])] *= 1.75
    assert monotonicity(two)["monotone"].all()
    three = ds.copy(deep=True)
    three["latency"][cell] *= 1.75
    r = monotonicity(three).isel(cache=1, prompt_len=0).squeeze()
    assert not r["monotone"] and float(r["spike_budget"]) == float(ds["budget"][10])


def test_package_attribute_is_callable(study: xr.Dataset) -> None:
    import analysis
    import analysis.questions.monotonicity  # importing the module by name leaves the package attribute the function

    assert (analysis.monotonicity(study)["n_inversions"] == monotonicity(study)["n_inversions"]).all()
