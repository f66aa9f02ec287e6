"""Limits on resampling settings: a bootstrap too large for this machine is refused up front, with the reason.

A bootstrap holds ``n_boot`` resamples of a series (or of every series) at
once; ``n_boot=100_000_000`` on a small dataset asks for hundreds of GiB and
would be ended by the system's out-of-memory killer after minutes.
:func:`check_bootstrap` refuses more than :data:`MAX_BOOT` resamples, and any
bootstrap whose arrays would take more than half the memory available now.
"""

from __future__ import annotations

import numbers
import os

from analysis.errors import InputError

__all__ = ["MAX_BOOT", "available_memory", "bootstrap_bytes", "check_bootstrap"]

#: Most bootstrap resamples accepted: far beyond what a 95% interval needs (a few thousand).
MAX_BOOT = 1_000_000
#: Share of the available memory a bootstrap may take.
_SHARE = 0.5
#: Arrays of one resample size alive at once (indices, the resampled values, their reordered copy, sort scratch).
_COPIES = 4


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (psutil, else /proc/meminfo), None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def bootstrap_bytes(n_boot: int, values_per_resample: int) -> int:
    """Estimated peak bytes of a bootstrap of ``n_boot`` resamples of ``values_per_resample`` float64 values."""
    return _COPIES * 8 * int(n_boot) * max(int(values_per_resample), 1)


def check_bootstrap(n_boot: object, values_per_resample: int, fn: str, what: str = "") -> None:
    """Refuse a bootstrap that would not fit: more than :data:`MAX_BOOT` resamples, or arrays over half the free memory.

    Parameters
    ----------
    n_boot
        The resamples asked for (already checked to be an integer >= 0).
    values_per_resample
        Values held per resample (e.g. budgets x trials of the largest series).
    fn
        The public function, for the message.
    what
        What one resample holds, in words, for the message (e.g. ``"16 budgets x 5 trials"``).

    Raises
    ------
    InputError
        Naming ``n_boot``, the memory it would need and what is available.
    """
    if not isinstance(n_boot, numbers.Integral) or n_boot <= 0:
        return
    if int(n_boot) > MAX_BOOT:
        raise InputError(f"{fn}(): n_boot must be <= {MAX_BOOT}, got {n_boot!r}; a 95% interval needs a few thousand "
                         "resamples at most")
    need = bootstrap_bytes(int(n_boot), values_per_resample)
    avail = available_memory()
    if avail is not None and need > _SHARE * avail:
        held = what or f"{values_per_resample} values"
        raise InputError(f"{fn}(): n_boot={n_boot!r} resamples of {held} need about {need / 2**30:.1f} GiB of memory, "
                         f"more than half of the {avail / 2**30:.1f} GiB available; use fewer resamples")
