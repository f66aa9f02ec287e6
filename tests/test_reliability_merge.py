"""The same runs twice are not new trials: merge refuses identical inputs (issue 23). Real files, real processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from collector.dataset import schema
from processes import cli, refused

H = "model,execution_mode,prompt_name,max_tokens,use_cache,samples,avg_latency"


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sweeps")
    for name, seed in (("A.nc", "0"), ("B.nc", "1")):
        proc = cli("run", "--devices", "sim", "--models", "tiny-gpt2", "--budgets", "8,16", "--trials", "2",
                   "--seed", seed, "-o", name, "--quiet", cwd=d)
        assert proc.returncode == 0, proc.stderr
    assert cli("merge", "A.nc", "B.nc", "--as-trials", "-o", "AB.nc", cwd=d).returncode == 0
    shutil.copy(d / "A.nc", d / "Acopy.nc")
    os.symlink("A.nc", d / "Alink.nc")
    os.link(d / "A.nc", d / "Ahard.nc")
    return d


@pytest.mark.parametrize("second, needle", [
    ("A.nc", "'A.nc' is the same file as 'A.nc'"),
    ("./A.nc", "'./A.nc' is the same file as 'A.nc'"),
    ("Alink.nc", "'Alink.nc' is the same file as 'A.nc'"),
    ("Ahard.nc", "'Ahard.nc' is the same file as 'A.nc'"),
    ("Acopy.nc", "'Acopy.nc' is a byte-identical copy of 'A.nc'"),
    ("AB.nc", "inputs 'A.nc' and 'AB.nc' hold the same run(s) (8 with the same start time and latency"),
])
@pytest.mark.parametrize("mode", [["--as-trials"], ["--resolve", "first"], []])
def test_identical_runs_are_refused(sweeps: Path, second: str, needle: str, mode: list[str]) -> None:
    """Was: merge A.nc A.nc --as-trials made A's runs new trials (the few-trials warning gone, mde narrowed)."""
    out = sweeps / "M.nc"
    refused(cli("merge", "A.nc", second, *mode, "-o", "M.nc", cwd=sweeps), needle)
    assert not out.exists()


def test_distinct_sweeps_still_merge(sweeps: Path) -> None:
    ds = schema.load(sweeps / "AB.nc")
    assert ds.sizes["trial"] == 4


def test_imported_copies_without_timestamps_are_refused(tmp_path: Path) -> None:
    """Imported summaries have no start times: one contained in another (same cells, same latencies) is refused."""
    (tmp_path / "a.csv").write_text(f"{H}\ngpt2,mps,long_context,16,true,5,1.0\n")
    (tmp_path / "b.csv").write_text(f"{H}\ngpt2,mps,long_context,16,true,5,1.1\n")
    for src, out, title in (("a.csv", "a1.nc", "one"), ("a.csv", "a2.nc", "two"), ("b.csv", "b.nc", "b")):
        assert cli("import-study", src, "-o", out, "--title", title, cwd=tmp_path).returncode == 0
    refused(cli("merge", "a1.nc", "a2.nc", "--as-trials", "-o", "M.nc", cwd=tmp_path),
            "inputs 'a1.nc' and 'a2.nc' hold the same run(s) (every ok run of one is in the other")
    assert cli("merge", "a1.nc", "b.nc", "--as-trials", "-o", "M.nc", cwd=tmp_path).returncode == 0
    assert schema.load(tmp_path / "M.nc").sizes["trial"] == 2
