"""``python -m analysis report``: no report replaced without --force, none left truncated (issue 23). Real processes."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=preexec)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    proc = run("-m", "collector", "run", "--devices", "sim", "--models", "tiny-gpt2", "--budgets", "8:64:8",
               "--trials", "2", "-o", "s.nc", "--quiet", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_existing_report_needs_force(sweep: Path) -> None:
    """Was: a second report silently replaced summary.md, index.html and figures/*."""
    first = run("-m", "analysis", "report", "s.nc", "-o", "R", "--quiet", "--workers", "1", cwd=sweep)
    assert first.returncode == 0, first.stderr
    before = _snapshot(sweep / "R")
    assert {"index.html", "summary.md"} <= set(before)
    again = run("-m", "analysis", "report", "s.nc", "-o", "R", "--quiet", "--workers", "1", cwd=sweep)
    assert again.returncode == 2
    line = again.stderr.strip()
    assert "\n" not in line and line.startswith("error: output folder 'R' already holds a report (index.html, "
                                                 "summary.md, figures); pass --force"), line
    assert _snapshot(sweep / "R") == before
    # a figure of an earlier report that this one does not draw goes; a file of another kind stays
    (sweep / "R" / "figures" / "gone_figure.png").write_bytes(b"old")
    (sweep / "R" / "figures" / "gone_figure.svg").write_text("<svg/>")
    (sweep / "R" / "figures" / "notes.txt").write_text("mine")
    forced = run("-m", "analysis", "report", "s.nc", "-o", "R", "--quiet", "--workers", "1", "--force", cwd=sweep)
    assert forced.returncode == 0, forced.stderr
    figures = {p.name for p in (sweep / "R" / "figures").iterdir()}
    assert not {"gone_figure.png", "gone_figure.svg"} & figures and "notes.txt" in figures
    page = (sweep / "R" / "index.html").read_text()
    assert all(name in page for name in figures - {"notes.txt"} if name.endswith(".svg")), figures
    # a folder holding only other files is fine
    (sweep / "other").mkdir()
    (sweep / "other" / "notes.txt").write_text("mine")
    assert run("-m", "analysis", "report", "s.nc", "-o", "other", "--quiet", "--workers", "1",
               cwd=sweep).returncode == 0
    assert (sweep / "other" / "notes.txt").read_text() == "mine"


def _limit(size: int) -> Callable[[], None]:
    def preexec() -> None:  # a write past `size` bytes fails with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return preexec


@pytest.mark.parametrize("room, named", [(30_000, "cannot write figure 'F"), (250_000, "cannot write report page 'F")])
def test_a_failed_write_names_the_file_and_leaves_nothing_truncated(sweep: Path, room: int, named: str) -> None:
    """Was: a full disk named no file and left a 0-byte and a truncated PNG."""
    folder = f"F{room}"
    proc = run("-m", "analysis", "report", "s.nc", "-o", folder, "--quiet", "--workers", "2", cwd=sweep,
               preexec=_limit(room))
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {named}") and "file size limit reached" in line, line
    files = [p for p in (sweep / folder).rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp") or p.stat().st_size == 0], files
    for p in files:
        data = p.read_bytes()
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), p
        elif p.suffix in (".svg", ".html"):
            assert data.rstrip().endswith((b"</svg>", b"</html>")), p
