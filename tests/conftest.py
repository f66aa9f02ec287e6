"""Shared pytest fixtures (seeded, small)."""

from __future__ import annotations

import pytest
import xarray as xr

import study_data as sd
from analysis import synthetic
from collector.sweep import worker

# Sweeps started by the tests honour DECODE_REGIMES_FAULTS (a normal run ignores it; tests/collector_with_faults.py
# does the same for a CLI process).
worker.enable_fault_injection()


@pytest.fixture(scope="session")
def small_ds() -> xr.Dataset:
    """A small simulated dataset with the default planted regime (cache on, budgets 96..128)."""
    return synthetic.make_dataset(seed=0)


@pytest.fixture(scope="module")
def study() -> xr.Dataset:
    """The study-like simulated dataset of tests/study_data.py (a fresh copy per test module)."""
    return sd.study()
