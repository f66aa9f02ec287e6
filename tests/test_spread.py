"""analysis.spread: the coefficient of variation of each cell's runs, checked against numpy on seeded data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from analysis.__main__ import main
from analysis.errors import InputError
from collector.dataset import schema


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=4, budgets=tuple(range(16, 129, 16)), trials=5, step_time=False)


def test_cv_is_sd_over_mean_of_the_ok_runs(ds: xr.Dataset) -> None:
    ds = ds.copy()
    status = ds["status"].values.copy()
    status[(0,) * (status.ndim - 1) + (1,)] = 1  # one failed run: left out of its cell
    ds["status"] = ds["status"].copy(data=status)
    res = analysis.spread(ds)
    lat = ds["latency"].where(ds["status"] == 0)
    expected = lat.std("trial", ddof=1) / lat.mean("trial")
    np.testing.assert_allclose(res["cv"].transpose(*expected.dims).values, expected.values, rtol=1e-12)
    assert int(res["n_runs"].values.min()) == 4 and int(res["n_runs"].values.max()) == 5
    med = res["cv"].median("budget")
    np.testing.assert_allclose(res["cv_median"].values, med.transpose(*res["cv_median"].dims).values, rtol=1e-12)
    top = res["cv"].max("budget")
    np.testing.assert_allclose(res["cv_max"].values, top.transpose(*res["cv_max"].dims).values, rtol=1e-12)
    at = res["cv"].idxmax("budget").transpose(*res["cv_max_budget"].dims)
    np.testing.assert_array_equal(res["cv_max_budget"].values, at.values)
    assert "run-to-run spread" in res.attrs["summary"] and res.attrs["var"] == "latency"


def test_known_spread_is_recovered() -> None:
    """Runs drawn with a coefficient of variation of 5% give about 5%."""
    rng = np.random.default_rng(0)
    budgets = np.arange(16, 16 * 41, 16)
    lat = 0.01 * budgets[:, None] * (1 + 0.05 * rng.standard_normal((budgets.size, 30)))
    ds = xr.Dataset({"latency": (("budget", "trial"), lat)}, coords={"budget": budgets, "trial": np.arange(30)})
    res = analysis.spread(ds)
    assert res["cv_median"].item() == pytest.approx(0.05, rel=0.1)
    assert res["cv"].dims == ("budget",) and res["n_runs"].values.tolist() == [30] * budgets.size


def test_one_run_per_cell_has_no_spread(ds: xr.Dataset) -> None:
    res = analysis.spread(ds.isel(trial=0))
    assert res["cv"].isnull().all() and (res["n_runs"] == 1).all() and res["cv_median"].isnull().all()
    assert "cannot be measured" in res.attrs["summary"]


def test_refuses_what_it_cannot_measure(ds: xr.Dataset) -> None:
    with pytest.raises(InputError, match="needs variable 'nope'"):
        analysis.spread(ds, "nope")
    with pytest.raises(InputError, match="has a 'step' dim"):
        analysis.spread(synthetic.make_dataset(seed=1, trials=2), "step_time")


def test_command_line(ds: xr.Dataset, tmp_path, capsys) -> None:
    path = tmp_path / "run.nc"
    schema.save(ds, path)
    assert main(["spread", str(path)]) == 0
    out = capsys.readouterr().out
    assert "legend: " in out and "median cv %" in out
    assert main(["spread", str(path), "--var", "decode_time", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["command"] == "spread" and data["attrs"]["var"] == "decode_time"
