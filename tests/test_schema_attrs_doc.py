"""docs/schema.md lists every global attr and data variable the files we write carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr

import analysis
from analysis import synthetic
from collector.__main__ import main
from collector.dataset import schema
from collector.dataset.study_import import import_study

DOC = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()


def _documented_var(name: str) -> bool:
    return name in schema.VARIABLES or any(
        name == v or (v.endswith("*") and name.startswith(v[:-1])) for v in schema.EXTRA_VARIABLES)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, xr.Dataset]:
    d = tmp_path_factory.mktemp("attrs")
    sim = ["run", "--devices", "sim", "--models", "gpt2", "--trials", "1", "--quiet"]
    assert main([*sim, "--budgets", "8,16", "-o", str(d / "a.nc")]) == 0
    assert main([*sim, "--budgets", "24", "-o", str(d / "b.nc")]) == 0
    assert main(["merge", str(d / "a.nc"), str(d / "b.nc"), "-o", str(d / "m.nc")]) == 0
    rows = [{"model": "gpt2", "execution_mode": "mps", "prompt_name": "long_context", "max_tokens": 8,
             "use_cache": True, "samples": 0, "avg_latency": None, "startup_latency": 2.0},
            {"model": "gpt2", "execution_mode": "mps", "prompt_name": "long_context", "max_tokens": 16,
             "use_cache": True, "samples": 5, "avg_latency": 1.0, "startup_latency": 2.0}]
    (d / "r.json").write_text(json.dumps(rows))
    out = {"sweep": schema.load(d / "a.nc"), "merge": schema.load(d / "m.nc"),
           "synthetic": synthetic.make_dataset(seed=0), "import-study": import_study([d / "r.json"])}
    out.update({name: analysis.open_dataset(name) for name in ("mps-m3max-study", "cuda-h200-gpt2",
                                                                "cuda-h200-opt-bloom")})
    return out


def test_every_attr_and_variable_is_documented(files: dict[str, xr.Dataset]) -> None:
    for label, ds in files.items():
        for attr in ds.attrs:
            assert attr in schema.GLOBAL_ATTRS or attr in schema.OPTIONAL_ATTRS, f"{label}: attr {attr!r}"
            assert f"| {attr} |" in DOC, f"docs/schema.md lacks attr {attr!r} ({label})"
        for var in ds.data_vars:
            assert _documented_var(str(var)), f"{label}: variable {var!r} is not in the schema's lists"
    for name in ("memory", "timeout", "refine", "failures", "source", "merged_from", "truth_anomalous",
                 "truth_run_state"):
        assert f"| {name} |" in DOC
    assert "harness_startup_latency" in files["import-study"].data_vars
