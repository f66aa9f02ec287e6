"""The stated power is that of what can be reported: a sweep run in budget order reports no regime (every step
is confounded with execution time), so its series state no finite ``mde`` and a power curve of zeros."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis.regimes import regimes

REAL = Path(__file__).parent / "data" / "real"


def _regimes(name: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_dataset(REAL / name) as ds:
            return regimes(ds.load())


@pytest.mark.parametrize("name", ["cuda-loop-ends-t2-sequential.nc", "cpu-xeon-loop-ends-t3-sequential.nc"])
def test_budget_ordered_sweep_states_no_power(name: str) -> None:
    r = _regimes(name)
    assert r.attrs["sequential_share"] == 1.0
    assert np.isinf(r["mde"].values).all() and np.isinf(r["mde_4"].values).all()
    power = r["power"].values
    assert (power[np.isfinite(power)] == 0).all() and np.isfinite(power).any()
    assert not r["anomalous"].values.any()
    assert "No one-budget regime can be found in these series at any ratio (run in budget order" in r.attrs["summary"]


def test_random_order_sweep_states_finite_power() -> None:
    r = _regimes("cuda-loop-ends-t3-large.nc")  # 16 budgets
    assert r.attrs["sequential_share"] == 0.0
    assert np.isfinite(r["mde"].values).all() and np.isfinite(r["mde_4"].values).all()
    assert "80% power" in r.attrs["summary"]


def test_short_sweep_states_no_four_budget_power() -> None:
    r = _regimes("cuda-loop-ends-t3-medium.nc")  # 8 budgets: a four-budget step is half the sweep
    assert np.isfinite(r["mde"].values).all() and np.isnan(r["mde_4"].values).all()
    assert "not stated (fewer than 12 budgets" in r.attrs["summary"]
