"""Published datasets: each is schema-v1 valid, measured (not simulated) and has a datasheet."""

from __future__ import annotations

from pathlib import Path

import pytest

import analysis
from collector.dataset import schema

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
FILES = sorted(DATASETS.glob("*.nc"))


def test_there_are_published_datasets() -> None:
    assert FILES, "datasets/ holds no .nc file"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_published_dataset_is_valid_and_documented(path: Path) -> None:
    ds = analysis.open_dataset(path)
    schema.validate(ds)
    assert int(ds.attrs["simulated"]) == 0
    assert "sim" not in set(ds.device.values.tolist())
    ok = ds.status == schema.STATUS["ok"]
    if "references" in ds.attrs:  # assembled from a publication's tables: a sparse grid of published cells
        assert int(ok.sum()) > 0
    else:  # a sweep of ours: every run finished
        assert float(ok.mean()) == pytest.approx(1.0)
    assert bool((ds.tokens == ds.budget).where(ok, True).all())
    assert str(path.name) in ds.attrs["command"], "attr 'command' should name the published file"
    sheet = (DATASETS / "README.md").read_text()
    assert f"## {path.name}" in sheet, f"datasets/README.md has no datasheet section for {path.name}"
