"""Shared pytest fixtures (seeded, small)."""

from __future__ import annotations

import pytest
import xarray as xr

from analysis import synthetic


@pytest.fixture(scope="session")
def small_ds() -> xr.Dataset:
    """A small simulated dataset with the default planted regime (cache on, budgets 96..128)."""
    return synthetic.make_dataset(seed=0)
