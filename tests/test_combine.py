"""Every published file opens together, with fresh CPU runs of other protocols, and the analyses run on the result.

The rules are collector.dataset.combine's: files of one origin (host + protocol +
weights) combine along their coordinates, other origins stay apart along a
leading dim ``origin``; ``collector merge`` follows them, and ``--as-trials``
appends repeated collections as new trials.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from analysis.core import stacked
from collector.dataset import combine, schema
from collector.dataset.export import merge_datasets
from collector.shared.errors import ConfigError, SchemaError

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "datasets").glob("*.nc"))
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
CUDA = [p for p in PUBLISHED if p.name.startswith("cuda-")]
PROBE = {"experiment": "instability_probe", "model": "gpt2-medium", "device": "mps", "cache": True, "prompt_len": 65}
KV = {"experiment": "kv_ablation", "model": "gpt2-medium", "device": "mps", "prompt_len": 65}


def _quick(out: Path, timing: str) -> Path:
    """The quick sweep, kept small: the tiny preset on CPU, 6 budgets, 2 trials, cache on and off."""
    res = subprocess.run([sys.executable, "-m", "collector", "run", "--models", "tiny-gpt2", "--devices", "cpu",
                          "--budgets", "4:24:4", "--trials", "2", "--timing", timing, "--quiet", "-o", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("quick")
    return {"events": _quick(d / "quick-events.nc", "events"), "ends": _quick(d / "quick-ends.nc", "ends")}


@pytest.fixture(scope="module")
def combined(quick: dict[str, Path]) -> xr.Dataset:
    return analysis.open_dataset([*map(str, PUBLISHED), str(quick["events"]), str(quick["ends"])])


def _quiet(fn, *a, **kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def test_published_glob_opens_as_one_dataset() -> None:
    ds = analysis.open_dataset(str(ROOT / "datasets" / "*.nc"))
    # what was measured: the series stacked on one dim (the cube of every file's labels was 2520 combinations)
    assert stacked.is_stacked(ds) and stacked.levels(ds)[0] == "origin"
    labels, first = combine.origin_labels(ds)
    assert {"cuda-h200-gpt2+1", "mps-m3max-study"} <= set(labels)  # the two CUDA files: one origin
    assert len(labels) == len(PUBLISHED) - 1
    timing = dict(zip(labels, ds["timing"].values[first].tolist()))
    assert timing["cuda-h200-gpt2+1"] == "events" and timing["mps-m3max-study"] == "ends"
    assert ds.attrs["timing"] == combine.PER_ORIGIN
    # the study's pretrained gpt2 and the random preset of the same name are two origins' models, not a conflict
    gpt2 = ds.sel(model="gpt2")
    weights = dict(zip(gpt2["origin"].values.tolist(), gpt2["weights"].values.tolist()))
    assert weights["cuda-h200-gpt2+1"] == "random" and weights["mps-m3max-study"] == "pretrained"
    assert sorted(set(ds["experiment"].values.tolist())) == ["instability_probe", "kv_ablation", "main_crossover",
                                                             "none", "prompt_ablation"]
    for d in ("budget", "trial"):
        assert ds.indexes[d].is_monotonic_increasing, d
    assert ds["n_params"].dtype == np.int64 and ds["cache"].dtype == bool
    assert (ds["status"] == schema.STATUS["ok"]).any(["budget", "trial"]).all()  # only series with data
    # each series holds its file's runs
    for path in PUBLISHED:
        alone = analysis.open_dataset(path)
        label = next(k for k, files in zip(labels, ds["files"].values[first].tolist()) if path.name in files)
        part = _cube(ds.sel(origin=label), alone)
        ok = alone["status"] == schema.STATUS["ok"]
        np.testing.assert_array_equal(part["latency"].where(ok).values, alone["latency"].where(ok).values)


def _cube(part: xr.Dataset, alone: xr.Dataset) -> xr.Dataset:
    """A stacked part of a combined dataset (or result) as the cube of ``alone`` (a file opened alone)."""
    cube = stacked.unstack_levels(part, stacked.levels(part))
    extra = [d for d in cube.dims if d not in alone.dims and cube.sizes[d] == 1]
    cube = cube.squeeze(extra, drop=True) if extra else cube
    return cube.reindex({d: alone[d].values for d in alone.dims if d in cube.dims and d in alone.indexes})


@pytest.mark.slow
@pytest.mark.process
def test_combined_with_fresh_cpu_runs(combined: xr.Dataset, quick: dict[str, Path]) -> None:
    labels, first = combine.origin_labels(combined)
    timing = dict(zip(labels, combined["timing"].values[first].tolist()))
    assert len(timing) == len(PUBLISHED) + 1  # the CUDA files are one origin; each quick run is one
    assert {k: timing[k] for k in ("cuda-h200-gpt2+1", "mps-m3max-study", "quick-ends", "quick-events")} == \
        {"cuda-h200-gpt2+1": "events", "mps-m3max-study": "ends", "quick-ends": "ends", "quick-events": "events"}
    for label, path in (("quick-events", quick["events"]), ("quick-ends", quick["ends"])):
        alone = analysis.open_dataset(path)
        part = _cube(combined.sel(origin=label, experiment="none"), alone).transpose(*alone["latency"].dims)
        np.testing.assert_array_equal(part["latency"].values, alone["latency"].values)
        np.testing.assert_array_equal(part["status"].values, alone["status"].values)
    # every run of a series with data is in exactly one origin's file
    measured = (combined["status"] != schema.STATUS["not_run"]) & (combined["status"] != schema.STATUS["not_applicable"])
    total = 0
    for p in [*PUBLISHED, quick["events"], quick["ends"]]:
        status = analysis.open_dataset(p)["status"]
        with_data = (status == schema.STATUS["ok"]).any(["budget", "trial"])
        total += int(((status != 4) & (status != 5) & with_data).sum())
    assert int(measured.sum()) == total


@pytest.mark.slow
@pytest.mark.process
def test_regimes_on_the_combined_set(combined: xr.Dataset, quick: dict[str, Path]) -> None:
    reg = _quiet(analysis.regimes, combined)
    probe = reg["anomalous"].sel(origin="mps-m3max-study", **PROBE).squeeze(drop=True)
    assert probe["budget"].values[probe.values].tolist() == list(range(512, 625, 16))  # the study's 512..624
    alone = _quiet(analysis.regimes, analysis.open_dataset(STUDY))
    np.testing.assert_array_equal(alone["anomalous"].sel(**PROBE).squeeze(drop=True).values,
                                  probe.sel(budget=alone["budget"].values).values)
    # the CUDA series are unchanged by what else was opened
    cuda_alone = _quiet(analysis.regimes, analysis.open_dataset(CUDA))
    part = _cube(reg.sel(origin="cuda-h200-gpt2+1", experiment="none"), cuda_alone).reindex(
        budget=cuda_alone["budget"].values)
    assert not bool(part["anomalous"].any()) and not bool(cuda_alone["anomalous"].any())
    # equal to the fit's tolerance (the robust baseline is iterative; the combined budget axis spans 4..768)
    np.testing.assert_allclose(part["ratio"].values, cuda_alone["ratio"].transpose(*part["ratio"].dims).values,
                               rtol=1e-4, equal_nan=True)
    # the fresh runs' own analyses are those of the files opened alone: the same noise, and the same scan
    # p-values up to the Monte Carlo error of the permutations (a series' random stream is seeded by its place
    # among the dataset's series; two estimates from 200 permutations differ with sd at most 0.05)
    for label, path in (("quick-events", quick["events"]), ("quick-ends", quick["ends"])):
        mine = _quiet(analysis.regimes, analysis.open_dataset(path))
        part = _cube(reg.sel(origin=label, experiment="none"), mine)
        for v, tol in (("noise", {"rtol": 1e-3}), ("p_series", {"atol": 0.25})):
            np.testing.assert_allclose(part[v].transpose(*mine[v].dims).values, mine[v].values, **tol)
    assert f"{len(combine.origin_labels(combined)[0])} origins (hosts or protocols), kept apart as level 'origin'" \
        in reg.attrs["summary"]
    assert "timing events" in reg.attrs["summary"] and "timing ends" in reg.attrs["summary"]


@pytest.mark.slow
@pytest.mark.process
def test_kv_speedup_and_compare_backends_on_the_combined_set(combined: xr.Dataset, quick: dict[str, Path]) -> None:
    kv = _quiet(analysis.kv_speedup, combined, n_boot=200)
    study = kv.sel(origin="mps-m3max-study", **KV).squeeze(drop=True)
    alone = _quiet(analysis.kv_speedup, analysis.open_dataset(STUDY), n_boot=200).sel(**KV).squeeze(drop=True)
    assert study["budget"].values[study["collapse"].values].tolist() == \
        alone["budget"].values[alone["collapse"].values].tolist()
    assert 512 in study["budget"].values[study["collapse"].values].tolist()
    assert float(study["speedup"].sel(budget=512)) == pytest.approx(1.9, abs=0.1)  # the study's "about 1.9x at 512"
    assert float(study["speedup_inside"]) == pytest.approx(float(alone["speedup_inside"]), rel=1e-9)
    assert "origins (hosts or protocols)" in kv.attrs["summary"]
    back = _quiet(analysis.compare_backends, combined)
    shows = back["shows_regimes"]
    assert bool(shows.sel(origin="mps-m3max-study", experiment="main_crossover", model="gpt2-medium", device="mps").all())
    assert not bool(shows.sel(origin="mps-m3max-study", experiment="main_crossover", device=["cpu", "cuda"]).any())
    assert not bool(shows.sel(origin="cuda-h200-gpt2+1").any())
    # the fresh runs are real measurements of this (shared) host: whether one of their 2-trial series shows a
    # regime is for the statistics to say at their level (and q depends on every series tested with it), so
    # here: the same series are pooled as when they are opened alone
    for label, path in (("quick-events", quick["events"]), ("quick-ends", quick["ends"])):
        mine = _quiet(analysis.compare_backends, analysis.open_dataset(path))
        part = back.sel(origin=label, experiment="none", model=mine["model"].values, device=mine["device"].values)
        np.testing.assert_array_equal(part["n_series"].values, mine["n_series"].values)


@pytest.mark.slow
@pytest.mark.process
def test_analysis_cli_regimes_on_the_published_glob() -> None:
    res = subprocess.run([sys.executable, "-m", "analysis", "regimes", "datasets/*.nc"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "budgets 512-624" in res.stdout and "origin" in res.stdout
    # series no file measured (the study has no opt-350m) are not listed; failed before: 2520 table rows
    assert "model=opt-350m, device=mps" not in res.stdout and len(res.stdout.splitlines()) < 200


# --------------------------------------------------------------------------- the rules, on small synthetic files
def _saved(ds: xr.Dataset, path: Path) -> Path:
    return schema.save(ds, path)


def _rerun(ds: xr.Dataset) -> xr.Dataset:
    """The same values measured again an hour later: other runs (merge refuses the same runs twice, issue 23)."""
    b = ds.copy(deep=True)
    b["started_at"] = b["started_at"] + np.timedelta64(1, "h")
    return b


def test_same_cells_on_two_hosts_are_kept_apart(tmp_path: Path) -> None:
    a = synthetic.make_dataset(seed=1, budgets=[8, 16, 24], trials=2)
    b = a.copy(deep=True)
    b.attrs = dict(a.attrs, host="other-host", gpu_name="Other GPU")
    both = analysis.open_dataset([_saved(a, tmp_path / "a.nc"), _saved(b, tmp_path / "b.nc")]).compute()
    assert both["origin"].values.tolist() == ["a", "b"] and both["host"].values.tolist() == [a.attrs["host"],
                                                                                              "other-host"]
    xr.testing.assert_equal(both["latency"].sel(origin="b", drop=True).reset_coords(drop=True),
                            a["latency"].reset_coords(drop=True))
    # same host and protocol, same cells: refused, naming both files and the cell
    _saved(a, tmp_path / "c.nc")
    with pytest.raises(SchemaError, match=r"cell \{'model': 'gpt2'.*was measured in '.*a\.nc' and in '.*c\.nc'"):
        analysis.open_dataset([tmp_path / "a.nc", tmp_path / "c.nc"])


def test_boundaries_on_two_origins_names_them(tmp_path: Path) -> None:
    """boundaries on a combined dataset: its group names once called .item() on the origin labels (str)."""
    from collector.shared.sim import Regime

    a = synthetic.make_dataset(seed=4, budgets=[8, 16, 24, 32, 40, 48], prompt_lens=[8, 24], trials=3,
                               regimes=(Regime(24, 32, 4.0),))
    b = a.copy(deep=True)
    b.attrs = dict(a.attrs, host="other-host")
    both = analysis.open_dataset([_saved(a, tmp_path / "a.nc"), _saved(b, tmp_path / "b.nc")])
    text = _quiet(analysis.boundaries, both).attrs["summary"]
    assert "origin=a/" in text and "origin=b/" in text and "2 origins" in text, text
    assert "attn=" not in text and "cache_impl=" not in text  # single-valued factors are not named


def test_unsorted_float_coordinates_are_normalised(tmp_path: Path) -> None:
    ds = synthetic.make_dataset(seed=2, models=["opt-125m", "gpt2"], budgets=[8, 16, 24], trials=2)
    ds = ds.isel(model=[1, 0], budget=[2, 0, 1])  # stored unsorted
    ds = ds.assign_coords(n_params=("model", ds["n_params"].values.astype(float)))
    ds.to_netcdf(tmp_path / "raw.nc")  # bypassing save(), which would sort and fix the dtypes
    other = _saved(synthetic.make_dataset(seed=3, models=["distilgpt2"], budgets=[8, 16, 24], trials=2),
                   tmp_path / "other.nc")
    both = analysis.open_dataset([tmp_path / "raw.nc", other])
    assert both["model"].values.tolist() == ["distilgpt2", "gpt2", "opt-125m"]
    assert both["budget"].values.tolist() == [8, 16, 24] and both["n_params"].dtype == np.int64


def test_merge_follows_the_same_rules_and_reopens(tmp_path: Path) -> None:
    a = synthetic.make_dataset(seed=1, budgets=[8, 16, 24], trials=2)
    b = _rerun(a)
    b.attrs = dict(a.attrs, timing="ends")
    m = merge_datasets([a, b], names=["a.nc", "b.nc"])
    assert m["origin"].values.tolist() == ["a", "b"] and m["timing"].values.tolist() == ["step", "ends"]
    assert (m["source"].sel(origin="b") == 1).all()
    path = schema.save(m, tmp_path / "m.nc")
    # a merged file opens with others: its origins are kept, a third origin joins them
    c = synthetic.make_dataset(seed=7, models=["opt-125m"], budgets=[8, 16, 24], trials=2)
    c.attrs = dict(c.attrs, timing="events")
    three = analysis.open_dataset([path, _saved(c, tmp_path / "c.nc")])
    # origin a and b measured gpt2, c opt-125m: what was measured, stacked (not origin x model with gaps)
    assert combine.origin_labels(three)[0] == ["a", "b", "c"] and three.sizes["series"] == 3 * a["latency"][
        ..., 0, 0].size
    part = _cube(three.sel(origin="b"), b).transpose(*b["latency"].dims)
    np.testing.assert_array_equal(part["latency"].sel(model="gpt2").values, b["latency"].sel(model="gpt2").values)


def test_merge_as_trials(tmp_path: Path) -> None:
    a = synthetic.make_dataset(seed=1, budgets=[8, 16, 24], trials=2)
    b = synthetic.make_dataset(seed=9, budgets=[8, 16, 24], trials=3)
    b.attrs = dict(a.attrs, seed=9)
    m = merge_datasets([a, b], names=["a.nc", "b.nc"], as_trials=True)
    assert m["trial"].values.tolist() == [0, 1, 2, 3, 4] and "origin" not in m.dims
    np.testing.assert_array_equal(m["latency"].sel(trial=[2, 3, 4]).values, b["latency"].values)
    assert (m["source"].sel(trial=[0, 1]) == 0).all() and (m["source"].sel(trial=[2, 3, 4]) == 1).all()
    assert int(m["order"].sel(trial=[2, 3, 4]).min()) > int(m["order"].sel(trial=[0, 1]).max())  # one sequence
    other = b.copy()
    other.attrs = dict(b.attrs, timing="ends")
    with pytest.raises(ConfigError, match=r"'timing' differs \('step' vs 'ends'\)"):
        merge_datasets([a, other], names=["a.nc", "b.nc"], as_trials=True)
    pretrained = b.assign_coords(weights=("model", ["pretrained"]))
    with pytest.raises(ConfigError, match="model 'gpt2' has weights 'random' vs 'pretrained'"):
        merge_datasets([a, pretrained], names=["a.nc", "b.nc"], as_trials=True)


@pytest.mark.slow
@pytest.mark.process
def test_merge_as_trials_cli(tmp_path: Path, quick: dict[str, Path]) -> None:
    out = tmp_path / "m.nc"
    res = subprocess.run([sys.executable, "-m", "collector", "merge", "--as-trials", str(quick["events"]),
                          str(quick["ends"]), "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.count("\n") == 1 and "'timing' differs ('events' vs 'ends')" in res.stderr
    again = tmp_path / "again.nc"
    again.write_bytes(quick["events"].read_bytes())  # the same runs again are not new trials (issue 23)
    res = subprocess.run([sys.executable, "-m", "collector", "merge", "--as-trials", str(quick["events"]),
                          str(again), "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and not out.exists() and "is a byte-identical copy of" in res.stderr, res.stderr
    rerun = _rerun(schema.load(quick["events"]))
    res = subprocess.run([sys.executable, "-m", "collector", "merge", "--as-trials", str(quick["events"]),
                          str(_saved(rerun, tmp_path / "rerun.nc")), "-o", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert analysis.open_dataset(out).sizes["trial"] == 4


def test_schema_doc_lists_the_origin_coordinates_and_attrs(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "schema.md").read_text()
    a = synthetic.make_dataset(seed=1, budgets=[8, 16, 24], trials=2)
    b = _rerun(a)
    b.attrs = dict(a.attrs, host="other-host")
    m = merge_datasets([a, b], names=["a.nc", "b.nc"])
    c = a.copy(deep=True)
    c.attrs = dict(a.attrs, timing="events")
    both = analysis.open_dataset([schema.save(m, tmp_path / "m.nc"), _saved(c, tmp_path / "x.nc")])
    assert both.sizes["origin"] == 3
    for ds in (m, both):
        for name, coord in ds.coords.items():
            if coord.dims == (combine.ORIGIN_DIM,) and name != combine.ORIGIN_DIM:
                assert f"| {name} |" in doc, name
        for attr in ds.attrs:
            assert f"| {attr} |" in doc, attr
    assert "## Combining files: origins" in doc and '"per origin"' in doc


def test_tidy_table_of_a_combined_dataset_has_each_origins_settings() -> None:
    # failed before: the per-origin (origin, model) weights and the origin settings were left out of the rows
    from collector.dataset.tidy import to_dataframe

    a = synthetic.make_dataset(seed=1, budgets=[8, 16, 24], trials=2)
    b = _rerun(a).assign_coords(weights=("model", ["pretrained"]))
    b.attrs = dict(a.attrs, timing="ends")
    df = to_dataframe(merge_datasets([a, b], names=["a.nc", "b.nc"]))
    rows = df.groupby(["origin", "weights", "timing"]).size().to_dict()
    n = int((a["status"] == 0).sum())
    assert rows == {("a", "random", "step"): n, ("b", "pretrained", "ends"): n}


def test_integer_coordinates_past_int64_or_fractional_are_refused(tmp_path: Path) -> None:
    # failed before: n_params 1e300 (a float coordinate) was cast to a garbage integer with a RuntimeWarning
    ds = synthetic.make_dataset(seed=2, budgets=[8, 16, 24], trials=2)
    for value, shown in ((1e300, "1e+300"), (2.5, "2.5")):
        bad = ds.assign_coords(n_params=("model", np.asarray([value])))
        bad.to_netcdf(tmp_path / "bad.nc")
        with pytest.raises(SchemaError, match=re.escape(f"bad.nc': coordinate 'n_params' holds {shown}; expected")):
            analysis.open_dataset(tmp_path / "bad.nc")
    nan = ds.assign_coords(n_params=("model", np.asarray([np.nan])))  # a CF reader's fill: unknown, -1
    nan.to_netcdf(tmp_path / "nan.nc")
    assert analysis.open_dataset(tmp_path / "nan.nc")["n_params"].values.tolist() == [-1]
