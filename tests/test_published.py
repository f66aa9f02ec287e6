"""Published datasets by short name: analysis.open_dataset("name") and python -m analysis datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr

import analysis
from analysis import published
from analysis.__main__ import main

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def test_every_file_in_datasets_has_a_short_name() -> None:
    found = published.available()
    for f in DATASETS.glob("*.nc"):
        assert found[f.stem].resolve() == f.resolve()
    assert {"mps-m3max-study", "cuda-h200-gpt2", "cuda-h200-opt-bloom"} <= set(found)


def test_open_by_name_is_open_by_path() -> None:
    by_name = analysis.open_dataset("mps-m3max-study")
    by_path = analysis.open_dataset(DATASETS / "mps-m3max-study.nc")
    xr.testing.assert_identical(by_name.latency, by_path.latency)
    assert analysis.io.expand_paths("cuda-h200-gpt2.nc") == [published.resolve("cuda-h200-gpt2")]
    both = published.resolve("cuda-h200-gpt2"), published.resolve("cuda-h200-opt-bloom")
    assert [p.name for p in both] == ["cuda-h200-gpt2.nc", "cuda-h200-opt-bloom.nc"]


def test_env_folder_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(DATASETS / "cuda-h200-opt-bloom.nc", tmp_path / "mine.nc")
    shutil.copy(DATASETS / "cuda-h200-opt-bloom.nc", tmp_path / "cuda-h200-gpt2.nc")  # shadows the published one
    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    assert published.search_path()[0] == tmp_path
    assert analysis.open_dataset("mine").sizes["trial"] == 3
    assert published.resolve("cuda-h200-gpt2").parent == tmp_path


def test_unknown_names_and_paths_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such dataset file or published dataset: 'nope'; published: "
                                                r".*mps-m3max-study"):
        analysis.open_dataset("nope")
    with pytest.raises(FileNotFoundError, match=r"no such dataset file: 'sub/mps-m3max-study'"):
        analysis.open_dataset("sub/mps-m3max-study")  # a path is never looked up by name
    assert not published.is_name("runs/*.nc") and not published.is_name("") and published.is_name("a-b.nc")


def test_cli_lists_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    names = list(published.available())
    assert [line.split()[0] for line in out] == names
    study = next(line for line in out if line.startswith("mps-m3max-study "))
    assert "52 ok runs x1 trial(s)" in study and "cpu,cuda,mps" in study
    assert main(["datasets", "--paths"]) == 0
    assert capsys.readouterr().out.split()[1].endswith(".nc")
    assert main(["regimes", "mps-m3max-study", "--n-boot", "0"]) == 0
    assert "instability_probe" in capsys.readouterr().out


def test_cli_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regimes", "no-such-published-set"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "published dataset: 'no-such-published-set'" in err[0]
