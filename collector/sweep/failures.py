"""How a failed run is classified: one place for ``error``, ``oom`` and ``timeout``.

A run fails inside its worker (an exception: :func:`classify_exception`), or
its worker dies or hangs (:func:`classify_exit`, and :data:`TIMEOUT` when the
sweep kills a worker that ran past the run's limit). Torch-free: torch's
out-of-memory exceptions are recognised by name and message.

A worker killed by a signal is not necessarily the run's fault: ``kill``, GNU
``timeout`` or systemd stopping the sweep's process group, or a user ending a
worker, send the same signals as a crash. So a signal death is only a failure
when it is evidence of one: a SIGKILL while the kernel's out-of-memory counter
grew (:func:`oom_kills`) is ``oom``; any other signal death is an interruption
the first time (:data:`INTERRUPTED`: nothing is recorded and the run is tried
again in a fresh worker) and the run's failure only when its retry dies from a
signal too (a crash that repeats is the run's own).
"""

from __future__ import annotations

import signal

__all__ = ["ERROR", "OOM", "TIMEOUT", "TRUNCATED", "FAILED", "INTERRUPTED", "classify_exception", "classify_exit",
           "describe_exit", "message", "oom_kills"]

ERROR = "error"
OOM = "oom"
TIMEOUT = "timeout"
#: A run that finished before its budget (engine http: a server that stops at an end-of-sequence token).
TRUNCATED = "truncated"
#: Statuses of a failed run (``resume --retry-failed`` runs them again: a truncated one too, say after the server
#: was restarted with a setting that honours ``ignore_eos``).
FAILED: tuple[str, ...] = (ERROR, OOM, TIMEOUT, TRUNCATED)
#: What :func:`classify_exit` returns for a worker killed from outside: not a status, the run stays pending.
INTERRUPTED = None

_MAX_MESSAGE = 2000


def classify_exception(exc: BaseException) -> str:
    """``oom`` for out-of-memory exceptions (MemoryError, torch's OutOfMemoryError, "out of memory" messages), else ``error``."""
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
        return OOM
    return ERROR


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed since boot (Linux ``/proc/vmstat``
    ``oom_kill``), or None where the system does not say."""
    try:
        with open("/proc/vmstat", encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def classify_exit(returncode: int | None, *, oom_killed: bool | None = None, repeated: bool = True) -> str | None:
    """Status of a run whose worker died with ``returncode``, or :data:`INTERRUPTED` (None) when the death
    is no evidence against the run.

    Parameters
    ----------
    returncode
        The worker's exit status (negative: killed by that signal).
    oom_killed
        Whether the kernel's out-of-memory killer killed a process while the run went
        (:func:`oom_kills` before and after), None where unknown.
    repeated
        Whether the run's worker already died from a signal once (in this sweep).

    Returns
    -------
    str or None
        ``oom`` for a SIGKILL with the out-of-memory counter grown (or a repeated SIGKILL where the
        counter is unknown); ``error`` for a worker that exited on its own (a crash of the
        interpreter) or died from a signal again; None for a first death by a signal otherwise.
    """
    if returncode is None or returncode >= 0:
        return ERROR
    if returncode == -signal.SIGKILL and oom_killed:
        return OOM
    if not repeated:
        return INTERRUPTED
    return OOM if returncode == -signal.SIGKILL and oom_killed is None else ERROR


def describe_exit(returncode: int | None, who: str) -> str:
    """One line on how a worker process (``who``) ended."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        why = " (kill -9, or the system's out-of-memory killer)" if -returncode == signal.SIGKILL else ""
        return f"{who} died from signal {name}{why}"
    return f"{who} died with exit code {returncode!r}"


def message(exc: BaseException) -> str:
    """``Type: text`` of an exception, cut at 2000 characters."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."
