"""Where the collector writes: output paths checked up front, write failures named.

:func:`check_output` is called before a sweep starts or an export begins: a
path without a file name (``.``, ``/``), a folder, or a folder that does not
take new files (read-only, not ours, full) is refused before any model is
loaded or any run made; so is a path that would overwrite a sweep journal
(found by its SQLite header or by name: ``.journal``, its ``-wal``, ``-shm``
and ``.lock`` files) or one of the command's own inputs (:func:`check_not_precious`).
:func:`write_error` turns what a write point caught
(an :class:`OSError`, SQLite's ``OperationalError``, the netCDF library's
``RuntimeError``, which lose the reason) into an
:class:`~collector.shared.errors.OutputError` naming the path and the cause: ``disk
full``, ``file size limit reached`` or ``not writable``. Standard library only.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from collector.shared.errors import OutputError

__all__ = ["DISK_FULL", "NOT_WRITABLE", "SIZE_LIMIT", "cause", "check_not_precious", "check_output", "free_bytes",
           "input_problem", "is_journal", "read_only_fs", "READ_ONLY", "remove_stale_temps", "write_atomic", "write_error"]

DISK_FULL = "disk full"
NOT_WRITABLE = "not writable"
SIZE_LIMIT = "file size limit reached"
READ_ONLY = "not writable: a read-only file system"

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
#: Bytes the probe of :func:`check_output` writes: a full disk refuses them.
_PROBE = 4096
#: Free space under which a failed write is put down to a full disk.
_LOW = 2**20


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
    given its free space (under 1 MiB: call this before removing the partial
    file) and the process's file size limit (at most ``needed`` bytes, when
    given) are looked at before the error's own words.
    """
    code = getattr(exc, "errno", None)
    text = str(getattr(exc, "strerror", None) or exc)
    if code in _FULL or "disk is full" in text or "No space left" in text:
        return DISK_FULL
    if code == errno.EFBIG or "too large" in text.lower():
        return SIZE_LIMIT
    if code == errno.EROFS or (folder is not None and code is None and read_only_fs(folder)):
        return READ_ONLY  # unambiguous, unlike EACCES (which the netCDF library reports for a full disk)
    if folder is not None and code not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        free = free_bytes(folder)
        if free is not None and free < _LOW:  # looked at before the partial file is removed: nearly nothing left
            return DISK_FULL
        limit = _size_limit()
        if limit is not None and code not in _DENIED and (code is None or needed == 0 or limit <= needed):
            return SIZE_LIMIT
    if code in _DENIED or "readonly" in text or "read-only" in text.lower():
        return NOT_WRITABLE
    return text


def read_only_fs(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` (or its nearest existing parent) is on a file system mounted read-only."""
    p = Path(folder)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


def write_error(path: str | os.PathLike[str], exc: BaseException, what: str = "output", *, needed: int = 0,
                hint: str = "") -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``: ``cannot write {what} 'path': {cause}``."""
    p = Path(path)
    why = cause(exc, p.parent if str(p.parent) else ".", needed)
    if why == DISK_FULL:
        free = free_bytes(p.parent)
        room = "" if free is None else f"{free / 2**20:.1f} MiB" if free >= 2**20 else f"{free // 1024} KiB"
        why += f" ({room} free in {str(p.parent)!r})" if room else ""
    elif why in (NOT_WRITABLE, READ_ONLY):
        why += f" (folder {str(p.parent)!r})"
    return OutputError(f"cannot write {what} {str(p)!r}: {why}" + (f"; {hint}" if hint else ""))


def _existing_folder(p: Path) -> Path:
    """``p`` or its nearest existing ancestor (the folder a write would create the rest in)."""
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


#: The first bytes of every SQLite database (a sweep journal).
SQLITE_HEADER = b"SQLite format 3\x00"
#: Suffixes of a journal's own files (``x.journal``, ``x.journal-wal``, ...).
_JOURNAL_SUFFIXES = (".journal", ".journal-wal", ".journal-shm", ".journal-journal", ".journal.lock")
#: Suffixes SQLite adds to a database's name for its side files.
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def is_journal(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an SQLite file (by its header: any name) or a sweep journal's, or one of their
    side files (``-wal``, ``-shm``, ``.lock``: by name)."""
    p = Path(path)
    if p.name.endswith(_JOURNAL_SUFFIXES):
        return True
    try:
        with open(p, "rb") as f:
            if f.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                return True
    except OSError:
        pass
    for suffix in _SIDE_SUFFIXES:  # the -wal/-shm of any SQLite file (an existing database of another name)
        if p.name.endswith(suffix) and len(p.name) > len(suffix):
            base = p.with_name(p.name[: -len(suffix)])
            if base.name.endswith(".journal") or (base.is_file() and is_journal(base)):
                return True
    return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_precious(path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = (),
                       what: str = "output") -> None:
    """Refuse an output path that would destroy data: a sweep journal or its side files (by content or name),
    or one of the command's own ``inputs`` (the same path or the same file). ``--force`` does not
    change this.

    Raises
    ------
    OutputError
        ``output 'x.journal' is a sweep journal ...`` or ``output 'a.nc' is also an input ...``.
    """
    p = Path(path)
    for src in inputs:
        q = Path(src)
        if os.path.abspath(q) == os.path.abspath(p) or _same_file(p, q):
            raise OutputError(f"{what} {str(p)!r} is also an input of this command; writing it would destroy the "
                              "input: choose another -o")
    if is_journal(p):
        raise OutputError(f"{what} {str(p)!r} is a sweep journal (or one of its -wal/-shm/.lock files); a dataset "
                          "never replaces one, not even with --force: choose another -o, such as a .nc file")


def check_output(path: str | os.PathLike[str], what: str = "output", *,
                 inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Check that a file can be written at ``path``, before any work is done; returns it as a Path.

    The path must name a file (not ``.``, ``/`` or an existing folder), must
    not be a sweep journal or one of ``inputs`` (:func:`check_not_precious`),
    and its folder (or, when the folder does not exist yet, the nearest existing
    one above it) must take a new file of a few KiB: a probe file is written
    and removed there, so a read-only or full filesystem is found now, not
    after the sweep.

    Raises
    ------
    OutputError
        Naming the path and the cause (``has no file name``, ``is a folder``, ``is a sweep journal``, ``is also an
        input``, ``not writable``, ``disk full``).
    """
    raw = os.fspath(path)
    p = Path(raw)
    example = {"figure": "figure.png", "CSV file": "runs.csv", "journal": "sweep.journal"}.get(what, "sweep.nc")
    if not str(raw).strip() or p.name in ("", ".", "..") or raw.endswith(("/", os.sep)):
        raise OutputError(f"{what} {str(raw)!r} has no file name; give a file path such as {'runs/' + example!r}")
    if p.is_dir():
        raise OutputError(f"{what} {str(raw)!r} is a folder; give a file path such as {str(p / example)!r}")
    check_not_precious(p, inputs, what)
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
    if why not in (DISK_FULL, SIZE_LIMIT, READ_ONLY) and exc.errno in (errno.ENOENT, errno.ENOTDIR) + _DENIED:
        return NOT_WRITABLE  # e.g. /proc: it exists but takes no new files
    return why


def _temp_pattern(target: Path) -> re.Pattern[str]:
    # collector.dataset.schema.save's temporary files: .NAME.PID-XXXXXXXX.tmp
    # (and .NAME.XXXXXXXX.tmp of earlier versions)
    return re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)-)?[A-Za-z0-9_]{{8}}\.tmp")


def temp_prefix(target: str | os.PathLike[str]) -> str:
    """The prefix of :func:`collector.dataset.schema.save`'s temporary file for ``target`` (it holds this
    process's id)."""
    return f".{Path(target).name}.{os.getpid()}-"


def remove_stale_temps(target: str | os.PathLike[str], *, legacy_age: float = 3600.0) -> list[Path]:
    """Delete temporary files that an interrupted save of ``target`` left beside it (a ``kill -9`` or a power
    cut during the final write); returns those removed.

    Only this package's own pattern for this very target is touched
    (``.NAME.PID-XXXXXXXX.tmp``), and only when process PID is gone, so a save
    running now (an ``export`` beside a ``resume``) keeps its file. A file of
    the older pattern without a process id (``.NAME.XXXXXXXX.tmp``) is removed
    once it has not changed for ``legacy_age`` seconds.
    """
    t = Path(target)
    folder = t.parent if str(t.parent) else Path(".")
    pattern = _temp_pattern(t)
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        f = folder / name
        try:
            if m.group(1) is not None:
                if _alive(int(m.group(1))):
                    continue
            elif time.time() - f.stat().st_mtime < legacy_age:
                continue
            if f.is_file() and not f.is_symlink():
                f.unlink()
                removed.append(f)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def write_atomic(path: str | os.PathLike[str], data: bytes | str, what: str = "file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in its folder and a rename: all of it or nothing.

    A reader never sees a half-written file and a failed write leaves none
    (the old file, if any, stays as it was).

    Raises
    ------
    OutputError
        ``cannot write {what} 'path': {cause}`` (a full disk, a file size
        limit, a folder that is not writable); the temporary file is removed.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        error = write_error(target, exc, what, needed=len(payload))  # while the partial file still takes the room
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise error from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return target


def input_problem(path: str | os.PathLike[str], what: str = "file") -> str | None:
    """Why ``path`` is not a regular file to read, in words naming it, or None when it is one (or does not exist).

    ``what`` names the role (``"dataset file"``). A folder, a FIFO, a device or
    a socket is said to be one (a FIFO is never opened: reading it would wait
    for a writer), a symbolic link loop or a broken link as such, so that none
    is reported as a missing file.
    """
    import stat as _stat

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            return f"{what} {str(p)!r} is a broken symbolic link (to {os.readlink(p)!r}, which does not exist)"
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{what} {str(p)!r} is a symbolic link loop (it points back to itself)"
        return f"{what} {str(p)!r} cannot be reached: {exc.strerror or exc}"
    kinds = ((_stat.S_ISDIR, "a folder"), (_stat.S_ISFIFO, "a FIFO (named pipe)"), (_stat.S_ISCHR, "a device"),
             (_stat.S_ISBLK, "a device"), (_stat.S_ISSOCK, "a socket"))
    for test, kind in kinds:
        if test(st.st_mode):
            return f"{what} {str(p)!r} is {kind}, not a regular file"
    return None
