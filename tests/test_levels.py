"""analysis.levels: the noise of each level (Kalibera and Jones 2013) on planted components and a real sweep."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from analysis.__main__ import main

REAL = Path(__file__).resolve().parent / "data" / "real"


def _levels(ds: xr.Dataset) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analysis.levels(ds)


@pytest.fixture(scope="module")
def planted() -> xr.Dataset:
    """A simulated sweep whose latency is replaced by known levels: 3 processes, 4 runs per cell and process,
    run sd 0.05, process-by-cell sd 0.10, process shift sd 0 (fixed shifts 0, +0.2, -0.2 plus cell effects)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = synthetic.make_dataset(seed=2, models=("gpt2",), caches=(True,), budgets=tuple(range(8, 8 * 41, 8)),
                                    trials=12, step_time=False)
    rng = np.random.default_rng(7)
    lat = ds["latency"]
    nb = ds.sizes["budget"]
    proc = np.arange(12) % 3
    cell = rng.normal(0, 0.10, (nb, 3))
    shift = np.array([0.0, 0.2, -0.2])
    noise = rng.normal(0, 0.05, (nb, 12))
    log = np.log(0.01 * ds["budget"].values)[:, None] + shift[proc][None, :] + cell[:, proc] + noise
    vals = np.broadcast_to(np.exp(log), lat.transpose(..., "budget", "trial").shape)
    out = ds.assign(latency=lat.transpose(..., "budget", "trial").copy(data=vals))
    pr = xr.DataArray(proc, dims="trial").broadcast_like(out["latency"]).astype("int32")
    # the passes one after the other (pass p from 1000 p seconds): the gap between them is a process's cost
    order = proc[None, :] * 1000 + np.arange(12)[None, :] * nb + np.arange(nb)[:, None]
    start = np.datetime64("2026-01-01T00:00:00", "ns") + order.astype("timedelta64[s]")
    return out.assign(process=pr, started_at=out["latency"].copy(data=np.broadcast_to(start, vals.shape)))


def test_planted_levels_are_recovered(planted: xr.Dataset) -> None:
    r = _levels(planted)
    assert int(r["n_processes"].values.ravel()[0]) == 3
    assert r["runs_per_process"].values.ravel()[0] == pytest.approx(4.0)
    assert r["sd_run"].values.ravel()[0] == pytest.approx(0.05, rel=0.15)
    # the process level holds the cell effects (0.10) and the shifts (sd 0.2 over the 3 processes)
    assert r["sd_process"].values.ravel()[0] == pytest.approx(np.sqrt(0.10**2 + 0.2**2), rel=0.2)
    assert r["sd_shift"].values.ravel()[0] == pytest.approx(0.2, rel=0.2)
    assert "3 processes" in r.attrs["summary"] and "Kalibera-Jones optimum" in r.attrs["summary"]


def test_the_optimal_runs_per_process_follow_kalibera_and_jones(planted: xr.Dataset) -> None:
    r = _levels(planted)
    t1, t2 = float(r["sd_run"].values.ravel()[0]), float(r["sd_process"].values.ravel()[0])
    c2, c1 = float(r["process_cost"].values.ravel()[0]), float(r["run_cost"].values.ravel()[0])
    assert c2 > 0 and c1 > 0
    assert r["trials_per_process"].values.ravel()[0] == min(100, max(1, np.ceil(np.sqrt(c2 / c1 * t1**2 / t2**2))))


def test_one_process_says_how_to_measure_the_process_level(planted: xr.Dataset) -> None:
    r = _levels(planted.drop_vars("process"))
    assert int(r["n_processes"].values.ravel()[0]) == 0
    assert np.isnan(r["sd_process"].values).all() and np.isfinite(r["sd_run"].values).all()
    assert "--processes 2" in r.attrs["summary"]


def test_a_real_two_process_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    path = REAL / "quick-p2" / "cpu-quick-idle-ends-01.nc"
    r = _levels(analysis.open_dataset(path))
    assert (r["n_processes"].values == 2).all() and (r["runs_per_process"].values == 1).all()
    # one run of a cell per process: run and process noise are one number, said so
    assert np.isnan(r["sd_run"].values).all() and np.isfinite(r["sd_between"].values).all()
    assert "cannot be told apart" in r.attrs["summary"]
    assert (r["process_cost"].values > 0).all()  # the gap between the two passes: a fresh process
    assert main(["levels", str(path)]) == 0
    assert "sd between" in capsys.readouterr().out
