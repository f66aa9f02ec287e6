"""Schema: the phase split (prefill_time / decode_time) may be missing in ok runs only where a file says so."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from collector.dataset import schema
from collector.dataset.schema import SchemaError


def _one_ok_run() -> xr.Dataset:
    ds = schema.empty_dataset(models=["m"], devices=["mps"], dtypes=["float32"], caches=[True], prompt_lens=[65],
                              budgets=[496, 512], trials=1, step_time=False)
    ds["status"][...] = schema.STATUS["ok"]
    ds["tokens"][...] = np.array([496, 512]).reshape(ds["tokens"].shape)
    ds["latency"][...] = np.array([9.5, 89.2]).reshape(ds["latency"].shape)
    ds["prefill_time"][..., 1, :] = 0.11
    ds["decode_time"][..., 1, :] = 89.2 - 0.11
    return ds


def test_missing_split_needs_the_phase_split_attr() -> None:
    ds = _one_ok_run()
    with pytest.raises(SchemaError, match="variable 'prefill_time' is NaN where status == ok"):
        schema.validate(ds)
    ds.attrs["phase_split"] = "only at budget 512"
    schema.validate(ds)


def test_split_is_both_or_neither() -> None:
    ds = _one_ok_run()
    ds.attrs["phase_split"] = "only at budget 512"
    ds["decode_time"][..., 0, :] = 9.4
    with pytest.raises(SchemaError, match="both measured or both NaN"):
        schema.validate(ds)


def test_latency_is_never_optional_and_sums_still_checked() -> None:
    ds = _one_ok_run()
    ds.attrs["phase_split"] = "only at budget 512"
    bad = ds.copy(deep=True)
    bad["latency"][..., 0, :] = np.nan
    with pytest.raises(SchemaError, match="variable 'latency' is NaN where status == ok"):
        schema.validate(bad)
    bad = ds.copy(deep=True)
    bad["decode_time"][..., 1, :] = 80.0
    with pytest.raises(SchemaError, match="decode_time' != latency - prefill_time"):
        schema.validate(bad)
