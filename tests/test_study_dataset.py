"""The study as a dataset: datasets/mps-m3max-study.nc is valid, matches the CSV copy and its builder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import analysis
from collector.dataset import schema
from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "datasets" / "study"
FILE = ROOT / "datasets" / "mps-m3max-study.nc"
CELL = {"dtype": "float32", "trial": 0}

#: The sweep dims of schema v1; later factor dims (length 1 here) are squeezed away by :func:`_v1`.
V1_DIMS = ("model", "device", "dtype", "cache", "prompt_len", "budget", "trial")


def _v1(ds: Any) -> Any:
    """``ds`` without the length-1 factor dims that schema versions after v1 add (attn, cache_impl, ...)."""
    extra = [d for d in ds.dims if d in schema.SWEEP_DIMS and d not in V1_DIMS and ds.sizes[d] == 1]
    return ds.squeeze(extra, drop=True)



@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return _v1(analysis.open_dataset(FILE))


def _csv(name: str) -> list[dict[str, str]]:
    with (STUDY / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def _lat(ds: xr.Dataset, experiment: str, model: str, device: str, cache: bool, prompt_len: int, budget: int) -> float:
    return float(ds.latency.sel(experiment=experiment, model=model, device=device, cache=cache,
                                prompt_len=prompt_len, budget=budget, **CELL))


def test_file_is_valid_measured_one_trial(ds: xr.Dataset) -> None:
    schema.validate(analysis.open_dataset(FILE))
    assert ds.sizes["trial"] == 1
    assert int(ds.attrs["simulated"]) == 0
    assert int(ds.attrs["runs_per_value"]) == 5
    assert "published means, not raw runs" in ds.attrs["values"]
    assert "arXiv:2605.08913" in ds.attrs["references"]
    assert "Non-Monotonic Latency in Apple MPS Decoding" in ds.attrs["references"]
    assert ds.latency.dims[0] == "experiment"
    assert set(ds.experiment.values.tolist()) == {"main_crossover", "instability_probe", "kv_ablation",
                                                  "prompt_ablation"}
    assert set(ds.device.values.tolist()) == {"cpu", "cuda", "mps"}
    assert (ds.attrs["run_order"], ds.attrs["isolation"], int(ds.attrs["warmup"])) == ("sequential", "cell", 3)


def test_file_is_what_the_builder_writes_now(ds: xr.Dataset) -> None:
    fresh = _v1(load_script("datasets/build_study.py").build(STUDY))
    for name in ("latency", "prefill_time", "decode_time", "mem_device_peak", "status", "tokens", "study_label"):
        xr.testing.assert_equal(fresh[name], ds[name])
    assert fresh.attrs["overlaps"] == ds.attrs["overlaps"]


def test_every_printed_latency_is_in_the_file(ds: xr.Dataset) -> None:
    n = 0
    for r in _csv("instability_probe.csv"):
        assert _lat(ds, "instability_probe", r["model"], "mps", True, 65, int(r["budget"])) == pytest.approx(
            float(r["latency_s"]), abs=1e-9)
        n += 1
    for r in _csv("kv_ablation.csv"):
        b = int(r["budget"])
        assert _lat(ds, "kv_ablation", r["model"], "mps", True, 65, b) == pytest.approx(float(r["cache_on_latency_s"]))
        assert _lat(ds, "kv_ablation", r["model"], "mps", False, 65, b) == pytest.approx(float(r["cache_off_latency_s"]))
        n += 2
    for r in _csv("prompt_ablation.csv"):
        assert _lat(ds, "prompt_ablation", r["model"], "mps", True, int(r["prompt_tokens"]), int(r["budget"])) == \
            pytest.approx(float(r["latency_s"]))
        n += 1
    for r in _csv("baseline_128.csv"):
        assert _lat(ds, "main_crossover", r["model"], r["device"], True, 65, 128) == pytest.approx(float(r["latency_s"]))
        n += 1
    for r in _csv("cuda_comparison.csv"):
        b = int(r["budget"])
        assert _lat(ds, "main_crossover", r["model"], "mps", True, 65, b) == pytest.approx(float(r["mps_latency_s"]))
        assert _lat(ds, "main_crossover", r["model"], "cuda", True, 65, b) == pytest.approx(float(r["cuda_t4_latency_s"]))
        n += 2
    for r in _csv("anomaly_summary.csv"):
        for b, col in (("anomalous_budget", "spike_latency_s"), ("reference_budget", "reference_latency_s")):
            assert _lat(ds, "main_crossover", r["model"], "mps", True, 65, int(r[b])) == pytest.approx(float(r[col]))
    # every ok cell is a printed value (the anomaly summary repeats cuda_comparison's mps cells)
    assert int((ds.status == schema.STATUS["ok"]).sum()) == n == 52
    assert bool(ds.latency.where(ds.status != schema.STATUS["ok"]).isnull().all())


def test_memory_phases_and_labels(ds: xr.Dataset) -> None:
    mem = ds.mem_device_peak.sel(experiment="kv_ablation", model="gpt2-medium", device="mps", cache=True,
                                 prompt_len=65, **CELL).dropna("budget")
    expected = {int(r["budget"]): float(r["peak_allocated_mb"]) * 2**20 for r in _csv("memory_profile.csv")}
    assert mem.budget.values.tolist() == sorted(expected)
    np.testing.assert_allclose(mem.values, [expected[b] for b in sorted(expected)])
    probe = {"experiment": "instability_probe", "model": "gpt2-medium", "device": "mps", "cache": True,
             "prompt_len": 65, **CELL}
    pre = ds.prefill_time.sel(**probe).dropna("budget")
    assert pre.budget.values.tolist() == [496, 512]
    np.testing.assert_allclose(pre.values, [0.08, 0.11])
    np.testing.assert_allclose(ds.decode_time.sel(**probe, budget=[496, 512]).values, [9.42, 89.09], atol=1e-9)
    assert int(np.isfinite(ds.prefill_time).sum()) == 2  # the phase split exists only where the paper states it
    labels = ds.study_label.sel(**probe)
    assert labels.budget.values[labels.values == 1].tolist() == list(range(512, 625, 16))
    assert labels.budget.values[labels.values == 0].tolist() == [480, 496, 640, 656]


def test_overlaps_list_every_experiment_value(ds: xr.Dataset) -> None:
    overlaps = json.loads(ds.attrs["overlaps"])
    assert [o["budget"] for o in overlaps] == [128, 384, 496, 512, 624, 640]
    at512 = next(o for o in overlaps if o["budget"] == 512)["latency_s"]
    assert at512 == {"instability_probe": 89.2, "kv_ablation": 83.2, "main_crossover": 84.5, "prompt_ablation": 83.9}


def test_regimes_flag_exactly_512_to_624_in_the_probe(ds: xr.Dataset) -> None:
    reg = _v1(analysis.regimes(ds))
    probe = reg.anomalous.sel(experiment="instability_probe", model="gpt2-medium", device="mps", dtype="float32",
                              cache=True, prompt_len=65)
    assert probe.budget.values[probe.values].tolist() == list(range(512, 625, 16))


def test_builder_refuses_inconsistent_copy(tmp_path: Path) -> None:
    bs = load_script("datasets/build_study.py")
    for f in STUDY.glob("*.csv"):
        (tmp_path / f.name).write_text(f.read_text())
    text = (tmp_path / "anomaly_summary.csv").read_text().replace("84.5", "84.6", 1)
    (tmp_path / "anomaly_summary.csv").write_text(text)
    with pytest.raises(ValueError, match=r"print 84\.6 and 84\.5 s"):
        bs.build(tmp_path)
    (tmp_path / "kv_ablation.csv").unlink()
    with pytest.raises(FileNotFoundError, match="'kv_ablation.csv' is missing"):
        bs.read_tables(tmp_path)


def test_builder_cli_writes_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bs = load_script("datasets/build_study.py")
    out = tmp_path / "study.nc"
    assert bs.main(["-o", str(out)]) == 0
    xr.testing.assert_equal(schema.load(out).latency, analysis.open_dataset(FILE).latency)
    assert bs.main(["-o", str(tmp_path / "x.nc"), "--tables", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: published table 'baseline_128.csv' is missing")
