"""The sweep journal: an SQLite file (WAL mode) beside the output.

It holds the spec, the environment, the model facts and one row per finished
run. Each row is committed (``synchronous=FULL``: on disk, not just in the OS
cache) before the next run starts, so a crash, ``kill -9`` or power cut loses
at most the run in flight. A unique key on the sweep coordinates (one column
per factor of :mod:`collector.shared.factors`) makes a run impossible to
record twice. One process at a time may extend a journal (an exclusive
``flock`` on ``JOURNAL.lock``, which holds the owner's process id,
released by the OS if the process dies, removed on a clean close); any number
may read it. :func:`remove_journal` deletes a journal only while nobody holds it.

Tables: ``meta(key, value)`` (JSON values: ``spec``, ``environment``,
``command``, ``created``, ``journal_version``, ``workers``),
``models(name, info)``, ``runs(id, <one column per sweep dim>, status,
record, worker, pid, planned, finished_at, host)`` (``id`` is the execution
sequence; one row per run: its latest attempt; ``host`` names the host that
measured a run sent to a dask worker, NULL for a run measured by the sweep's
own process), ``hosts(name, environment)`` (the environment of each such
host, as :func:`collector.measuring.environment.collect` gathered it there) and
``attempts`` (the columns of ``runs`` but ``host``, plus ``replaced_at``:
earlier attempts of runs that ``resume --retry-failed`` ran again; a journal
without this table has none).

Versions: 3 adds ``runs.host`` and ``hosts``; 2 has a column per factor of
:data:`collector.shared.factors.FACTORS` (no hosts: every run was measured by the
sweep's own process); 1 (before ``attn`` and ``cache_impl``) is still read
and resumed: a factor without a column has its ``v1_value`` in every row,
and its spec setting is that value too
(:meth:`collector.sweep.spec.SweepSpec.from_dict`).
"""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from collector.shared.errors import JournalError, OutputError
from collector.shared.factors import FACTORS, SWEEP_DIMS, RunKey
from collector.shared.record import RunRecord
from collector.sweep.failures import FAILED as _FAILED

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["JOURNAL_VERSION", "READABLE_VERSIONS", "RunKey", "JournalRow", "Journal", "journal_path", "output_beside",
           "remove_journal", "lock_owner"]

JOURNAL_VERSION = "3"
#: Journal versions this package reads (and resumes).
READABLE_VERSIONS: tuple[str, ...] = ("1", "2", "3")

_SQL_TYPE = {"str": "TEXT", "bool": "INTEGER", "int": "INTEGER"}
_KEY_COLUMNS = ", ".join(f"{f.name} {_SQL_TYPE[f.kind]} NOT NULL" for f in FACTORS)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_KEY_COLUMNS},
    status TEXT NOT NULL, record TEXT NOT NULL, worker INTEGER NOT NULL, pid INTEGER NOT NULL,
    planned INTEGER NOT NULL, finished_at TEXT NOT NULL, host TEXT,
    UNIQUE ({", ".join(SWEEP_DIMS)})
);
CREATE TABLE IF NOT EXISTS hosts (name TEXT PRIMARY KEY, environment TEXT NOT NULL);
"""
_ATTEMPTS_TEMPLATE = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER NOT NULL,
    {columns},
    status TEXT NOT NULL, record TEXT NOT NULL, worker INTEGER NOT NULL, pid INTEGER NOT NULL,
    planned INTEGER NOT NULL, finished_at TEXT NOT NULL, replaced_at TEXT NOT NULL
)
"""
_SCHEMA += _ATTEMPTS_TEMPLATE.format(columns=_KEY_COLUMNS) + ";"


class JournalRow(NamedTuple):
    """One finished run as stored: execution sequence ``id``, key, record and who ran it."""

    id: int
    key: RunKey
    record: RunRecord
    worker: int
    pid: int
    planned: int


def journal_path(output: str | os.PathLike[str]) -> Path:
    """The journal that belongs to an output file: ``runs/x.nc`` -> ``runs/x.journal``."""
    return Path(output).with_suffix(".journal")


def output_beside(journal: str | os.PathLike[str], output: str | None) -> Path | None:
    """The dataset that belongs to a journal: the sweep's ``output`` file name, in the journal's folder
    (so a sweep resumed or exported from another working directory writes where it started)."""
    if not output:
        return None
    return Path(journal).parent / Path(output).name


def lock_owner(path: str | os.PathLike[str]) -> int | None:
    """The process id written in a journal's lock file (``JOURNAL.lock``), or None."""
    try:
        text = Path(str(path) + ".lock").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _in_use(path: Path) -> JournalError:
    pid = lock_owner(path)
    who = f"pid {pid}" if pid is not None else "another process"
    return JournalError(f"journal {str(path)!r} in use by {who} (a running sweep); wait for it to end, or stop it")


_DATA_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _acquire_lock(path: Path) -> int | None:
    """The writer's lock of journal ``path``: an open descriptor of ``JOURNAL.lock`` holding an exclusive ``flock``.

    The lock file is removed by whoever holds it when done (:meth:`Journal.close`,
    :func:`remove_journal`), so a descriptor may end up locking a file that
    is no longer at that path; the lock counts only when the file locked is
    the one at the path (same inode), else it is taken again. Everything a
    writer checks or deletes, it does holding this lock: two processes never
    both believe they own a journal.

    Raises
    ------
    JournalError
        ``journal ... in use by pid N``: another process holds it.
    OSError
        The lock file cannot be made (a read-only folder, a full disk).
    """
    if fcntl is None:  # pragma: no cover - not on POSIX
        return None
    lock = str(path) + ".lock"
    for _ in range(1000):  # each turn: a holder removed the file we locked; it cannot go on for long
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _in_use(path) from None
        mine = os.fstat(fd)
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # the holder removed the file before we locked it: lock the one there now
    raise _in_use(path)


def _release_lock(path: Path, fd: int | None) -> None:
    """Remove the lock file (while still holding it) and release the lock."""
    if fd is None:  # pragma: no cover
        return
    try:
        Path(str(path) + ".lock").unlink(missing_ok=True)
    finally:
        os.close(fd)


def remove_journal(path: str | os.PathLike[str]) -> None:
    """Delete a journal with its ``-wal``, ``-shm`` and lock files, unless a live process holds its lock.

    Raises
    ------
    JournalError
        ``journal ... in use by pid N``: a sweep is extending it (nothing is deleted).
    """
    p = Path(path)
    if not any(Path(str(p) + s).exists() for s in (*_DATA_SUFFIXES, ".lock")):
        return
    fd = _acquire_lock(p)
    try:
        for suffix in _DATA_SUFFIXES:
            Path(str(p) + suffix).unlink(missing_ok=True)
    finally:
        _release_lock(p, fd)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


class Journal:
    """An open journal. Use :meth:`create` or :meth:`open`, then :meth:`close` (or ``with``)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd: int | None = None
        self._columns: tuple[str, ...] = SWEEP_DIMS
        self._has_hosts = True  # runs.host and the hosts table (version 3)

    # ------------------------------------------------------------------ open / create
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, spec: dict[str, Any], environment: dict[str, Any],
               command: str = "", replace: bool = False) -> "Journal":
        """Create a new journal and lock it for writing; the lock is taken first, then the path is checked.

        Parameters
        ----------
        replace
            Delete a journal already at ``path`` (``run --force``), holding its
            lock; else an existing journal is refused.

        Raises
        ------
        JournalError
            ``path`` already exists (and ``replace`` is False), or another
            process holds its lock (``in use by pid N``): nothing is touched.
        OutputError
            The journal cannot be written (a full or read-only disk); nothing is left behind.
        """
        from collector.dataset.storage import write_error

        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = _acquire_lock(p)  # before anything is checked or deleted: one creator at a time
        except OSError as exc:
            raise write_error(p, exc, "journal") from None
        conn: sqlite3.Connection | None = None
        try:
            if any(Path(str(p) + s).exists() for s in _DATA_SUFFIXES):
                if not replace:
                    raise JournalError(f"journal {str(p)!r} already exists; continue it with "
                                       f"'python -m collector resume {p}' or choose another output")
                for suffix in _DATA_SUFFIXES:
                    Path(str(p) + suffix).unlink(missing_ok=True)
            conn = cls._connect(p)
            self = cls(p, conn)
            self._hold(fd)
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            meta = {"journal_version": JOURNAL_VERSION, "spec": spec, "environment": environment,
                    "command": command, "created": _now(), "workers": 0}
            with self._tx():
                conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()])
        except BaseException as exc:  # a full or read-only disk, an interrupt: leave nothing behind (holding the lock)
            if conn is not None:
                conn.close()
            if not isinstance(exc, JournalError):
                for suffix in _DATA_SUFFIXES:
                    Path(str(p) + suffix).unlink(missing_ok=True)
            _release_lock(p, fd)
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise write_error(p, exc, "journal") from None
            raise
        return self

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, write: bool = False) -> "Journal":
        """Open an existing journal (``write=True`` also takes the writer's lock).

        Raises
        ------
        JournalError
            Missing file, not a journal, a newer journal version, or locked by another process.
        """
        from collector.dataset.storage import input_problem

        p = Path(path)
        problem = input_problem(p, "journal")
        if problem is not None:
            raise JournalError(problem)  # a folder, a FIFO, a link loop: said as such
        if not p.is_file():
            raise JournalError(f"no journal at {str(p)!r}")
        try:
            conn = cls._connect(p)
            version = conn.execute("SELECT value FROM meta WHERE key = 'journal_version'").fetchone()
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            keys = {row[0] for row in conn.execute("SELECT key FROM meta")}
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "no such" not in str(exc):
                # e.g. its -shm file cannot be made: a full disk, a read-only folder
                from collector.dataset.storage import READ_ONLY, cause

                why = cause(exc, p.parent)
                hint = ("; SQLite needs to write beside a journal even to read it: copy it (with its -wal file, if "
                        "any) to a writable folder and resume or export it there") if why == READ_ONLY else ""
                raise JournalError(f"cannot open journal {str(p)!r}: {why}" + (
                    f" (folder {str(p.parent)!r})" if why == READ_ONLY else "") + hint) from None
            raise JournalError(f"{str(p)!r} is not a sweep journal ({exc})") from None
        try:
            found = None if version is None else json.loads(version[0])
        except (ValueError, TypeError):
            found = version[0]
        if found not in READABLE_VERSIONS:
            conn.close()
            raise JournalError(f"journal {str(p)!r} has version {found!r}; this package reads "
                               f"{' or '.join(map(repr, READABLE_VERSIONS))}")
        required = {"id", "status", "record", "worker", "pid", "planned",
                    *(f.name for f in FACTORS if f.v1_value is None)}
        missing = sorted(required - have) + sorted({"spec", "environment", "workers"} - keys)
        if missing:
            conn.close()
            raise JournalError(f"journal {str(p)!r} is damaged: it lacks {', '.join(map(repr, missing))} "
                               "(changed by hand, or not written by this package)")
        self = cls(p, conn)
        self._columns = tuple(d for d in SWEEP_DIMS if d in have)
        self._has_hosts = "host" in have and conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='hosts'").fetchone() is not None
        if write:
            try:
                self.lock()
            except BaseException:
                conn.close()  # a journal we may not write: no connection (and no -wal/-shm) left open
                raise
            columns = ", ".join(f"{f.name} {_SQL_TYPE[f.kind]} NOT NULL" for f in FACTORS if f.name in self._columns)
            try:  # journals written before attempts were kept
                conn.execute(_ATTEMPTS_TEMPLATE.format(columns=columns))
            except sqlite3.Error as exc:
                self.close()
                raise JournalError(f"cannot extend journal {str(p)!r}: {exc}") from None
        return self

    def lock(self) -> None:
        """Take the exclusive writer's lock, or raise :class:`JournalError` if another process holds it."""
        if fcntl is None or self._lock_fd is not None:  # pragma: no cover
            return
        try:
            fd = _acquire_lock(self.path)
        except OSError as exc:  # a read-only folder: the lock file cannot be made
            from collector.dataset.storage import write_error

            raise write_error(str(self.path) + ".lock", exc, "journal lock") from None
        self._hold(fd)

    def _hold(self, fd: int | None) -> None:
        """Keep the lock ``fd`` as this journal's, with our process id in the file (for 'in use by pid N')."""
        if fd is None:  # pragma: no cover
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:  # a full disk: the lock file cannot take our process id
            _release_lock(self.path, fd)
            from collector.dataset.storage import write_error

            raise write_error(str(self.path) + ".lock", exc, "journal lock",
                              hint="make room on the disk, then try again") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Close the connection and release the lock."""
        try:
            self._conn.close()
        finally:
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                _release_lock(self.path, fd)

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    class _Tx:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception); SQLite's write failures become :class:`OutputError`."""

        def __init__(self, journal: "Journal") -> None:
            self.journal = journal
            self.conn = journal._conn

        def __enter__(self) -> None:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self.journal._write_failed(exc) from None

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            try:
                self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            except sqlite3.OperationalError as failed:
                if exc_type is None:
                    raise self.journal._write_failed(failed) from None
            if isinstance(exc, sqlite3.OperationalError):
                raise self.journal._write_failed(exc) from None

    def _tx(self) -> "Journal._Tx":
        return Journal._Tx(self)

    def _write_failed(self, exc: sqlite3.OperationalError) -> OutputError:
        """An :class:`OutputError` for a failed write (``database or disk is full``): nothing committed is lost."""
        from collector.dataset.storage import write_error

        try:
            n = self.count()
        except sqlite3.Error:  # pragma: no cover - the file cannot even be read
            n = None
        kept = "" if n is None else f"the {n} runs recorded so far are kept; "
        return write_error(self.path, exc, "journal",
                           hint=f"{kept}make room on the disk, then continue with 'python -m collector resume {self.path}'")

    def _damaged(self, where: str, exc: BaseException) -> JournalError:
        return JournalError(f"journal {str(self.path)!r} is damaged: {where} cannot be read "
                            f"({type(exc).__name__}: {exc}); it was changed by hand or not written by this package")

    def get(self, key: str, default: Any = None) -> Any:
        """A meta value (JSON-decoded).

        Raises
        ------
        JournalError
            The stored value is not JSON (names the journal and the key).
        """
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except (ValueError, TypeError) as exc:
            raise self._damaged(f"meta {key!r}", exc) from None

    def set(self, key: str, value: Any) -> None:
        """Store a meta value (committed)."""
        with self._tx():
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                               (key, json.dumps(value, sort_keys=True)))

    @property
    def spec(self) -> dict[str, Any]:
        """The sweep spec as stored (a :meth:`collector.sweep.spec.SweepSpec.to_dict`)."""
        spec = self.get("spec")
        if not isinstance(spec, dict):
            raise self._damaged("meta 'spec'", TypeError(f"expected a JSON object, got {spec!r:.80}"))
        return dict(spec)

    @property
    def environment(self) -> dict[str, Any]:
        """The environment the sweep started in."""
        env = self.get("environment")
        if not isinstance(env, dict):
            raise self._damaged("meta 'environment'", TypeError(f"expected a JSON object, got {env!r:.80}"))
        return dict(env)

    def next_worker(self) -> int:
        """A new worker number, unique within this journal across resumes (committed)."""
        with self._tx():
            n = int(json.loads(self._conn.execute("SELECT value FROM meta WHERE key='workers'").fetchone()[0]))
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'workers'", (json.dumps(n + 1),))
        return n

    def set_model_info(self, name: str, info: dict[str, Any]) -> None:
        """Store a model's facts (n_params, weights, architecture) once known."""
        with self._tx():
            self._conn.execute("INSERT OR REPLACE INTO models(name, info) VALUES (?, ?)",
                               (name, json.dumps(info, sort_keys=True)))

    def model_info(self) -> dict[str, dict[str, Any]]:
        """Facts of every model stored so far."""
        return self._objects("SELECT name, info FROM models", "models")

    def _objects(self, query: str, table: str) -> dict[str, dict[str, Any]]:
        """Rows ``(name, JSON object)`` of ``query`` as name -> object; a row that is not a JSON object is damage."""
        out: dict[str, dict[str, Any]] = {}
        for name, text in self._conn.execute(query):
            try:
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise TypeError(f"expected a JSON object, got {value!r:.80}")
            except (ValueError, TypeError) as exc:
                raise self._damaged(f"the {table} row of {name!r}", exc) from None
            out[str(name)] = value
        return out

    def set_host(self, name: str, environment: dict[str, Any]) -> None:
        """Store the environment of host ``name`` (where dask workers measured runs), once known (committed).

        Raises
        ------
        JournalError
            This journal (version 1 or 2) has no ``hosts`` table.
        """
        self._check_hosts(name)
        with self._tx():
            self._conn.execute("INSERT OR REPLACE INTO hosts(name, environment) VALUES (?, ?)",
                               (str(name), json.dumps(environment, sort_keys=True)))

    def hosts(self) -> dict[str, dict[str, Any]]:
        """The environment of every host stored with :meth:`set_host` (empty for a journal of one process's runs)."""
        if not self._has_hosts:
            return {}
        return self._objects("SELECT name, environment FROM hosts ORDER BY name", "hosts")

    def run_hosts(self) -> dict[int, str]:
        """The host of every run measured on a dask worker: execution sequence number (``id``) -> host name.

        Runs measured by the sweep's own process (every run of a local sweep) are not in it.
        """
        if not self._has_hosts:
            return {}
        return {int(i): str(h) for i, h in self._conn.execute("SELECT id, host FROM runs WHERE host IS NOT NULL")}

    def _check_hosts(self, host: str) -> None:
        if not self._has_hosts:
            raise JournalError(f"journal {str(self.path)!r} (version {self.get('journal_version')}) cannot record "
                               f"host {host!r}; hosts are kept from journal version 3 on (start a new sweep)")

    # ------------------------------------------------------------------ runs
    def _key(self, values: tuple[Any, ...]) -> RunKey:
        """A key from a row's key columns (factors without a column: their ``v1_value``)."""
        return RunKey.from_mapping(dict(zip(self._columns, values)))

    def add(self, key: RunKey, record: RunRecord, *, worker: int, pid: int, planned: int,
            replace_failed: bool = False, host: str | None = None) -> int:
        """Commit one finished run; returns its execution sequence number (``id``).

        With ``replace_failed``, a failed row of the same run (error, oom, timeout, truncated) moves to the
        ``attempts`` table in the same transaction and the new row takes its place. ``host``: the host
        whose dask worker measured the run (None: this process measured it).

        Raises
        ------
        JournalError
            When the run is already in the journal (it would be counted twice), a
            factor this (version 1) journal has no column for is not at its ``v1_value``,
            or a ``host`` is given to a journal without hosts (version 1 or 2).
        """
        if host is not None:
            self._check_hosts(host)
        for f in FACTORS:
            if f.name not in self._columns and getattr(key, f.name) != f.v1_value:
                raise JournalError(f"journal {str(self.path)!r} (version 1) cannot record {f.name}="
                                   f"{getattr(key, f.name)!r}; it only holds {f.name}={f.v1_value!r}")
        cols = ", ".join(self._columns)
        extra = ("host",) if host is not None else ()
        marks = ",".join("?" * (len(self._columns) + 6 + len(extra)))
        values = [int(v) if isinstance(v, bool) else v for v in (getattr(key, c) for c in self._columns)]
        where = " AND ".join(f"{c} = ?" for c in self._columns)
        try:
            with self._tx():
                if replace_failed:
                    keep = f"id, {cols}, status, record, worker, pid, planned, finished_at"
                    failed = f"FROM runs WHERE {where} AND status IN ({', '.join('?' * len(_FAILED))})"
                    self._conn.execute(f"INSERT INTO attempts({keep}, replaced_at) SELECT {keep}, ? {failed}",
                                       (_now(), *values, *_FAILED))
                    self._conn.execute(f"DELETE {failed}", (*values, *_FAILED))
                cur = self._conn.execute(
                    f"INSERT INTO runs({cols}, status, record, worker, pid, planned, finished_at"
                    f"{''.join(', ' + c for c in extra)}) VALUES ({marks})",
                    (*values, record.status, json.dumps(record.to_dict()), int(worker), int(pid), int(planned),
                     _now(), *([str(host)] if host is not None else [])),
                )
        except sqlite3.IntegrityError:
            raise JournalError(f"run {key._asdict()!r} is already in journal {str(self.path)!r}") from None
        return int(cur.lastrowid or 0)

    def done(self, *, failed: bool = True) -> builtins.set[RunKey]:  # builtins: Journal.set is a method
        """Keys of every run recorded so far (``failed=False``: of those that did not fail)."""
        out: builtins.set[RunKey] = builtins.set()
        cond = "" if failed else f" WHERE status NOT IN ({', '.join('?' * len(_FAILED))})"
        for row in self._conn.execute(f"SELECT {', '.join(self._columns)}, id FROM runs{cond}",
                                      () if failed else _FAILED):
            try:
                out.add(self._key(row[:-1]))
            except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
                raise self._damaged(f"run row id={row[-1]!r}", exc) from None
        return out

    def count(self) -> int:
        """Number of runs recorded."""
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def rows(self) -> Iterator[JournalRow]:
        """Every recorded run (its latest attempt), in execution order."""
        return self._rows("runs")

    def attempts(self) -> list[JournalRow]:
        """Earlier attempts of runs that ``resume --retry-failed`` ran again, oldest first (``id``: the
        execution sequence number the attempt had)."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='attempts'").fetchone() is None:
            return []
        return list(self._rows("attempts", order="replaced_at, id"))

    def _rows(self, table: str, order: str = "id") -> Iterator[JournalRow]:
        n = len(self._columns)
        cur = self._conn.execute(f"SELECT {', '.join(self._columns)}, id, record, worker, pid, planned "
                                 f"FROM {table} ORDER BY {order}")
        for row in cur:
            i, rec, w, pid, planned = row[n:]
            try:
                d = json.loads(rec)
                if not isinstance(d, dict):
                    raise TypeError(f"expected a JSON object, got {d!r:.80}")
                out = JournalRow(int(i), self._key(row[:n]), RunRecord.from_dict(d), int(w), int(pid), int(planned))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # ConfigError is a ValueError
                raise self._damaged(f"{'run' if table == 'runs' else 'attempt'} row id={i!r}", exc) from None
            yield out
