"""Where the collector writes: output paths checked up front, write failures named.

:func:`check_output` is called before a sweep starts or an export begins: a
path without a file name (``.``, ``/``), a folder, or a folder that does not
take new files (read-only, not ours, full) is refused before any model is
loaded or any run made. :func:`write_error` turns what a write point caught
(an :class:`OSError`, SQLite's ``OperationalError``, the netCDF library's
``RuntimeError``, which lose the reason) into an
:class:`~collector.errors.OutputError` naming the path and the cause: ``disk
full``, ``file size limit reached`` or ``not writable``. Standard library only.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from collector.errors import OutputError

__all__ = ["DISK_FULL", "NOT_WRITABLE", "SIZE_LIMIT", "cause", "check_output", "free_bytes", "write_error"]

DISK_FULL = "disk full"
NOT_WRITABLE = "not writable"
SIZE_LIMIT = "file size limit reached"

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
#: Bytes the probe of :func:`check_output` writes: a full disk refuses them.
_PROBE = 4096


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use in ``folder``'s filesystem (None when unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return int(st.f_bavail) * int(st.f_frsize)


def _size_limit() -> int | None:
    """This process's file size limit (RLIMIT_FSIZE) in bytes, None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def cause(exc: BaseException, folder: str | os.PathLike[str] | None = None, needed: int = 0) -> str:
    """Why a write failed, in a few words: :data:`DISK_FULL`, :data:`SIZE_LIMIT`, :data:`NOT_WRITABLE`, or the OS's words.

    SQLite and the netCDF library do not keep the OS's reason (a full disk
    can surface as "Permission denied" or "HDF error"), so when ``folder`` is
    given its free space (less than ``needed`` bytes, or nearly none) and the
    process's file size limit are looked at before the error's own words.
    """
    code = getattr(exc, "errno", None)
    text = str(getattr(exc, "strerror", None) or exc)
    if code in _FULL or "disk is full" in text or "No space left" in text:
        return DISK_FULL
    if code == errno.EFBIG or "too large" in text.lower():
        return SIZE_LIMIT
    if folder is not None and code not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        free = free_bytes(folder)
        if free is not None and free < max(needed, 2 * _PROBE):
            return DISK_FULL
        limit = _size_limit()
        if limit is not None and code not in _DENIED and (needed == 0 or limit <= needed):
            return SIZE_LIMIT
    if code in _DENIED or "readonly" in text or "read-only" in text.lower():
        return NOT_WRITABLE
    return text


def write_error(path: str | os.PathLike[str], exc: BaseException, what: str = "output", *, needed: int = 0,
                hint: str = "") -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``: ``cannot write {what} 'path': {cause}``."""
    p = Path(path)
    why = cause(exc, p.parent if str(p.parent) else ".", needed)
    if why == DISK_FULL:
        free = free_bytes(p.parent)
        room = "" if free is None else f"{free / 2**20:.1f} MiB" if free >= 2**20 else f"{free // 1024} KiB"
        why += f" ({room} free in {str(p.parent)!r})" if room else ""
    elif why == NOT_WRITABLE:
        why += f" (folder {str(p.parent)!r})"
    return OutputError(f"cannot write {what} {str(p)!r}: {why}" + (f"; {hint}" if hint else ""))


def _existing_folder(p: Path) -> Path:
    """``p`` or its nearest existing ancestor (the folder a write would create the rest in)."""
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def check_output(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Check that a file can be written at ``path``, before any work is done; returns it as a Path.

    The path must name a file (not ``.``, ``/`` or an existing folder), and
    its folder (or, when the folder does not exist yet, the nearest existing
    one above it) must take a new file of a few KiB: a probe file is written
    and removed there, so a read-only or full filesystem is found now, not
    after the sweep.

    Raises
    ------
    OutputError
        Naming the path and the cause (``has no file name``, ``is a folder``, ``not writable``, ``disk full``).
    """
    raw = os.fspath(path)
    p = Path(raw)
    if not str(raw).strip() or p.name in ("", ".", "..") or raw.endswith(("/", os.sep)):
        raise OutputError(f"{what} {str(raw)!r} has no file name; give a file path such as 'runs/sweep.nc'")
    if p.is_dir():
        raise OutputError(f"{what} {str(raw)!r} is a folder; give a file path such as {str(p / 'sweep.nc')!r}")
    folder = _existing_folder(p.parent if str(p.parent) else Path("."))
    if not folder.is_dir():
        raise OutputError(f"cannot write {what} {str(raw)!r}: {str(folder)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(raw)!r}: {_probe_cause(exc, folder)} (folder {str(folder)!r})") \
            from None
    try:
        try:
            os.write(fd, b"\0" * _PROBE)
        except OSError as exc:
            raise OutputError(f"cannot write {what} {str(raw)!r}: {_probe_cause(exc, folder)} "
                              f"(folder {str(folder)!r})") from None
    finally:
        os.close(fd)
        Path(probe).unlink(missing_ok=True)
    return p


def _probe_cause(exc: OSError, folder: Path) -> str:
    why = cause(exc, folder)
    if why not in (DISK_FULL, SIZE_LIMIT) and exc.errno in (errno.ENOENT, errno.ENOTDIR) + _DENIED:
        return NOT_WRITABLE  # e.g. /proc: it exists but takes no new files
    return why
