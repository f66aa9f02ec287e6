"""A combined dataset holds what was measured (issue 20): ``datasets/*.nc`` opened together.

Before: the outer product of every file's labels, 2520 combinations (origin x experiment x model x device x
cache x prompt) for 29 measured series, nominally 964 MB for 847 kB of files; ``kv`` left out 1252 empty
series, monotonicity and the summaries counted "of 2520 series". Now the measured series stacked on one dim
``series`` (:mod:`analysis.core.stacked`), and every analysis, table and count sees only them.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis.__main__ import main
from analysis.core import stacked
from analysis.registry import ANALYSES
from collector.dataset import schema

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "datasets").glob("*.nc"))
GLOB = str(ROOT / "datasets" / "*.nc")
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
CPU = ROOT / "datasets" / "cpu-xeon16-gpt2-opt.nc"


def _quiet(fn, *a, **kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _measured_series(path: Path) -> int:
    """The series of one file with at least one ok run (within one file, a series with none is no series)."""
    status = analysis.open_dataset(path)["status"]
    return int((status == schema.STATUS["ok"]).any(["budget", "trial"]).sum())


@pytest.fixture(scope="module")
def combined() -> xr.Dataset:
    return analysis.open_dataset(GLOB)


@pytest.fixture(scope="module")
def reg(combined: xr.Dataset) -> xr.Dataset:
    return _quiet(analysis.regimes, combined)


def test_series_count_is_the_measured_series(combined: xr.Dataset) -> None:
    expected = sum(_measured_series(p) for p in PUBLISHED)
    assert expected == 29  # cpu 6, cuda 4 + 4, the study 15 (of its 192 combinations)
    assert combined.sizes["series"] == expected
    assert stacked.is_stacked(combined) and "origin" in stacked.levels(combined)
    ok = (combined["status"] == schema.STATUS["ok"]).any(["budget", "trial"])
    assert bool(ok.all())  # every series has an ok run
    assert sorted(set(combined["origin"].values.tolist())) == ["cpu-xeon16-gpt2-opt", "cuda-h200-gpt2+1",
                                                             "mps-m3max-study"]


def test_memory_within_twice_the_files(combined: xr.Dataset) -> None:
    files = sum(p.stat().st_size for p in PUBLISHED)
    assert combined.nbytes <= 2 * files, (combined.nbytes, files)  # was 963,763,502 bytes (1138x)
    assert combined["step_time"].dims == (stacked.STEP_RUN, "step")


def test_kv_prints_no_empty_series(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kv", GLOB, "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 8  # the cache on/off pairs measured: cpu 3, cuda 4, the study's kv_ablation 1
    for row in rows:
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert re.fullmatch(r"\d+\.\d\dx", cells[1]), row  # a speedup, never x, - or n/a (no measurement)
    assert "(13 series with no cache on/off pair not listed)" in out  # measured with one cache setting only
    assert len(out.splitlines()) < 40  # the issue saw 1,281 lines (1,250 empty series)


def test_counts_see_only_series_with_data(combined: xr.Dataset, reg: xr.Dataset) -> None:
    assert reg.sizes["series"] == 29
    assert "(of 29 measured" in reg.attrs["summary"] and "2520" not in reg.attrs["summary"]
    mono = _quiet(analysis.monotonicity, combined)
    assert "21 of 23 series monotone" in mono.attrs["summary"]
    assert "6 series with one measured budget not counted" in mono.attrs["summary"]
    summaries = {}
    for entry in ANALYSES:  # no count in any summary or table note is larger than what was measured
        if entry.name == "regimes":
            continue
        res = _quiet(entry.function, combined, reg=reg) if entry.takes_reg else _quiet(entry.function, combined)
        text = res.attrs["summary"] + "\n" + entry.table(res).note
        summaries[entry.name] = text
        counts = [int(n) for n in re.findall(r"(\d+) (?:other |more )?(?:monotone )?(?:series|groups)\b", text)]
        counts += [int(n) for n in re.findall(r"of (\d+) (?:series|groups)", text)]
        assert max(counts, default=0) <= 29, (entry.name, text)
        assert "no measurement" not in text, (entry.name, text)  # (was: 1252 series with no measurement)
        cells = re.search(r"(\d+) model x device cells with the model not run on that device", text)
        if entry.name == "compare_backends":  # cpu: 3 models x (cuda, mps), cuda: 4 x (cpu, mps), the study 8
            assert cells is not None and int(cells.group(1)) == 22, text
    assert "in 7 of 29 series" in summaries["phases"]  # was "of 2520 series"
    assert "6 of 28 groups" in summaries["boundaries"]  # was "6 of 630 groups": cpu 6, cuda 8, the study 14
    assert "14 of 14 series" in summaries["step_regimes"]  # those with per-step times; was "14 of 2520"


def test_each_series_answers_as_when_its_file_is_opened_alone(reg: xr.Dataset) -> None:
    for path in (STUDY, CPU):
        alone = _quiet(analysis.regimes, analysis.open_dataset(path))
        label = "mps-m3max-study" if path == STUDY else "cpu-xeon16-gpt2-opt"
        part = stacked.unstack_levels(reg.sel(origin=label), stacked.levels(reg.sel(origin=label)))
        part = part.squeeze([d for d in part.dims if part.sizes[d] == 1 and d not in alone.dims], drop=True)
        part = part.reindex({d: alone[d].values for d in alone["ratio"].dims})
        for v in ("ratio", "baseline", "noise", "mde", "mde_4"):
            np.testing.assert_allclose(part[v].transpose(*alone[v].dims).values, alone[v].values, rtol=1e-6,
                                       equal_nan=True, err_msg=f"{path.name}: {v}")
        np.testing.assert_array_equal(part["anomalous"].transpose(*alone["anomalous"].dims).values,
                                      alone["anomalous"].values)


def test_step_times_by_run_come_back_over_the_series(combined: xr.Dataset) -> None:
    alone = analysis.open_dataset(CPU)
    dense = stacked.dense_steps(combined.sel(origin="cpu-xeon16-gpt2-opt").load())  # after a selection too
    assert dense.sizes["series"] == 6 and "step_run" not in dense.dims
    for model in alone["model"].values:
        for cache in (False, True):
            one = dense.sel(model=model, cache=cache)["step_time"].squeeze(drop=True)
            mine = alone["step_time"].sel(model=model, cache=cache).squeeze(drop=True)
            steps = min(one.sizes["step"], mine.sizes["step"])
            np.testing.assert_array_equal(one.sel(budget=mine["budget"], trial=mine["trial"]).isel(step=slice(0, steps))
                                          .transpose(*mine.dims).values, mine.isel(step=slice(0, steps)).values)
            assert not np.isfinite(mine.isel(step=slice(steps, None)).values).any()


def test_single_files_and_dense_combinations_stay_cubes(tmp_path: Path) -> None:
    for path in PUBLISHED:
        assert "series" not in analysis.open_dataset(path).dims
    cuda = analysis.open_dataset([p for p in PUBLISHED if p.name.startswith("cuda-")])  # one origin, no gap
    assert "series" not in cuda.dims and cuda.sizes["model"] == 4


def test_compare_matches_stacked_series_by_their_levels(combined: xr.Dataset) -> None:
    # failed before: compare() dropped the levels of 'series', so its verdicts were named "0:", "1:" and two
    # stacked datasets were paired by position
    other = combined.isel(series=list(range(28, 10, -1)))  # fewer series, in another order
    other = other.assign(latency=other["latency"].variable * 1.5)  # (a Variable: no second MultiIndex to merge)
    res = _quiet(analysis.compare, combined, other)
    assert res.sizes["series"] == 18
    cuda = [k for k in other.indexes["series"] if k[0] == "cuda-h200-gpt2+1"]
    assert cuda and all(float(res["series_ratio"].sel(series=k)) == pytest.approx(1.5, rel=1e-6) for k in cuda)
    assert "\n  0:" not in res.attrs["summary"] and "origin=cuda-h200-gpt2+1" in res.attrs["summary"]
