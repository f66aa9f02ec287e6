"""step_regimes(): execution modes of per-step times and where runs switch mode."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import study_data as sd
from analysis.errors import InputError
from analysis.questions.steps import step_regimes


@pytest.fixture(scope="module")
def from_step() -> xr.Dataset:
    return sd.from_step(step=40)


@pytest.fixture(scope="module")
def result(from_step: xr.Dataset) -> xr.Dataset:
    return step_regimes(from_step)


def _on(r: xr.Dataset) -> xr.Dataset:
    return r.sel(cache=True).squeeze(drop=True)


def test_runs_enter_a_slow_mode_at_the_planted_step(result: xr.Dataset, from_step: xr.Dataset) -> None:
    on = _on(result)
    assert int(on["n_modes"]) == 2
    ratio = on["mode_ratio"].values[~np.isnan(on["mode_ratio"].values)]
    np.testing.assert_allclose(sorted(ratio), [1.0, 3.0], rtol=0.1)
    slow_budgets = [96, 112, 128, 144]
    assert on["pattern"].sel(budget=slow_budgets).values.tolist() == ["enters"] * 4
    np.testing.assert_allclose(on["onset_step"].sel(budget=slow_budgets).values, 40, atol=2)
    np.testing.assert_allclose(on["switch_step"].sel(budget=slow_budgets).values, 40, atol=3)
    # steps 40..b-1 of the b-1 decode steps are slow
    b = np.array(slow_budgets, dtype=float)
    np.testing.assert_allclose(on["slow_fraction"].sel(budget=slow_budgets).values, (b - 40) / (b - 1), atol=0.03)
    others = on["pattern"].drop_sel(budget=slow_budgets)
    assert (others == "normal").all()
    assert (on["slow_share"].drop_sel(budget=slow_budgets) < 0.02).all()
    assert int(result.sel(cache=False).squeeze()["n_modes"]) == 1


def test_study_regime_is_slow_at_every_step() -> None:
    ds = sd.study(step_time=True, devices=("cpu", "mps"))
    r = step_regimes(ds)
    truth = ds["truth_anomalous"].any("trial")
    on = r.sel(device="mps", cache=True)
    assert (on["pattern"].where(truth.sel(device="mps", cache=True)) .fillna("whole") == "whole").all()
    assert (on["pattern"].where(~truth.sel(device="mps", cache=True)).fillna("normal") == "normal").all()
    np.testing.assert_allclose(on["mode_ratio"].max("mode").squeeze().values, 4.0, rtol=0.1)
    assert on["switch_step"].isnull().all()  # no run changes mode part-way
    off = r.sel(device="mps", cache=False)
    np.testing.assert_allclose(off["mode_ratio"].max("mode").squeeze().values, 1.6, rtol=0.1)
    assert (r.sel(device="cpu")["n_modes"] == 1).all()


def test_null_data_have_one_mode() -> None:
    r = step_regimes(sd.null(step_time=True, devices=("mps",)))
    assert (r["n_modes"] == 1).all()
    assert (r["pattern"] == "normal").all()
    assert r["switch_step"].isnull().all()
    assert "0 of 4 series" in r.attrs["summary"]


def test_one_trial_nan_and_dask(result: xr.Dataset) -> None:
    one = _on(step_regimes(sd.from_step(trials=1)))
    assert one["pattern"].sel(budget=[96, 112, 128, 144]).values.tolist() == ["enters"] * 4
    ds = sd.from_step()
    ds["step_time"][dict(trial=0, budget=6)] = np.nan  # a failed run
    ds["latency"][dict(trial=0, budget=6)] = np.nan
    r = _on(step_regimes(ds))
    assert np.isnan(r["slow_share"].isel(budget=6, trial=0))
    assert r["pattern"].sel(budget=112) == "enters"
    lazy = step_regimes(sd.from_step().chunk({"budget": 4}))
    xr.testing.assert_allclose(lazy[["slow_share", "mode_ratio"]], result[["slow_share", "mode_ratio"]])
    assert (lazy["pattern"] == result["pattern"]).all()


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda ds: ds.drop_vars("step_time"), {}, "needs per-step times"),
        (lambda ds: ds, {"max_modes": 0}, "max_modes must be an integer >= 1, got 0"),
        (lambda ds: ds, {"min_effect": 0}, "min_effect must be in"),
        (lambda ds: ds, {"penalty": -1.0}, "penalty must be a positive number"),
        (lambda ds: ds.assign(step_time=ds["step_time"] * np.nan), {}, "no positive finite decode step"),
        (lambda ds: ds.isel(step=[0]), {}, "no decode step"),
        (lambda ds: ds.rename(budget="b"), {}, "needs a 'budget' dim"),
    ],
)
def test_bad_input(from_step: xr.Dataset, make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        step_regimes(make(from_step), **kwargs)
