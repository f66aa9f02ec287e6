"""Corrupt netCDF files (bit flips in compressed blocks): a named SchemaError, one CLI line, exit 2, no crash.

A flipped bit inside a zlib-compressed block made ``xr.open_dataset(...).load()``
raise ``RuntimeError: NetCDF: HDF error``, the failed file stayed open, and a
later open in the same process (a good file, then a corrupt one, then a glob
mixing them) could crash the interpreter with a segfault (exit 139).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import analysis
from analysis import synthetic
from collector.dataset import schema
from collector.shared.errors import SchemaError

ROOT = Path(__file__).resolve().parents[1]
#: Where in the file (share of its length) the bits are flipped: past the header, inside the compressed blocks.
FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)


def _flip(src: Path, dst: Path, fraction: float) -> Path:
    data = bytearray(src.read_bytes())
    at = int(len(data) * fraction)
    for k in range(0, 64, 8):
        data[at + k] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corrupt")
    good = schema.save(synthetic.make_dataset(seed=4, budgets=list(range(8, 136, 8)), trials=3), d / "good.nc")
    other = schema.save(synthetic.make_dataset(seed=5, models=["opt-125m"], budgets=list(range(8, 136, 8)), trials=3),
                        d / "other.nc")
    bad = []
    for f in FRACTIONS:
        p = _flip(good, d / f"bad{int(f * 100)}.nc", f)
        try:
            schema.load(p)
        except SchemaError:
            bad.append(p)
    assert bad, "no bit flip landed in a compressed block; move FRACTIONS"
    return {"good": good, "other": other, "bad": bad[0], "dir": d}


def test_bit_flipped_file_is_a_named_schema_error(files: dict[str, Path]) -> None:
    with pytest.raises(SchemaError, match=r"bad\d+\.nc' cannot be read: RuntimeError: NetCDF: HDF error"):
        analysis.open_dataset(files["bad"])
    with pytest.raises(SchemaError, match=r"bad\d+\.nc' cannot be read"):  # named among several files
        analysis.open_dataset([files["good"], files["other"], files["bad"]])
    # the good files still open, and the same file again after the failures
    assert analysis.open_dataset([files["good"], files["other"]]).sizes["model"] == 2


@pytest.mark.process
def test_good_corrupt_glob_sequence_in_one_process(files: dict[str, Path], tmp_path: Path) -> None:
    """The sequence that ended in a segfault (exit 139): every open succeeds or names the bad file."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("good", "other", "bad"):
        (mixed / f"{name}.nc").write_bytes(files[name].read_bytes())
    script = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("ignore")
        import analysis
        from collector.shared.errors import SchemaError
        steps = [{str(files['good'])!r}, {str(files['bad'])!r}, {str(mixed / '*.nc')!r},
                 [{str(mixed / 'good.nc')!r}, {str(mixed / 'other.nc')!r}], {str(mixed / '*.nc')!r},
                 {str(files['bad'])!r}, {str(files['good'])!r}]
        for step in steps:
            try:
                ds = analysis.open_dataset(step)
                print("ok", float(ds["latency"].sum()), flush=True)
            except SchemaError as exc:
                print("refused", exc, flush=True)
        print("done")
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    lines = res.stdout.splitlines()
    assert lines[-1] == "done" and len(lines) == 8
    assert [ln.split()[0] for ln in lines[:-1]] == ["ok", "refused", "refused", "ok", "refused", "refused", "ok"]
    assert all("bad.nc' cannot be read" in ln or "bad" in ln for ln in lines[:-1] if ln.startswith("refused"))
    assert lines[0] == lines[-2]  # the good file reads the same before and after the failures


@pytest.mark.process
@pytest.mark.parametrize("argv", [["-m", "analysis", "regimes"], ["-m", "analysis", "kv"]])
def test_analysis_cli_one_line_exit_2(files: dict[str, Path], argv: list[str]) -> None:
    res = subprocess.run([sys.executable, *argv, str(files["good"]), str(files["bad"])], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and files["bad"].name in err[0] and "NetCDF: HDF error" in err[0]


@pytest.mark.process
def test_collector_merge_one_line_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.nc"
    res = subprocess.run([sys.executable, "-m", "collector", "merge", str(files["good"]), str(files["bad"]), "-o",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr and not out.exists()
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and files["bad"].name in err[0]
