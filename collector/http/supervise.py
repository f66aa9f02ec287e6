"""Keep a server started by ``--server-cmd`` from outliving the worker that started it (stdlib only).

``python -m collector.http.supervise PARENT_PID COMMAND`` runs ``COMMAND``
through the shell in a session of its own and then watches: when the server
exits, the supervisor exits with its status; when the process ``PARENT_PID``
(the sweep's worker) is gone, or the supervisor is asked to stop (SIGTERM),
it ends the server's whole process group (SIGTERM, then SIGKILL after
:data:`GRACE` seconds) and exits. A worker killed by the sweep (a run past its
timeout, Ctrl-C) therefore never leaves a server holding the port or the
accelerator, on macOS as on Linux.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

__all__ = ["GRACE", "POLL", "main", "stop_group"]

#: Seconds a server gets to exit after SIGTERM before its group is killed.
GRACE = 5.0
#: Seconds between two checks of the parent and the server.
POLL = 0.1


def stop_group(proc: subprocess.Popen[Any], grace: float = GRACE) -> None:
    """End the process group of ``proc`` (a session leader): SIGTERM, then SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # what the server started and left in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run and watch the server; the exit status is the server's (or 0 after stopping it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m collector.http.supervise PARENT_PID COMMAND", file=sys.stderr)
        return 2
    parent, command = int(args[0]), args[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's; the worker's death ends the server
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    proc = subprocess.Popen(command, shell=True, start_new_session=True)
    while True:
        code = proc.poll()
        if code is not None:
            return int(code)
        if stopping or os.getppid() != parent:
            stop_group(proc)
            return 0
        time.sleep(POLL)


if __name__ == "__main__":
    sys.exit(main())
