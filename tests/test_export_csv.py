"""Tidy export (one row per run) and the --force rule of export, merge and import-study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from collector.__main__ import main
from collector.dataset import schema
from collector.dataset.tidy import to_dataframe, write_csv

SIM = ["--devices", "sim", "--models", "gpt2", "--trials", "2", "--quiet"]


@pytest.fixture()
def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SIM, "--budgets", "8,16", "-o", "a.nc"]) == 0
    return tmp_path


@pytest.mark.process
def test_export_csv_one_row_per_run(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = schema.load("a.nc")
    assert main(["export", "a.journal", "--csv"]) == 0  # default: the sweep's output with .csv
    assert "wrote a.csv" in capsys.readouterr().out
    df = pd.read_csv("a.csv")
    n_runs = int((ds.status != schema.STATUS["not_run"]).sum())
    assert len(df) == n_runs == 2 * 2 * 2  # cache on/off x 2 budgets x 2 trials
    for d in ("model", "device", "dtype", "cache", "prompt_len", "budget", "trial"):
        assert d in df.columns
    assert {"latency", "prefill_time", "decode_time", "order", "n_params", "status"} <= set(df.columns)
    assert set(df.status) == {"ok"} and "step_time" not in df.columns
    row = df[(df.budget == 16) & (df.trial == 1) & df.cache].iloc[0]
    cell = ds.latency.sel(model="gpt2", device="sim", budget=16, trial=1, cache=True).squeeze()
    assert row.latency == pytest.approx(float(cell), rel=1e-9)
    assert pd.to_datetime(df.started_at).notna().all()
    # from the dataset file too, elsewhere
    assert main(["export", "a.nc", "--csv", "-o", "b.csv"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv("b.csv"), df)


@pytest.mark.process
def test_export_and_merge_refuse_to_overwrite(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = Path("a.nc").read_bytes()
    assert main(["export", "a.journal"]) == 2  # the sweep's own output exists
    assert "'a.nc' already exists; pass --force" in capsys.readouterr().err
    assert Path("a.nc").read_bytes() == before
    assert main(["export", "a.journal", "--force"]) == 0
    assert main(["export", "a.journal", "--csv"]) == 0
    assert main(["export", "a.journal", "--csv"]) == 2
    assert "'a.csv' already exists" in capsys.readouterr().err
    assert main(["export", "a.journal", "--csv", "--force"]) == 0
    assert main(["run", *SIM, "--budgets", "24", "-o", "c.nc"]) == 0
    assert main(["merge", "a.nc", "c.nc", "-o", "m.nc"]) == 0
    assert main(["merge", "a.nc", "c.nc", "-o", "m.nc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'m.nc' already exists; pass --force" in err[0]
    assert main(["merge", "a.nc", "c.nc", "-o", "m.nc", "--force"]) == 0


def test_to_dataframe_keeps_extra_dims_and_stat_columns(tmp_path: Path) -> None:
    study = to_dataframe(analysis.open_dataset("mps-m3max-study"))
    assert len(study) == 52 and study.columns[0] == "experiment"
    probe = study[(study.experiment == "instability_probe") & (study.budget == 512)].iloc[0]
    assert probe.latency == pytest.approx(89.2) and probe.prefill_time == pytest.approx(0.11)
    assert probe.study_label == 1 and probe.weights == "pretrained"
    every = to_dataframe(analysis.open_dataset("mps-m3max-study"), all_cells=True)
    assert len(every) > len(study) and "not_run" in set(every.status)

    from collector.dataset.study_import import import_study

    rows = [{"model": "gpt2", "execution_mode": "mps", "prompt_name": "long_context", "max_tokens": b,
             "use_cache": True, "samples": 5, "avg_latency": 1.0 + b / 100, "std_latency": 0.1} for b in (64, 128)]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    df = to_dataframe(import_study([tmp_path / "r.json"]))
    assert {"request_latency_mean", "request_latency_std", "n_runs"} <= set(df.columns)
    np.testing.assert_allclose(df.request_latency_std, 0.1)
    out = write_csv(import_study([tmp_path / "r.json"]), tmp_path / "sub" / "r.csv")
    assert pd.read_csv(out).request_latency_mean.tolist() == pytest.approx([1.64, 2.28])


def test_to_dataframe_needs_status() -> None:
    ds = analysis.open_dataset("cuda-h200-gpt2").drop_vars("status")
    with pytest.raises(schema.SchemaError, match="variable 'status' is missing"):
        to_dataframe(ds)
