"""One identity check for the inputs of a command that combines files (merge, import-study).

The same runs given twice are not new measurements: appended as trials they
hide the "fewer than 3 trials" warning and narrow every stated ``mde`` (false
precision); merged as cells they are a conflict with itself. Two inputs are
the same when

* they name the same file: the same path, or the same inode (a hard or
  symbolic link), or the same bytes (a copy) -- :func:`check_distinct_files`;
* they hold the same runs: a run with the same start time (``started_at``,
  microseconds) and bit-identical latency in both, or, for data without start times (imported summaries,
  published tables), every ok run of one found in the other with the same
  cell and bit-identical latency (a copy, or a merge that contains it) --
  :func:`check_distinct_runs`.

Either raises :class:`~collector.shared.errors.ConfigError` naming both inputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector.shared.errors import ConfigError

__all__ = ["check_distinct_files", "check_distinct_runs"]

_AGAIN = "its runs would be counted twice (as new trials or a conflict with themselves); give each collection once"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_distinct_files(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse a file given twice: the same path, the same inode (a link) or the same bytes (a copy).

    Missing files are left to the reader (it names them).
    """
    seen: dict[tuple[Any, ...], str] = {}
    for p in paths:
        path = Path(p)
        try:
            st = path.stat()
        except OSError:
            continue
        keys: list[tuple[Any, ...]] = [("inode", st.st_dev, st.st_ino)]
        if path.is_file():
            keys.append(("bytes", st.st_size, _digest(path)))
        for key in keys:
            if key in seen:
                how = "the same file as" if key[0] == "inode" else "a byte-identical copy of"
                raise ConfigError(f"input {str(p)!r} is {how} {seen[key]!r}: {_AGAIN}")
        for key in keys:
            seen[key] = str(p)


def _ok(ds: xr.Dataset) -> np.ndarray:
    return np.asarray(ds["status"].values) == 0


def _timestamps(ds: xr.Dataset) -> set[tuple[int, str]]:
    """(start time in microseconds, latency bits) of every ok run with a start time."""
    if "started_at" not in ds.data_vars:
        return set()
    status = ds["status"]
    t = np.asarray(ds["started_at"].transpose(*status.dims).values).astype("datetime64[us]")
    lat = np.asarray(ds["latency"].transpose(*status.dims).values, dtype=float)
    ok = (np.asarray(status.values) == 0) & ~np.isnat(t)
    return set(zip(t[ok].astype(np.int64).tolist(), (x.hex() for x in lat[ok].tolist())))


def _cells(ds: xr.Dataset) -> set[tuple[Any, ...]]:
    """(cell labels but the trial, latency bits) of every ok run."""
    status = ds["status"]
    dims = [d for d in status.dims if d != "trial"]
    lat = ds["latency"].transpose(*status.dims).values
    ok = (np.asarray(status.values) == 0) & np.isfinite(lat)
    out: set[tuple[Any, ...]] = set()
    for idx in zip(*np.nonzero(ok)):
        labels = tuple(ds[d].values[i].item() if d in ds.coords else int(i) for d, i in zip(status.dims, idx)
                       if d in dims)
        out.add((*labels, float(lat[idx]).hex()))
    return out


def check_distinct_runs(datasets: Sequence[xr.Dataset], names: Sequence[str]) -> None:
    """Refuse two inputs holding the same runs (start time and latency; without start times, one contained in another)."""
    stamps = [_timestamps(ds) for ds in datasets]
    for j in range(len(datasets)):
        for i in range(j):
            shared = stamps[i] & stamps[j]
            if shared:
                when = np.datetime64(min(shared)[0], "us")
                raise ConfigError(f"inputs {names[i]!r} and {names[j]!r} hold the same run(s) ({len(shared)} with the "
                                  f"same start time and latency, e.g. started {when}Z): {_AGAIN}")
    untimed = [k for k, s in enumerate(stamps) if not s]
    cells = {k: _cells(datasets[k]) for k in untimed}
    for j in untimed:
        for i in untimed:
            if i < j and cells[i] and cells[j] and (cells[i] <= cells[j] or cells[j] <= cells[i]):
                raise ConfigError(f"inputs {names[i]!r} and {names[j]!r} hold the same run(s) (every ok run of one is "
                                  f"in the other, same cell and latency): {_AGAIN}")
