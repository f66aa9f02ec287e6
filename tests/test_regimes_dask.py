"""analysis.regimes on dask-backed data: same result as eager, on threads and on a 2-worker cluster."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.regimes import regimes
from analysis.synthetic import Regime, make_dataset


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return make_dataset(
        21, models=("gpt2", "opt-125m"), caches=(False, True), budgets=list(range(16, 272, 16)), trials=4,
        step_time=False, missing=0.05,
        regimes=[Regime(96, 128, 5.0, cache=True), Regime(48, 48, 3.0, cache=False, model="opt-125m")],
    )


@pytest.fixture(scope="module")
def eager(ds: xr.Dataset) -> xr.Dataset:
    return regimes(ds)


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        if a[name].dtype.kind in "fc":
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs["summary"] == b.attrs["summary"]


def test_eager_finds_both_regimes(ds, eager):
    np.testing.assert_array_equal(eager["anomalous"].values, ds["truth_anomalous"].any("trial").values)


def test_dask_threads_matches_eager(ds, eager):
    lazy = ds.chunk({"model": 1, "cache": 1})
    out = regimes(lazy)
    _assert_same(eager, out)
    assert all(v.chunks is None for v in out.variables.values()), "the result holds no lazy data"


@pytest.mark.slow
@pytest.mark.process
def test_dask_distributed_two_workers_matches_eager(ds, eager):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        lazy = ds.chunk({"model": 1})
        out = regimes(lazy)
        assert len(client.scheduler_info()["workers"]) == 2
    _assert_same(eager, out)


def test_dask_from_files(tmp_path, ds, eager):
    """Several files opened lazily with analysis.open_dataset (open_mfdataset)."""
    from analysis.io import open_dataset
    from collector.dataset import schema

    paths = []
    for i, m in enumerate(ds["model"].values):
        p = tmp_path / f"run{i}.nc"
        schema.save(ds.sel(model=[m]), p)
        paths.append(p)
    lazy = open_dataset(paths)
    assert lazy["latency"].chunks is not None
    out = regimes(lazy)
    np.testing.assert_array_equal(out["anomalous"].values, eager["anomalous"].values)
    np.testing.assert_allclose(out["ratio"].values, eager["ratio"].values, rtol=1e-6, equal_nan=True)
