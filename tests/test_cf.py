"""Written files follow the CF conventions: the IOOS compliance checker (from PyPI) finds nothing to fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.synthetic import make_dataset
from collector.__main__ import main
from collector.dataset import schema

checker = pytest.importorskip("compliance_checker.runner", reason="compliance-checker is in the [test] extra")


#: The checker's monotonicity check computes np.diff on every coordinate variable and raises on string-valued
#: ones (model, device, dtype, attn, cache_impl labels); it is skipped, and sortedness is asserted below instead.
_SKIP = ["check_coordinate_variables_strict_monotonicity"]


def _cf_problems(path: Path) -> list[str]:
    suite = checker.CheckSuite()
    suite.load_all_available_checkers()
    ds = suite.load_dataset(str(path))
    problems = []
    try:
        for name, (groups, errors) in suite.run_all(ds, ["cf:1.11"], skip_checks=_SKIP).items():
            problems += [f"{name}: checker exception in {check}" for check in errors]
            problems += [f"{name}: {g.name}: {g.msgs}" for g in groups if g.value[0] != g.value[1]]
    finally:
        ds.close()  # a netCDF handle left open makes a later open of the same HDF5 library state crash
    return problems


@pytest.mark.process
def test_a_swept_file_has_no_cf_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--devices", "sim", "--models", "gpt2", "--cache", "both", "--cache-impl", "dynamic", "static",
                 "--budgets", "8,16", "--trials", "2", "--timing", "step", "--quiet", "-o", "s.nc"]) == 0
    assert _cf_problems(tmp_path / "s.nc") == []
    ds = schema.load(tmp_path / "s.nc")
    assert ds.attrs["Conventions"] == schema.CONVENTIONS and ds.attrs["host"] and "created by" in ds.attrs["history"]
    assert "units" not in ds["status"].attrs and ds["cache"].attrs["flag_meanings"] == "off on"
    assert ds["order"].dtype == np.int32 and int((ds["order"] == -1).sum()) == 2 * 2  # not applicable cells
    for dim in schema.SWEEP_DIMS:  # what the skipped check would test: strictly increasing coordinates
        assert ds.indexes[dim].is_monotonic_increasing and ds.indexes[dim].is_unique


def test_synthetic_and_upgraded_files_have_no_cf_problems(tmp_path: Path) -> None:
    schema.save(make_dataset(seed=0, budgets=(8, 16, 24), trials=2, missing=0.1), tmp_path / "syn.nc")
    assert _cf_problems(tmp_path / "syn.nc") == []
    published = sorted((Path(__file__).resolve().parents[1] / "datasets").glob("cuda-*.nc"))[0]
    schema.save(schema.load(published), tmp_path / "up.nc")
    assert _cf_problems(tmp_path / "up.nc") == []
    raw = _cf_problems(published)  # as published (schema v1): no Conventions, no history
    assert any("Conventions" in p for p in raw)
