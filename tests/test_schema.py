"""Schema v1: construction, validation (every SchemaError path), atomic save and versioned load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from collector.dataset import schema
from collector.dataset.schema import SchemaError
from collector.dataset.schemadoc import render_markdown


def test_empty_dataset_is_valid_and_not_run() -> None:
    ds = schema.empty_dataset(models=["m"], devices=["cpu"], dtypes=["float32"], caches=[True],
                              prompt_lens=[4], budgets=[1, 3], trials=2)
    schema.validate(ds)
    assert tuple(ds["latency"].dims) == schema.SWEEP_DIMS
    assert ds["step_time"].dims == (*schema.SWEEP_DIMS, "step")
    assert ds.sizes["step"] == 4
    assert (ds["status"] == schema.STATUS["not_run"]).all()
    assert ds["status"].attrs["flag_meanings"] == "ok error oom timeout not_run not_applicable truncated"
    assert ds["latency"].attrs["units"] == "s"
    assert set(schema.GLOBAL_ATTRS) <= set(ds.attrs)


def test_save_load_identical(small_ds: xr.Dataset, tmp_path: Path) -> None:
    path = schema.save(small_ds, tmp_path / "run.nc")
    back = schema.load(path)
    xr.testing.assert_identical(small_ds, back)
    assert back["step_time"].dtype == np.float32
    assert back["cache"].dtype == bool
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"
    assert path.stat().st_mode & 0o044, "the dataset must be readable by others (not mkstemp's 0600)"


def test_a_truncated_run_keeps_its_times_and_a_v3_file_gains_the_flag(small_ds: xr.Dataset, tmp_path: Path) -> None:
    ds = small_ds.copy(deep=True)
    first = {d: 0 for d in ds["status"].dims}
    ds["status"][first] = schema.STATUS["truncated"]
    ds["tokens"][first] = int(ds["budget"][0]) - 1  # fewer tokens than the budget; its times stay
    back = schema.load(schema.save(ds, tmp_path / "cut.nc"))
    assert int(back["status"][first]) == schema.STATUS["truncated"] and np.isfinite(float(back["latency"][first]))
    v3 = small_ds.copy(deep=True)
    v3.attrs["schema_version"] = "3"
    v3["status"].attrs.update(flag_values=np.arange(6, dtype=np.int8),
                              flag_meanings="ok error oom timeout not_run not_applicable")
    v3.to_netcdf(tmp_path / "v3.nc")
    up = schema.load(tmp_path / "v3.nc")
    assert up.attrs["schema_version"] == "4" and "v3 -> v4" in up.attrs["upgraded"]
    assert up["status"].attrs["flag_meanings"].endswith("not_applicable truncated")
    np.testing.assert_array_equal(up["status"].values, small_ds["status"].values)


def test_save_is_atomic_on_failure(small_ds: xr.Dataset, tmp_path: Path) -> None:
    target = tmp_path / "run.nc"
    schema.save(small_ds, target)
    before = target.read_bytes()
    bad = small_ds.copy()
    bad.attrs["schema_version"] = "x"
    with pytest.raises(SchemaError, match="schema_version"):
        schema.save(bad, target)
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_refuses_newer_schema(small_ds: xr.Dataset, tmp_path: Path) -> None:
    newer = small_ds.copy()
    newer.attrs["schema_version"] = "5"
    newer.to_netcdf(tmp_path / "v5.nc")
    with pytest.raises(SchemaError, match=r"schema version '5', newer than the '4'"):
        schema.load(tmp_path / "v5.nc")


def test_load_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        schema.load(tmp_path / "nope.nc")
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(SchemaError, match="not a readable netCDF file"):
        schema.load(tmp_path / "junk.nc")


def _mutations():
    """(description, mutate(ds) -> ds, expected message) for every SchemaError path of validate()."""

    def attr(name, value):
        def f(ds):
            ds.attrs[name] = value
            return ds
        return f

    def drop_attr(name):
        def f(ds):
            del ds.attrs[name]
            return ds
        return f

    def set_values(var, value, where=None):
        def f(ds):
            arr = ds[var].values.copy()
            if where is None:
                arr[...] = value
            else:
                arr[where] = value
            ds[var] = (ds[var].dims, arr, ds[var].attrs)
            return ds
        return f

    def chain(*fs):
        def f(ds):
            for g in fs:
                ds = g(ds)
            return ds
        return f

    first = (0,) * len(schema.SWEEP_DIMS)
    return [
        ("no version", drop_attr("schema_version"), "'schema_version' is missing"),
        ("bad version", attr("schema_version", "one"), "expected an integer string"),
        ("zero version", attr("schema_version", "0"), "not a known version"),
        ("missing attr", drop_attr("torch_version"), "global attr 'torch_version' is missing"),
        ("bad engine", attr("engine", "turbo"), "global attr 'engine' is 'turbo'"),
        ("bad simulated", attr("simulated", 3), "'simulated' is 3; expected 0 or 1"),
        ("simulated not int", attr("simulated", "yes"), "'simulated' is 'yes'; expected an integer"),
        ("sim not flagged", attr("simulated", 0), "device 'sim' is present"),
        ("bad sweep json", attr("sweep", "{oops"), "'sweep' is not valid JSON"),
        ("missing dim", lambda ds: ds.isel(trial=0, drop=True), "dim 'trial' is missing"),
        ("no coord", lambda ds: ds.drop_vars("budget"), "dim 'budget' has no coordinate"),
        ("dup coord", lambda ds: ds.assign_coords(trial=[0, 0, 1, 2, 3]), "duplicate values"),
        ("coord dtype", lambda ds: ds.assign_coords(budget=ds.budget.astype(float)), "'budget' has dtype 'float64'"),
        ("bad device", lambda ds: ds.assign_coords(device=["tpu"]), "'device' has 'tpu'"),
        ("bad dtype", lambda ds: ds.assign_coords(dtype=["int8"]), "'dtype' has 'int8'"),
        ("budget 0", lambda ds: ds.assign_coords(budget=ds.budget - 16), "budgets must be >= 1"),
        ("prompt 0", lambda ds: ds.assign_coords(prompt_len=[0]), "prompt_lens must be >= 1"),
        ("no n_params", lambda ds: ds.drop_vars("n_params"), "coordinate 'n_params' on dim 'model' is missing"),
        ("bad weights", lambda ds: ds.assign_coords(weights=("model", ["magic"])), "'weights' has 'magic'"),
        ("missing var", lambda ds: ds.drop_vars("latency"), "variable 'latency' is missing"),
        ("var dims", lambda ds: ds.assign(latency=ds.latency.transpose("trial", ...)), "variable 'latency' has dims"),
        ("no long_name", lambda ds: (ds.latency.attrs.pop("long_name"), ds)[1], "'latency' has no 'long_name'"),
        ("units", lambda ds: (ds.latency.attrs.update(units="ms"), ds)[1], "'latency' has units 'ms'; expected 's'"),
        ("var dtype", lambda ds: ds.assign(status=ds.status.astype(float)), "'status' has dtype 'float64'"),
        ("short step", lambda ds: ds.isel(step=slice(0, 10)), "dim 'step' has length 10"),
        ("flag meanings", lambda ds: (ds.status.attrs.update(flag_meanings="ok bad"), ds)[1], "flag_meanings"),
        ("flag values", lambda ds: (ds.status.attrs.update(flag_values=np.array([0, 1], "i1")), ds)[1], "flag_values"),
        ("status code", set_values("status", 9, first), "'status' has value 9"),
        ("timing where failed", chain(set_values("status", 1, first)), "'latency' has values where status is neither ok nor"),
        ("truncated at its budget", set_values("status", 6, first),
         "'tokens' is 16 where status == truncated and budget is 16"),
        ("nan where ok", set_values("latency", np.nan, first), "'latency' is NaN where status == ok"),
        ("negative", chain(set_values("latency", -1.0, first), set_values("prefill_time", -0.5, first),
                           set_values("decode_time", -0.5, first)), "'latency' has negative times"),
        ("tokens", set_values("tokens", 3, first), "'tokens' is 3 where status == ok and budget is 16"),
        ("sum", set_values("decode_time", 123.0, first), "decode_time' != latency - prefill_time"),
    ]


@pytest.mark.parametrize("name,mutate,message", _mutations(), ids=[m[0] for m in _mutations()])
def test_every_schema_error_path(small_ds: xr.Dataset, name: str, mutate, message: str) -> None:
    ds = mutate(small_ds.copy(deep=True))
    with pytest.raises(SchemaError, match=message):
        schema.validate(ds)


def test_validate_rejects_non_dataset() -> None:
    with pytest.raises(SchemaError, match="expected an xarray.Dataset, got 'dict'"):
        schema.validate({})  # type: ignore[arg-type]


def test_empty_dataset_bad_input() -> None:
    with pytest.raises(SchemaError, match="trials must be >= 1, got 0"):
        schema.empty_dataset(models=["m"], devices=["cpu"], dtypes=["float32"], caches=[True],
                             prompt_lens=[4], budgets=[1], trials=0)
    with pytest.raises(SchemaError, match="dim 'budget' needs at least one value"):
        schema.empty_dataset(models=["m"], devices=["cpu"], dtypes=["float32"], caches=[True],
                             prompt_lens=[4], budgets=[], trials=1)


def test_extra_leading_dim_is_allowed(small_ds: xr.Dataset) -> None:
    stacked = xr.concat([small_ds, small_ds], dim="host")
    stacked = stacked.assign_coords(host=["a", "b"])
    for name in stacked.data_vars:  # attrs survive concat; sweep dims stay last and in order
        assert stacked[name].dims[0] == "host"
    schema.validate(stacked)


def test_docs_schema_is_generated_from_code() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "schema.md"
    assert doc.read_text() == render_markdown(), "docs/schema.md drifted: python -m collector.dataset.schemadoc > docs/schema.md"


def test_sweep_attr_roundtrips_json(small_ds: xr.Dataset) -> None:
    sweep = json.loads(small_ds.attrs["sweep"])
    assert sweep["budgets"] == small_ds.budget.values.tolist()
