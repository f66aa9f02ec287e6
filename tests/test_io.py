"""analysis.open_dataset: one file eager and identical; several lazily with dask, equal to the eager combination."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from collector.dataset import schema
from collector.shared.errors import SchemaError


def test_one_file_roundtrip_identical(small_ds: xr.Dataset, tmp_path: Path) -> None:
    schema.save(small_ds, tmp_path / "a.nc")
    xr.testing.assert_identical(analysis.open_dataset(tmp_path / "a.nc"), small_ds)


def test_three_files_lazy_equal_to_eager(tmp_path: Path) -> None:
    ds = synthetic.make_dataset(seed=2, models=["gpt2", "opt-125m", "distilgpt2"], budgets=[8, 16, 24, 32], trials=2)
    paths = []
    for m in ds.model.values:
        p = tmp_path / f"{m}.nc"
        schema.save(ds.sel(model=[m]), p)
        paths.append(p)
    lazy = analysis.open_dataset(str(tmp_path / "*.nc"))
    assert isinstance(lazy["latency"].data, da.Array)
    eager = xr.concat([analysis.open_dataset(p) for p in paths], dim="model")
    xr.testing.assert_equal(lazy.compute().sortby("model"), eager.sortby("model"))
    same_list = analysis.open_dataset(paths)
    xr.testing.assert_equal(same_list.compute(), lazy.compute())
    schema.validate(lazy.compute())


def test_files_covering_different_budgets_fill_not_run(tmp_path: Path) -> None:
    ds = synthetic.make_dataset(seed=3, models=["gpt2", "opt-125m"], budgets=[8, 16, 24], trials=2)
    schema.save(ds.sel(model=["gpt2"]), tmp_path / "a.nc")
    schema.save(ds.sel(model=["opt-125m"], budget=[8, 16]), tmp_path / "b.nc")
    both = analysis.open_dataset([tmp_path / "a.nc", tmp_path / "b.nc"]).compute()
    assert both.status.dtype == np.int8 and both.tokens.dtype == np.int32
    xr.testing.assert_equal(both.sel(model=["gpt2"]).latency, ds.sel(model=["gpt2"]).latency)
    gap = both.sel(model="opt-125m", budget=24)
    assert bool((gap.status == schema.STATUS["not_run"]).all()) and bool(gap.latency.isnull().all())
    schema.validate(both)


def test_conflicting_attrs_are_joined(tmp_path: Path) -> None:
    a = synthetic.make_dataset(seed=1, budgets=[8, 16], trials=2)
    b = synthetic.make_dataset(seed=1, budgets=[24, 32], trials=2)
    schema.save(a, tmp_path / "a.nc")
    schema.save(b, tmp_path / "b.nc")
    both = analysis.open_dataset([tmp_path / "a.nc", tmp_path / "b.nc"])
    assert both.attrs["simulated"] == 1
    assert both.attrs["sweep"].startswith("[")


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="matches no file"):
        analysis.open_dataset(str(tmp_path / "*.nc"))
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        analysis.open_dataset(tmp_path / "x.nc")
    with pytest.raises(FileNotFoundError, match="no dataset paths given"):
        analysis.open_dataset([])


def test_overlapping_files_are_refused(small_ds: xr.Dataset, tmp_path: Path) -> None:
    schema.save(small_ds, tmp_path / "a.nc")
    other = small_ds.copy(deep=True)
    other["latency"].values[...] *= 2
    other["decode_time"].values[...] = (other.latency - other.prefill_time).values
    schema.save(other, tmp_path / "b.nc")
    with pytest.raises(SchemaError, match="cannot combine"):
        analysis.open_dataset([tmp_path / "a.nc", tmp_path / "b.nc"])
