"""How a failed run is classified: one place for ``error``, ``oom`` and ``timeout``.

A run fails inside its worker (an exception: :func:`classify_exception`), or
its worker dies or hangs (:func:`classify_exit`, and :data:`TIMEOUT` when the
sweep kills a worker that ran past the run's limit). Torch-free: torch's
out-of-memory exceptions are recognised by name and message.
"""

from __future__ import annotations

import signal

__all__ = ["ERROR", "OOM", "TIMEOUT", "classify_exception", "classify_exit", "describe_exit", "message"]

ERROR = "error"
OOM = "oom"
TIMEOUT = "timeout"

_MAX_MESSAGE = 2000


def classify_exception(exc: BaseException) -> str:
    """``oom`` for out-of-memory exceptions (MemoryError, torch's OutOfMemoryError, "out of memory" messages), else ``error``."""
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
        return OOM
    return ERROR


def classify_exit(returncode: int | None) -> str:
    """Status of a run whose worker died with ``returncode``: ``oom`` for SIGKILL (what the system's
    out-of-memory killer sends), else ``error``."""
    return OOM if returncode == -signal.SIGKILL else ERROR


def describe_exit(returncode: int | None, who: str) -> str:
    """One line on how a worker process (``who``) ended."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        why = " (the system's out-of-memory killer sends it)" if -returncode == signal.SIGKILL else ""
        return f"{who} died from signal {name}{why}"
    return f"{who} died with exit code {returncode!r}"


def message(exc: BaseException) -> str:
    """``Type: text`` of an exception, cut at 2000 characters."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."
