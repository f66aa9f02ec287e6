"""Regimes must replicate across processes (issue 14): the intersection-union check of analysis.regimes.

Real noise: a 10-trial H100 null file whose trials are given to two processes alternately (the runs are
real; which process measured them is assigned here), and a real ``--processes 2`` sweep of the tiny preset.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis.detect import replication

REAL = Path(__file__).resolve().parent / "data" / "real"


def _regimes(ds: xr.Dataset) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analysis.regimes(ds)


@pytest.fixture(scope="module")
def two_processes() -> xr.Dataset:
    ds = analysis.open_dataset(REAL / "cuda-loop-ends-t10-on.nc").load().sel(model=["distilgpt2"])
    proc = xr.DataArray(np.arange(ds.sizes["trial"]) % 2, dims="trial").broadcast_like(ds["latency"])
    return ds.assign(process=proc.where(ds["latency"].notnull(), -1).astype("int32"))


def _planted(ds: xr.Dataset, ratio: float, only: int | None) -> xr.Dataset:
    inside = ds["budget"].isin([144, 160])
    if only is not None:
        inside = inside & (ds["process"] == only)
    return ds.assign(latency=ds["latency"] * xr.where(inside, ratio, 1.0))


def test_a_step_in_one_process_is_process_local_not_a_regime(two_processes: xr.Dataset) -> None:
    r = _regimes(_planted(two_processes, 2.0, only=0))
    local = r["process_local"].values
    assert local.sum() == 1 and not r["anomalous"].any()
    key = tuple(np.argwhere(local)[0])
    assert float(r["start"].values[key]) == 144 and float(r["end"].values[key]) == 160
    assert int(r["local_process"].values[key]) == 0
    assert 1.8 < float(r["local_effect"].values[key]) < 2.6
    assert 0.85 < float(r["other_effect"].values[key]) < 1.15
    assert float(r["p_replicate"].values[key]) > 0.05
    assert "did not replicate across processes" in r.attrs["summary"]
    assert re.search(r"x2\.\d+ in process 0 at budgets 144-160, x(0\.9|1\.0)\d* in the others", r.attrs["summary"])


def test_a_step_in_every_process_is_a_regime(two_processes: xr.Dataset) -> None:
    r = _regimes(_planted(two_processes, 2.0, only=None))
    seg = r["segment_anomalous"].values
    assert seg.sum() == 1 and not r["process_local"].any()
    key = tuple(np.argwhere(seg)[0])
    assert float(r["p_replicate"].values[key]) < 1e-4
    assert int(r["n_processes"].values.ravel()[0]) == 2
    assert "did not replicate" not in r.attrs["summary"] and "No cell was measured in two processes" not in r.attrs["summary"]


def test_one_process_says_what_cannot_be_told_and_how_to_check(two_processes: xr.Dataset) -> None:
    r = _regimes(_planted(two_processes.drop_vars("process"), 2.0, only=None))
    assert r["segment_anomalous"].sum() == 1
    assert int(r["n_processes"].values.ravel()[0]) == 0 and np.isnan(r["p_replicate"].values).all()
    assert "No cell was measured in two processes" in r.attrs["summary"] and "--processes 2" in r.attrs["summary"]
    # and nothing is said where nothing was found
    assert "No cell was measured in two processes" not in _regimes(two_processes.drop_vars("process")).attrs["summary"]


def test_the_check_itself() -> None:
    rng = np.random.default_rng(3)
    E = 0.05 * rng.standard_normal((1, 12, 4))
    proc = np.broadcast_to(np.array([0, 1, 0, 1]), (1, 12, 4)).copy()
    normal = np.ones((1, 12), dtype=bool)
    normal[0, 5:7] = False
    both = E.copy()
    both[0, 5:7] += 0.7
    one = E.copy()
    one[0, 5:7, 0::2] += 0.7
    got_both = replication.check(both, proc, normal, [(0, 1, 5, 6)], n_segments=2, alpha=0.05, min_log=np.log(1.2), sign=1)
    got_one = replication.check(one, proc, normal, [(0, 1, 5, 6)], n_segments=2, alpha=0.05, min_log=np.log(1.2), sign=1)
    assert got_both["n_processes"][0] == 2 and got_both["p_replicate"][0, 1] < 0.01
    assert not got_both["process_local"][0, 1]
    assert got_one["process_local"][0, 1] and got_one["local_process"][0, 1] == 0
    assert got_one["local_effect"][0, 1] == pytest.approx(np.exp(0.7), rel=0.15)
    # a process with no run inside the segment cannot be tested: unchecked, not process-local
    gone = one.copy()
    gone[0, 5:7, 1::2] = np.nan
    got = replication.check(gone, proc, normal, [(0, 1, 5, 6)], n_segments=2, alpha=0.05, min_log=np.log(1.2), sign=1)
    assert np.isnan(got["p_replicate"][0, 1]) and not got["process_local"][0, 1]
    # unknown processes (-1) are not a process
    got = replication.check(both, np.full_like(proc, -1), normal, [(0, 1, 5, 6)], n_segments=2, alpha=0.05, min_log=0.18, sign=1)
    assert got["n_processes"][0] == 0 and np.isnan(got["p_replicate"][0, 1])
