"""The shared input checks of the public analysis (analysis.core.common.check_axes): our errors, never a foreign one."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from analysis.errors import InputError
from collector.shared.sim import Regime
from public_api import public_calls

FAST = {"n_perm": 20, "n_boot": 20}
FUNCTIONS: dict[str, Callable[[xr.Dataset], Any]] = public_calls(20)


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    """Two prompt lengths (boundaries needs them), both caches, a planted 5x regime at budgets 48-64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=0, budgets=(16, 32, 48, 64, 80, 96, 112, 128), trials=3,
                                      prompt_lens=(16, 32), regimes=[Regime(start=48, end=64, factor=5.0)])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_zero_length_trial_dim(ds: xr.Dataset, name: str) -> None:
    with pytest.raises(InputError, match=r"dim 'trial' of variable '\w+' is empty \(length 0\)"):
        FUNCTIONS[name](ds.isel(trial=slice(0, 0)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_non_finite_budget_is_refused(ds: xr.Dataset, name: str, bad: float) -> None:
    """A NaN budget used to drop out of every fit silently (the planted 5x regime went unreported)."""
    budgets = ds["budget"].values.astype(float)
    budgets[2] = bad  # the first budget of the planted regime
    with pytest.raises(InputError, match=rf"'budget' coordinate must hold finite numbers, got {bad!r}"):
        FUNCTIONS[name](ds.assign_coords(budget=budgets))


@pytest.mark.parametrize("dim", ["budget", "prompt_len", "cache", "trial"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_duplicated_coordinate_is_refused(ds: xr.Dataset, name: str, dim: str) -> None:
    values = ds[dim].values.copy()
    values[1] = values[0]
    with pytest.raises(InputError, match=rf"the '{dim}' coordinate holds .* more than once"):
        FUNCTIONS[name](ds.assign_coords({dim: values}))


def test_nan_budget_no_longer_hides_the_planted_regime(ds: xr.Dataset) -> None:
    """The clean dataset shows the planted regime; the NaN-budget one is refused, not answered without it."""
    reg = analysis.regimes(ds, **FAST)
    assert bool(reg.anomalous.sel(budget=[48, 64]).any())
    budgets = ds["budget"].values.astype(float)
    budgets[2] = np.nan
    with pytest.raises(InputError, match="finite"):
        analysis.regimes(ds.assign_coords(budget=budgets), **FAST)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
@pytest.mark.parametrize("name", ["regimes", "kv_speedup", "step_regimes"])
def test_bad_seed(ds: xr.Dataset, name: str, seed: Any) -> None:
    fn = getattr(analysis, name)
    with pytest.raises(InputError, match=rf"seed must be an integer >= 0, got {seed!r}"):
        fn(ds, seed=seed)


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - {"plant", "compare"}))
def test_unsorted_budgets_give_the_sorted_result(ds: xr.Dataset, name: str) -> None:
    """Budgets out of order are analysed as if sorted (the result's budget axis is sorted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = FUNCTIONS[name](ds)
        got = FUNCTIONS[name](ds.isel(budget=slice(None, None, -1)))
    got.attrs.pop("summary", None), expected.attrs.pop("summary", None)
    xr.testing.assert_allclose(got, expected)


def test_regime_map_with_no_finite_step_time_is_our_error(ds: xr.Dataset, tmp_path) -> None:
    """Found by the fuzzer: float32 step times x 1e300 overflow to inf; the map crashed converting NaN to int."""
    from analysis import plot

    bad = ds.assign(step_time=ds["step_time"] * 1e300)
    with pytest.raises(InputError, match=r"'step_time' has no positive finite value"):
        plot.regime_map(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = analysis.report(bad, tmp_path / "report")  # the figure's error is reported in the page
    assert files.html.is_file()
