"""Process helpers shared by the tests that kill collector processes."""

from __future__ import annotations

import psutil

__all__ = ["gone"]


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no such process, or a zombie waiting for its parent."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
