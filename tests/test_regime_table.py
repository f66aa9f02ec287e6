"""analysis.regime_table: one row per regime as a pandas DataFrame (issue 20), on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import analysis
from analysis.errors import InputError
from analysis.tables.tidy import REGIME_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
NULL = ROOT / "tests" / "data" / "real" / "cpu-idle-loop-ends-t3-on.nc"


@pytest.fixture(scope="module")
def study() -> tuple[xr.Dataset, xr.Dataset]:
    ds = analysis.open_dataset(STUDY)
    return ds, analysis.regimes(ds)


def test_public_and_not_the_segments_module() -> None:
    assert "regime_table" in analysis.__all__ and callable(analysis.regime_table)
    import analysis.detect.segments as module  # the rules module keeps its name

    assert hasattr(module, "NORMAL_RULES")


def test_one_row_per_regime_of_the_study(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    t = analysis.regime_table(reg)
    assert isinstance(t, pd.DataFrame)
    dims = [d for d in reg["kind"].dims if d != "segment"]
    assert list(t.columns) == [*dims, *REGIME_COLUMNS]
    assert len(t) == int(reg["segment_anomalous"].sum()) == 7
    assert set(t["kind"]) == {"slow"} and t["device"].eq("mps").all()
    probe = t[(t["experiment"] == "instability_probe")].iloc[0]
    assert (probe["first_budget"], probe["last_budget"]) == (512, 624)
    assert probe["effect_lo"] < probe["effect"] < probe["effect_hi"] and probe["q"] < 0.05
    assert np.isfinite(probe["mde"]) and probe["mde"] > 1
    # the same numbers as the Dataset, row by row
    one = reg.sel(experiment="instability_probe", model="gpt2-medium", device="mps", cache=True,
                  prompt_len=65).squeeze()
    j = int(np.flatnonzero(one["segment_anomalous"].values)[0])
    assert probe["effect"] == pytest.approx(float(one["effect"][j]))
    assert probe["mde"] == pytest.approx(float(one["mde"]))
    # every regime starts and ends at a budget its series measured
    measured = ds["latency"].notnull().any("trial")
    for _, row in t.iterrows():
        sel = {d: row[d] for d in dims}
        for b in (row["first_budget"], row["last_budget"]):
            assert bool(measured.sel(sel).sel(budget=b)), (sel, b)


def test_every_segment_adds_the_normal_stretches(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    _, reg = study
    t = analysis.regime_table(reg, every_segment=True)
    assert len(t) == int((reg["kind"] != "").sum())
    assert {"slow", "normal"} <= set(t["kind"])


def test_a_null_file_gives_an_empty_table_with_the_columns() -> None:
    reg = analysis.regimes(analysis.open_dataset(NULL))
    t = analysis.regime_table(reg)
    assert list(t.columns)[-len(REGIME_COLUMNS):] == list(REGIME_COLUMNS)
    assert len(t) == int(reg["segment_anomalous"].sum())


def test_refuses_what_is_not_a_regimes_result(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, _ = study
    with pytest.raises(InputError, match=r"reg lacks \['kind'"):
        analysis.regime_table(ds)
    with pytest.raises(InputError, match=r"got 'DataFrame'"):
        analysis.regime_table(pd.DataFrame())
