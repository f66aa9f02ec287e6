"""Every public analysis computes through the lazy per-series path: dask-backed input gives the eager result.

The per-series work runs block by block (``analysis.core.series.apply_named``); results hold no lazy data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr

from analysis import synthetic
from public_api import public_calls

FUNCTIONS: dict[str, Callable[[xr.Dataset], Any]] = {
    k: f for k, f in public_calls(30).items() if k not in ("compare", "plant")}


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=3, budgets=tuple(range(16, 161, 16)), trials=3, prompt_lens=(16, 32, 48))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_dask_input_gives_the_eager_result(ds: xr.Dataset, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = FUNCTIONS[name](ds)
        with dask.config.set(scheduler="threads", num_workers=2):
            lazy = FUNCTIONS[name](ds.chunk({"prompt_len": 1}))
    assert not any(v.chunks for v in lazy.data_vars.values()), "results hold no lazy data"
    assert set(lazy.data_vars) == set(eager.data_vars) and lazy.attrs == eager.attrs
    for v in eager.data_vars:  # floating point may differ in the last bits (BLAS on other block shapes)
        if eager[v].dtype.kind == "f":
            np.testing.assert_allclose(lazy[v].values, eager[v].values, rtol=1e-9, equal_nan=True, err_msg=v)
        else:
            np.testing.assert_array_equal(lazy[v].values, eager[v].values, err_msg=v)
