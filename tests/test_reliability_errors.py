"""Issue 13, crashes and misleading answers: each fault becomes one clear line, exit status 2, nothing lost.

Real files and real processes, no mocks: the command lines run in this
process (a sweep's runs in real worker processes), or in a child process
where a file size limit must apply to them. A full or small disk is a real
small filesystem (a tmpfs mounted with ``size=...``) where this process may
mount one (root on Linux), and a real per-process file size limit
(``RLIMIT_FSIZE`` set in the child, with SIGXFSZ ignored so that writes fail
with EFBIG) everywhere: both variants run where both are possible. They make
the same writes fail; the expected cause differs ("disk full" or "file size
limit reached").
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from collector.__main__ import main as collector_main
from collector.dataset import schema

SIM = ["--devices", "sim", "--models", "tiny-gpt2", "--quiet"]


# ----------------------------------------------------------------------------- helpers
def _run_cli(module: str, args: Sequence[str], preexec: Callable[[], None] | None = None,
             cwd: Path | None = None) -> tuple[int, str, str]:
    """``python -m module args``: in this process (stdout/stderr captured), or in a child when ``preexec`` is given."""
    if preexec is None and cwd is None:
        out, err = io.StringIO(), io.StringIO()
        if module == "collector":
            main = collector_main
        else:
            from analysis.__main__ import main
        shown = warnings.showwarning
        try:
            with redirect_stdout(out), redirect_stderr(err):
                rc = main(list(args))
        finally:
            warnings.showwarning = shown
        return rc, out.getvalue(), err.getvalue()
    p = subprocess.run([sys.executable, "-m", module, *args], preexec_fn=preexec, capture_output=True, text=True,
                       timeout=180, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def collector(*args: str, preexec: Callable[[], None] | None = None) -> tuple[int, str, str]:
    return _run_cli("collector", args, preexec)


def analysis_cli(*args: str) -> tuple[int, str, str]:
    return _run_cli("analysis", args)


def one_error_line(rc: int, err: str) -> str:
    """The single ``error: ...`` line of a failed command (exit status 2, no traceback)."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def runs_in(journal: Path) -> int:
    with sqlite3.connect(journal) as c:
        return int(c.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- a real small filesystem
def _can_mount() -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    d = tempfile.mkdtemp()
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok
    finally:
        os.rmdir(d)


MOUNT = _can_mount()


def _limit(size: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child: a write past `size` bytes fails with EFBIG
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return preexec


@dataclass
class SmallDisk:
    """A folder with ``room`` bytes: a tmpfs of that size, or a file size limit for the commands run in it."""

    path: Path
    room: int | None
    mounted: bool

    @property
    def preexec(self) -> Callable[[], None] | None:
        """What a child process needs to meet this disk (None: no child needed)."""
        return None if self.mounted or self.room is None else _limit(self.room)

    @property
    def cause(self) -> str:
        return "disk full" if self.mounted else "file size limit reached"

    def fill(self) -> None:
        """No room left at all."""
        if self.mounted:
            fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
        else:
            self.room = 0

    def grow(self, size: str = "8m") -> None:
        """Make room (a bigger tmpfs, or no size limit)."""
        if self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)
        else:
            self.room = None


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], SmallDisk]]:
    """Both kinds run where this process may mount; the file size limit alone elsewhere."""
    mount = request.param == "tmpfs"
    if mount and not MOUNT:
        pytest.skip("a real small filesystem needs root on Linux; the file size limit variant covers this")
    made: list[SmallDisk] = []

    def make(room: int) -> SmallDisk:
        d = tmp_path / f"small{len(made)}"
        d.mkdir()
        if mount:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={max(room, 4096)}", "tmpfs", str(d)], check=True)
        disk = SmallDisk(d, room, mount)
        made.append(disk)
        return disk

    yield make
    for disk in made:
        if disk.mounted:
            subprocess.run(["umount", "-l", str(disk.path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in: a read-only tmpfs (root), or mode 0555 (others)."""
    d = tmp_path / "ro"
    d.mkdir()
    if MOUNT:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(d)], check=True)
    elif os.geteuid() == 0:
        pytest.skip("root writes into any folder of a writable filesystem and may not mount one read-only here")
    else:
        d.chmod(0o555)
    yield d
    if MOUNT:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
    else:
        d.chmod(0o755)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sim sweep: its journal (12 runs) beside its dataset."""
    d = tmp_path_factory.mktemp("sweep")
    rc, _, err = collector("run", *SIM, "--budgets", "8,16,24", "--trials", "2", "-o", str(d / "s.nc"))
    assert rc == 0, err
    return d / "s.journal"


# ============================================================================= 1. disk full or unwritable
@pytest.mark.process
def test_export_to_a_small_disk_is_one_line_and_leaves_nothing(sweep: Path, small_disk: Callable[[int], SmallDisk],
                                                               tmp_path: Path) -> None:
    disk = small_disk(64 * 1024)  # room for the up-front probe, not for the dataset
    rc, _, err = collector("export", str(sweep), "-o", str(disk.path / "a.nc"), preexec=disk.preexec)
    line = one_error_line(rc, err)
    assert "a.nc" in line and disk.cause in line, line
    assert "HDF" not in line and "Permission denied" not in line
    assert not (disk.path / "a.nc").exists() and leftovers(disk.path) == []
    rc, _, err = collector("export", str(sweep), "-o", str(tmp_path / "ok.nc"))  # the journal is intact
    assert rc == 0, err


@pytest.mark.process
@pytest.mark.parametrize("command", ["run", "export --csv"])
def test_full_disk_is_refused_before_any_run(command: str, sweep: Path,
                                             small_disk: Callable[[int], SmallDisk]) -> None:
    disk = small_disk(64 * 1024)
    disk.fill()
    if command == "run":
        args = ["run", *SIM, "--budgets", "8", "-o", str(disk.path / "x.nc")]
    else:
        args = ["export", str(sweep), "--csv", "-o", str(disk.path / "x.csv")]
    rc, _, err = collector(*args, preexec=disk.preexec)
    line = one_error_line(rc, err)
    assert disk.cause in line and "x." in line, line
    assert sorted(p.name for p in disk.path.iterdir()) in ([], ["filler"])  # no journal, no lock, no probe


@pytest.mark.process
def test_journal_filling_the_disk_mid_sweep_stops_cleanly_and_resumes(small_disk: Callable[[int], SmallDisk]) -> None:
    disk = small_disk(160 * 1024)
    out = disk.path / "y.nc"
    journal = disk.path / "y.journal"
    rc, _, err = collector("run", *SIM, "--budgets", "8:40:8", "--trials", "2", "-o", str(out), preexec=disk.preexec)
    line = one_error_line(rc, err)
    assert "journal" in line and disk.cause in line and "resume" in line, line
    assert "database or disk is full" not in line
    kept = runs_in(journal)
    assert 0 < kept < 20
    assert f"the {kept} runs recorded so far are kept" in line
    assert not Path(str(journal) + ".lock").exists()
    if disk.mounted:  # still no room (a size limit would leave room again once the journal is checkpointed)
        rc, _, err = collector("resume", str(journal), "--quiet", preexec=disk.preexec)
        line = one_error_line(rc, err)
        assert "journal" in line and disk.cause in line, line
        assert runs_in(journal) == kept
    disk.grow()
    rc, _, err = collector("resume", str(journal), preexec=disk.preexec)
    assert rc == 0, err
    assert runs_in(journal) == 20
    ds = xr.open_dataset(out)
    assert int((ds["status"] == 0).sum()) == 20
    ds.close()


@pytest.mark.process
def test_final_save_on_a_full_disk_names_the_cause_and_keeps_the_journal(
        sweep: Path, small_disk: Callable[[int], SmallDisk], tmp_path: Path) -> None:
    # resume of a finished journal runs nothing and goes straight to the final save
    work = tmp_path / "work"
    work.mkdir()
    for f in sweep.parent.glob("s.journal*"):
        shutil.copy(f, work / f.name)
    disk = small_disk(64 * 1024)
    rc, _, err = collector("resume", str(work / "s.journal"), "-o", str(disk.path / "final.nc"), "--quiet",
                           preexec=disk.preexec)
    line = one_error_line(rc, err)
    assert disk.cause in line and "final.nc" in line and "export" in line, line
    assert "Permission denied" not in line and "HDF" not in line
    assert leftovers(disk.path) == []
    assert runs_in(work / "s.journal") == 12
    rc, _, err = collector("export", str(work / "s.journal"), "-o", str(tmp_path / "after.nc"))
    assert rc == 0, err


@pytest.mark.process
@pytest.mark.parametrize("target", ["/proc/o.nc", ".", "/", "READONLY"])
@pytest.mark.parametrize("command", ["run", "export", "merge"])
def test_unwritable_or_nameless_outputs_are_refused_up_front(command: str, target: str, sweep: Path,
                                                             request: pytest.FixtureRequest) -> None:
    if target == "READONLY":
        target = str(request.getfixturevalue("read_only_dir") / "o.nc")
    nc = str(sweep.with_suffix(".nc"))
    args = {"run": ["run", *SIM, "--budgets", "8", "-o", target],
            "export": ["export", str(sweep), "-o", target, "--force"],
            "merge": ["merge", nc, nc, "-o", target, "--force"]}[command]
    rc, _, err = collector(*args)
    line = one_error_line(rc, err)
    if target in (".", "/"):
        assert f"{target!r} has no file name" in line, line
    else:
        assert "not writable" in line and repr(target) in line, line
    for bad in ("unable to open database file", "has an empty name", "Errno", "Device or resource busy"):
        assert bad not in line


@pytest.mark.parametrize("args", [["report", "RUN", "-o", "/proc/rep", "--quiet"],
                                  ["compare", "RUN", "RUN", "--plot", "/proc/x.png"],
                                  ["compare", "RUN", "RUN", "--plot", "."]])
@pytest.mark.process
def test_analysis_outputs_are_checked_before_the_work(args: list[str], sweep: Path) -> None:
    rc, _, err = analysis_cli(*[str(sweep.with_suffix(".nc")) if a == "RUN" else a for a in args])
    line = one_error_line(rc, err)
    assert "not writable" in line or "has no file name" in line, line
    assert "Errno" not in line


@pytest.mark.process
def test_save_raises_output_error_naming_path_and_cause(small_disk: Callable[[int], SmallDisk]) -> None:
    from analysis.synthetic import make_dataset
    from collector.dataset.schema import save
    from collector.shared.errors import OutputError

    disk = small_disk(64 * 1024)
    if not disk.mounted:
        pytest.skip("a file size limit applies to a child process; the CLI tests cover it")
    with pytest.raises(OutputError, match=r"cannot write dataset '.*big\.nc': disk full"):
        save(make_dataset(seed=0), disk.path / "big.nc")
    assert list(disk.path.iterdir()) == []


# ============================================================================= 2. a hand-corrupted journal
CORRUPTIONS = {
    "spec not JSON": ("UPDATE meta SET value = '{not json' WHERE key = 'spec'", "meta 'spec'"),
    "spec not a sweep": ("UPDATE meta SET value = '{\"models\": 3}' WHERE key = 'spec'", "sweep spec is invalid"),
    "spec a list": ("UPDATE meta SET value = '[1, 2]' WHERE key = 'spec'", "meta 'spec'"),
    "record {}": ("UPDATE runs SET record = '{}' WHERE id = 3", "run row id=3"),
    "record not JSON": ("UPDATE runs SET record = 'x' WHERE id = 2", "run row id=2"),
    "record with a bad status": ("UPDATE runs SET record = replace(record, '\"status\": \"ok\"', '\"status\": \"bad\"') "
                                 "WHERE id = 4", "run row id=4"),
    "missing column": ("ALTER TABLE runs DROP COLUMN planned", "lacks 'planned'"),
    "model info not JSON": ("UPDATE models SET info = '{' ", "models row"),
}


@pytest.mark.process
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_hand_corrupted_journal_is_one_line_naming_the_journal_and_the_row(corruption: str, sweep: Path,
                                                                           tmp_path: Path) -> None:
    sql, where = CORRUPTIONS[corruption]
    bad = tmp_path / "bad.journal"
    shutil.copy(sweep, bad)
    with sqlite3.connect(bad) as c:
        c.execute(sql)
    for args in (["export", str(bad), "-o", str(tmp_path / "b.nc")],
                 ["export", str(bad), "--csv", "-o", str(tmp_path / "b.csv")],
                 ["resume", str(bad), "-o", str(tmp_path / "r.nc"), "--quiet"]):
        rc, _, err = collector(*args)
        line = one_error_line(rc, err)
        assert repr(str(bad)) in line and where in line, (args, line)
        assert "stores no output path" not in line
    assert not (tmp_path / "b.nc").exists() and not (tmp_path / "r.nc").exists()


# ============================================================================= 3. unbounded arguments
@pytest.mark.process
@pytest.mark.parametrize("command", ["kv"])  # regimes has no bootstrap any more (its n_boot is deprecated, ignored)
def test_huge_n_boot_is_refused_at_once(command: str, tmp_path: Path) -> None:
    from analysis.synthetic import make_dataset
    from collector.dataset.schema import save

    path = save(make_dataset(seed=0, budgets=(16, 32, 48, 64), trials=3), tmp_path / "d.nc")
    rc, _, err = analysis_cli(command, str(path), "--n-boot", "100000000")  # its time: benchmarks/reliability_timing.py
    line = one_error_line(rc, err)
    assert "n_boot" in line and "100000000" in line, line


def test_bootstrap_larger_than_memory_is_refused_with_the_estimate() -> None:
    import analysis
    from analysis.core.limits import MAX_BOOT, available_memory, bootstrap_bytes
    from analysis.errors import InputError
    from analysis.synthetic import make_dataset

    ds = make_dataset(seed=0, prompt_lens=tuple(range(8, 8 * 51, 8)), budgets=tuple(range(8, 8 * 201, 8)), trials=2,
                      step_time=False)
    n_values = int(np.prod([ds.sizes[d] for d in ds["latency"].dims if d not in ("trial", "cache")]))
    avail = available_memory()
    if avail is None or bootstrap_bytes(MAX_BOOT, n_values) <= avail / 2:
        pytest.skip("this machine has room for the largest bootstrap allowed")
    with pytest.raises(InputError, match=r"n_boot=1000000 resamples of .* need about .* GiB"):
        analysis.kv_speedup(ds, n_boot=MAX_BOOT)


@pytest.mark.process
def test_huge_warmup_with_a_timeout_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    rc, _, err = collector("run", *SIM, "--budgets", "8", "--warmup", "100000000", "--timeout", "5",
                           "-o", str(tmp_path / "w.nc"))  # its time: benchmarks/reliability_timing.py
    line = one_error_line(rc, err)
    assert "warmup must be <= 100" in line, line
    assert list(tmp_path.iterdir()) == []


# ============================================================================= 4. silently wrong
@pytest.mark.process
def test_sim_mixed_with_a_real_device_is_refused(tmp_path: Path) -> None:
    rc, _, err = collector("run", "--devices", "sim", "cpu", "--models", "tiny-gpt2", "--budgets", "8", "--quiet",
                           "-o", str(tmp_path / "m.nc"))
    line = one_error_line(rc, err)
    assert "'sim'" in line and "real" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.process
def test_sim_checks_the_positions_of_the_model_like_real_devices(tmp_path: Path) -> None:
    rc, _, err = collector("run", *SIM, "--budgets", "8", "--prompt-lens", "100000", "-o", str(tmp_path / "p.nc"))
    line = one_error_line(rc, err)
    assert "exceeds the 512 positions of model 'tiny-gpt2'" in line, line
    rc, _, err = collector("run", *SIM, "--budgets", "16", "--prompt-lens", "496", "-o", str(tmp_path / "ok.nc"))
    assert rc == 0, err  # 496 + 16 = 512 positions: allowed, as on cpu


# ============================================================================= 5. misleading messages
@pytest.mark.process
def test_infinite_latency_is_reported_as_inf_not_nan(tmp_path: Path) -> None:
    import netCDF4

    from analysis.synthetic import make_dataset
    from collector.dataset.schema import save

    path = save(make_dataset(seed=0, budgets=(16, 32, 48, 64), trials=3), tmp_path / "inf.nc")
    with netCDF4.Dataset(path, "a") as nc:  # another tool edits the file: one ok run becomes infinitely slow
        status = nc["status"][:]
        lat = nc["latency"][:]
        lat[np.unravel_index(int(np.flatnonzero(np.asarray(status) == 0)[0]), lat.shape)] = np.inf
        nc["latency"][:] = lat
    rc, _, err = analysis_cli("regimes", str(path))
    line = one_error_line(rc, err)
    assert "'latency' is inf" in line and "NaN" not in line, line


def test_tiny_latencies_name_their_range_not_an_all_nan_speedup() -> None:
    import analysis
    from analysis.errors import InputError
    from analysis.synthetic import make_dataset

    ds = make_dataset(seed=0, budgets=(16, 32, 48, 64), trials=3)
    for v in ("latency", "prefill_time", "decode_time"):
        ds[v] = ds[v] * 1e-300
    for fn in (analysis.kv_speedup, analysis.regimes):
        with pytest.raises(InputError, match=r"'latency' has values from .*e-30\d to .* rescale") as info:
            fn(ds)
        assert "all NaN" not in str(info.value)


@pytest.mark.process
def test_broken_spec_is_not_reported_as_a_missing_output_path(sweep: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.journal"
    shutil.copy(sweep, bad)
    with sqlite3.connect(bad) as c:
        c.execute("UPDATE meta SET value = '\"garbage\"' WHERE key = 'spec'")
    rc, _, err = collector("export", str(bad))  # no -o: the output comes from the spec
    line = one_error_line(rc, err)
    assert "damaged" in line and "meta 'spec'" in line and "stores no output path" not in line, line


@pytest.mark.process
def test_refine_zero_means_off_on_the_command_line_as_in_toml(tmp_path: Path) -> None:
    rc, _, err = collector("run", *SIM, "--budgets", "8,16", "--trials", "1", "--refine", "0",
                           "-o", str(tmp_path / "cli.nc"))
    assert rc == 0, err
    (tmp_path / "r.toml").write_text("refine = 0\n")
    rc, _, err = collector("run", *SIM, "--budgets", "8,16", "--trials", "1", "--config", str(tmp_path / "r.toml"),
                           "-o", str(tmp_path / "toml.nc"))
    assert rc == 0, err
    for name in ("cli.nc", "toml.nc"):
        with xr.open_dataset(tmp_path / name) as ds:
            assert int(ds.attrs["refine"]) == 0 and json.loads(ds.attrs["sweep"])["refine"] is None


# ============================================================================= 6. untrusted strings
EVIL = "m\x1b]0;pwned\x07\x1b[2J[bold red]X"


def _no_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text[:300])


def test_visible_and_for_rich() -> None:
    from rich.console import Console

    from collector.shared.safetext import for_rich, visible

    assert visible(EVIL) == "m\\x1b]0;pwned\\x07\\x1b[2J[bold red]X"
    assert visible("a\nb\tc\x9b") == "a\\nb\\tc\\x9b"
    assert visible("a\nb", keep_newlines=True) == "a\nb"
    buf = io.StringIO()
    Console(file=buf, width=200).print(for_rich(EVIL))
    assert buf.getvalue().strip() == visible(EVIL)  # markup shown as written, controls as escapes


@pytest.fixture(scope="module")
def evil_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A sim sweep whose model name and title hold control sequences and rich markup (they come from a TOML file)."""
    d = tmp_path_factory.mktemp("evil")
    name = json.dumps(EVIL)
    (d / "evil.toml").write_text(
        f'models = [{name}]\ndevices = ["sim"]\nbudgets = "8,16,24,32"\ntrials = 2\n'
        f'title = {json.dumps("t" + EVIL)}\n[sim.costs.{name}]\nn_params = 1000\n')
    rc, out, err = collector("run", "--config", str(d / "evil.toml"), "-o", str(d / "e.nc"))
    assert rc == 0, err
    return d / "e.nc", out, err


@pytest.mark.process
def test_collector_prints_file_strings_escaped(evil_sweep: tuple[Path, str, str], tmp_path: Path) -> None:
    path, out, err = evil_sweep
    _no_control(out + err)
    assert "\\x1b" in out and "[bold" in out  # controls shown as escapes; markup shown as written, not applied
    again = schema.load(path)  # the same cells measured again an hour later (the same runs twice are refused)
    again["started_at"] = again["started_at"] + np.timedelta64(1, "h")
    schema.save(again, tmp_path / "again.nc")
    rc, _, err = collector("merge", str(path), str(tmp_path / "again.nc"), "-o", str(tmp_path / "m.nc"))  # a conflict
    line = one_error_line(rc, err)
    _no_control(line)
    assert "\\x1b" in line


@pytest.mark.process
@pytest.mark.parametrize("command", ["regimes", "kv", "backends", "monotonicity"])
def test_analysis_prints_file_strings_escaped(command: str, evil_sweep: tuple[Path, str, str]) -> None:
    rc, out, err = analysis_cli(command, str(evil_sweep[0]), "--all" if command == "monotonicity" else "--alpha=0.05")
    assert rc == 0, err
    _no_control(out + err)


@pytest.mark.process
def test_analysis_error_line_is_escaped(evil_sweep: tuple[Path, str, str]) -> None:
    rc, _, err = analysis_cli("regimes", str(evil_sweep[0]), "--var", "x\x1b[2J[bold red]")
    line = one_error_line(rc, err)
    _no_control(line)


def test_html_report_escapes_file_strings(tmp_path: Path) -> None:
    import analysis
    from analysis.synthetic import make_dataset

    ds = make_dataset(seed=0, budgets=(16, 32, 48, 64, 80), trials=3)
    ds = ds.assign_coords(model=["m<script>alert(1)</script>--><img src=x onerror=alert(2)>" + EVIL])
    ds.attrs["title"] = "<script>alert(3)</script>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = analysis.report(ds, tmp_path / "rep", workers=1)
    page = Path(files.html).read_text()
    assert "<script" not in page and "<img" not in page and "\x1b" not in page
    assert "&lt;script&gt;" in page
    md = Path(files.markdown).read_text()  # markdown renderers may run raw HTML too (not inside ``` blocks)
    outside = "".join(md.split("```")[::2])
    assert "<script" not in outside and "<img" not in outside and "\x1b" not in md
    assert "&lt;script&gt;" in outside
