"""A fresh server per configuration (``--server-cmd``): start it, wait until it answers, stop it.

:class:`ServerProcess` starts the formatted command through
:mod:`collector.http.supervise` (so the server dies with the worker that
started it), polls ``GET {endpoint}/models`` every 0.1 s until it answers 200
(the server is ready: what the study's harness waited for; a server without
that route, such as LitServe's ``OpenAISpec``, until ``GET /health`` does), and measures that
time: the *start-up time*, recorded per run as ``server_start_time``. A server
that exits before it is ready, or is not ready within the target's
``ready_timeout``, is an :class:`~collector.shared.errors.EndpointError` quoting the
last line it wrote on stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

from collector.http.client import ready
from collector.shared.errors import EndpointError

__all__ = ["ServerProcess", "READY_POLL"]

#: Seconds between two readiness checks.
READY_POLL = 0.1


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4000))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


class ServerProcess:
    """One server started from a command line, watched by a supervisor process.

    Parameters
    ----------
    command
        The shell command (a ``--server-cmd`` template already filled in).
    ready_url
        What answers 200 once the server is ready (``{endpoint}/models``).
    health_url
        What answers 200 once a server without that route (404 / 405) is ready (default ``{root}/health``).
    headers
        Headers of the readiness request (``Authorization``).
    """

    def __init__(self, command: str, ready_url: str, headers: Mapping[str, str] | None = None,
                 health_url: str = "") -> None:
        self.command, self.ready_url, self.headers = command, ready_url, dict(headers or {})
        self.health_url = health_url or ready_url.rsplit("/v1/", 1)[0] + "/health"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_time = float("nan")
        fd, self.log = tempfile.mkstemp(prefix="decode-regimes-server-", suffix=".log")
        os.close(fd)

    def start(self, ready_timeout: float) -> float:
        """Start the server and wait until it is ready; the seconds that took.

        Raises
        ------
        EndpointError
            The server exited first, or was not ready within ``ready_timeout`` seconds (it is stopped then).
        """
        env = dict(os.environ)
        paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        t0 = time.perf_counter()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "collector.http.supervise", str(os.getpid()),
                                          self.command], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        deadline = t0 + ready_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                last = _last_line(self.log)
                self.proc = None
                raise EndpointError(f"the server command exited with status {code} before it was ready"
                                    + (f"; its last line: {last!r}" if last else "") + f" (command: {self.command!r})")
            try:
                ready(self.ready_url, self.health_url, headers=self.headers, timeout=2.0)
                self.start_time = time.perf_counter() - t0
                return self.start_time
            except EndpointError:
                pass
            if time.perf_counter() >= deadline:
                last = _last_line(self.log)
                self.stop()
                raise EndpointError(f"the server was not ready within {ready_timeout:g} s (no answer from "
                                    f"{self.ready_url})" + (f"; its last line: {last!r}" if last else "")
                                    + f" (command: {self.command!r})", "timeout")
            time.sleep(READY_POLL)

    def alive(self) -> bool:
        """True while the server (its supervisor) runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server and its process group (through the supervisor) and wait for it; remove the log."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:  # pragma: no cover - a supervisor that hangs
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None
        try:
            os.unlink(self.log)
        except OSError:
            pass
