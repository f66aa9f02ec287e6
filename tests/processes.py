"""Process helpers shared by the tests: the command line in a process of its own, and processes that end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

__all__ = ["ROOT", "cli", "gone", "refused"]

#: The repository's root (put first on the command line's PYTHONPATH).
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | str = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m collector ARGS`` of this checkout in a process of its own, its output captured as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one error line of a refused command (exit 2, no traceback), holding every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no such process, or a zombie waiting for its parent."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
