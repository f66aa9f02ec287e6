"""Messages that say what is wrong (issue 23): real files, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collector.dataset import schema

ROOT = Path(__file__).resolve().parents[1]
SIM = ["--devices", "sim", "--models", "tiny-gpt2", "--quiet"]


def run(module: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=120)


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "Traceback" not in line, proc.stderr
    for n in needles:
        assert n in line, (n, line)
    return line


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("messages")
    proc = run("collector", "run", *SIM, "--budgets", "8,16,24", "--trials", "2", "-o", "s.nc", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d


def test_one_unreadable_published_dataset_does_not_hide_the_others(sweep: Path, tmp_path: Path) -> None:
    """Was: one unreadable .nc in $DECODE_REGIMES_DATASETS made 'python -m analysis datasets' fail entirely."""
    folder = tmp_path / "pubs"
    folder.mkdir()
    (folder / "good.nc").write_bytes((sweep / "s.nc").read_bytes())
    (folder / "broken.nc").write_bytes((sweep / "s.nc").read_bytes()[:5000])  # truncated
    proc = run("analysis", "datasets", cwd=tmp_path, env={"DECODE_REGIMES_DATASETS": str(folder)})
    assert proc.returncode == 2
    out = proc.stdout.splitlines()
    assert any(line.startswith("good ") and "ok runs" in line for line in out), proc.stdout
    bad = [line for line in out if line.startswith("broken ")]
    assert len(bad) == 1 and f"cannot be read: {str(folder / 'broken.nc')!r}" in bad[0], proc.stdout
    assert proc.stderr.strip().startswith("error: 1 of ") and "cannot be read: broken" in proc.stderr


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_budget_coordinate_is_named_as_it_is(sweep: Path, tmp_path: Path, value: float) -> None:
    """Was: a NaN or inf budget coordinate was reported as -1."""
    ds = schema.load(sweep / "s.nc")
    budgets = ds["budget"].values.astype(float)
    budgets[1] = value
    ds.assign_coords(budget=budgets).to_netcdf(tmp_path / "b.nc")
    shown = repr(float(value))
    for module, args in (("analysis", ["regimes", "b.nc"]), ("collector", ["export", "--csv", "b.nc", "-o", "x.csv"])):
        line = one_line(run(module, *args, cwd=tmp_path), f"coordinate 'budget' holds {shown}; expected finite")
        assert "-1" not in line


def _make(kind: str, path: Path) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        other = path.with_name(f"other-{path.name}")
        os.symlink(other, path)
        os.symlink(path, other)
    else:
        os.symlink(path.with_name("nowhere.nc"), path)


@pytest.mark.parametrize("kind, words", [("folder", "is a folder, not a regular file"),
                                         ("fifo", "is a FIFO (named pipe), not a regular file"),
                                         ("loop", "is a symbolic link loop"),
                                         ("broken", "is a broken symbolic link")])
def test_a_dataset_that_is_no_file_is_said_to_be_what_it_is(sweep: Path, tmp_path: Path, kind: str, words: str) -> None:
    """Was: 'no such dataset file' for a folder, a FIFO or a link loop (and a FIFO could block the reader)."""
    _make(kind, tmp_path / "d.nc")
    (tmp_path / "s.nc").write_bytes((sweep / "s.nc").read_bytes())
    for module, args in (("analysis", ["regimes", "d.nc"]), ("analysis", ["report", "d.nc", "-o", "R"]),
                         ("collector", ["export", "--csv", "d.nc", "-o", "x.csv"]),
                         ("collector", ["merge", "d.nc", "s.nc", "-o", "m.nc"])):
        one_line(run(module, *args, cwd=tmp_path), f"dataset 'd.nc' {words}")
    _make(kind, tmp_path / "d.journal")
    one_line(run("collector", "resume", "d.journal", cwd=tmp_path), f"journal 'd.journal' {words}")


@pytest.fixture
def read_only_sweep() -> Iterator[Path]:
    """A finished sweep's journal (its dataset removed) on a tmpfs mounted read-only (root only)."""
    d = Path(tempfile.mkdtemp(prefix="ro-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(d)], capture_output=True).returncode:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        proc = run("collector", "run", *SIM, "--budgets", "8,16", "--trials", "2", "-o", "s.nc", cwd=d)
        assert proc.returncode == 0, proc.stderr
        (d / "s.nc").unlink()
        assert subprocess.run(["mount", "-o", "remount,ro", str(d)], capture_output=True).returncode == 0
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)
        os.rmdir(d)


def test_resume_on_a_read_only_file_system_is_one_line(read_only_sweep: Path) -> None:
    """Was: a raw '[Errno 30] Read-only file system' (or SQLite's 'unable to open database file')."""
    elsewhere = str(Path(tempfile.gettempdir()) / f"ro-{os.getpid()}.nc")
    for args in (["resume", "s.journal"], ["export", "s.journal", "-o", elsewhere]):
        one_line(run("collector", *args, cwd=read_only_sweep), "cannot open journal 's.journal': not writable: a "
                 "read-only file system (folder '.')", "copy it")


def test_a_nul_in_a_model_name_is_refused_before_the_sweep(tmp_path: Path) -> None:
    """Was: the sweep ran, then its final save failed on the name (and, before the schema check, wrote a file
    whose names were cut at the NUL)."""
    (tmp_path / "s.toml").write_text('[sweep]\nmodels = ["gpt\\u00002"]\ndevices = ["sim"]\nbudgets = "8"\n'
                                     'trials = 1\n[sim.costs."gpt\\u00002"]\nn_params = 1000\n')
    one_line(run("collector", "run", "--config", "s.toml", "-o", "n.nc", "--quiet", cwd=tmp_path),
             "model name 'gpt\\x002' holds a NUL character")
    assert not (tmp_path / "n.journal").exists() and not (tmp_path / "n.nc").exists()
