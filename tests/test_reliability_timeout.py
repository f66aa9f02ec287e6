"""One stop request delivered twice is one request (issue 23): real sweeps, real signals.

GNU ``timeout`` sends its SIGTERM to the command and then to the command's
process group, so the sweep receives it twice at once; on a busy GPU host
Python ran the handler for each and the sweep ended "interrupted twice" with
no dataset. The same signal again within ``_Stop.SAME_REQUEST`` seconds is now
the same request; a second stop later still stops at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.dataset import schema

ROOT = Path(__file__).resolve().parents[1]
# 27000 simulated runs: ten times the 3-trial sweep, which ended before its 4 s timeout on CI
CMD = ["-m", "collector", "run", "--devices", "sim", "--models", "gpt2", "--budgets", "1:900:1", "--trials", "30",
       "--cache", "on", "-o", "t.nc", "--quiet"]


def _start(cwd: Path, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*(prefix or []), sys.executable, *CMD], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_runs(cwd: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not (cwd / "t.journal").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # some runs in the journal


@pytest.mark.process
@pytest.mark.parametrize("gap", [0.0, 0.005, 0.05])
def test_one_signal_delivered_twice_writes_the_partial_dataset(tmp_path: Path, gap: float) -> None:
    proc = _start(tmp_path)
    _wait_for_runs(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(gap)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted twice" not in err and "interrupted: " in err and "written to t.nc" in err, err
    assert int((schema.load(tmp_path / "t.nc")["status"] == 0).sum()) > 0


def test_a_second_stop_later_still_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from collector import __main__ as cli

    clock = [100.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    stop = cli._Stop()
    stop._handler(signal.SIGTERM, None)
    stop._handler(signal.SIGTERM, None)  # the same signal at once: one request
    assert stop.count == 1
    clock[0] += cli._Stop.SAME_REQUEST
    with pytest.raises(KeyboardInterrupt):  # a second request: stop at once
        stop._handler(signal.SIGTERM, None)
    other = cli._Stop()
    other._handler(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):  # another signal at once is another request (Ctrl-C after a TERM)
        other._handler(signal.SIGINT, None)


@pytest.mark.process
@pytest.mark.skipif(shutil.which("timeout") is None, reason="GNU timeout not installed")
def test_under_gnu_timeout_the_partial_dataset_is_written(tmp_path: Path) -> None:
    proc = _start(tmp_path, ["timeout", "-s", "TERM", "4"])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124, err  # timeout's own status: it stopped the command
    assert "interrupted twice" not in err and "written to t.nc" in err, err
    assert (tmp_path / "t.nc").exists()
