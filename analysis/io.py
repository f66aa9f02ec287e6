"""Reading datasets (docs/schema.md; files of an earlier schema version are upgraded): one file eagerly,
several lazily with dask."""

from __future__ import annotations

import glob as _glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis import published
from analysis.core import stacked
from collector.dataset import combine, schema
from collector.dataset.storage import input_problem
from collector.shared.errors import SchemaError

__all__ = ["open_dataset", "expand_paths"]

PathLike = str | os.PathLike[str]


def expand_paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Turn a path, a glob pattern, a published dataset's short name or a list of them into existing files.

    Files matching a pattern are sorted. A name without a folder part that is
    no file here is looked up among the published datasets
    (:func:`analysis.published.resolve`).

    Raises
    ------
    FileNotFoundError
        When a path or pattern matches no file, or a path is a folder, a FIFO,
        a device or a symbolic link loop (the message says which).
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise FileNotFoundError("no dataset paths given")
    files: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if _glob.has_magic(text):
            matches = sorted(_glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"pattern {text!r} matches no file")
            files.extend(Path(m) for m in matches)
        elif (problem := input_problem(text, "dataset")) is not None:
            raise FileNotFoundError(problem)  # a folder, a FIFO, a link loop: said as such, not "no such file"
        elif not Path(text).is_file() and published.is_name(text):
            files.append(published.resolve(text))  # a published dataset's short name
        else:
            if not Path(text).is_file():
                raise FileNotFoundError(f"no such dataset file: {text!r}")
            files.append(Path(text))
    return files


def open_dataset(paths: PathLike | Sequence[PathLike], *, chunks: Any = None) -> xr.Dataset:
    """Open one or several netCDF dataset files (docs/schema.md) as one validated Dataset.

    Parameters
    ----------
    paths
        A file, a glob pattern (``runs/*.nc``), the short name of a published
        dataset (``"mps-m3max-study"``; ``python -m analysis datasets`` lists
        them) or a list of these.
    chunks
        One file: ``None`` (default) reads it eagerly; any other value opens
        it lazily with dask. Several files are each read, checked and closed
        in turn (a corrupt or invalid file is named at once and no file stays
        open), then combined lazily with dask (one chunk per model unless
        ``chunks`` says otherwise).

    Returns
    -------
    xarray.Dataset
        The schema dataset. Several files are combined by the rules of
        :mod:`collector.dataset.combine`: files of one origin (host and protocol)
        along their coordinates, cells that no file covers ``not_run``; files
        of different origins (another host, timing, engine, warm-up,
        isolation, order, versions, or pretrained vs random weights) side by
        side along a dim ``origin`` whose coordinates hold each
        origin's settings; an extra dim some files lack (``experiment``) gets
        the label ``"none"`` in them. Global attrs the files disagree on are
        joined by `` | `` (``sweep``: a JSON list; ``simulated``: 1 if any
        is; an origin setting: ``"per origin"``).

        A combined dataset holds what was measured. Where every combination of
        the combined labels was measured (one sweep split into files, or the
        same grid on two hosts) it is that cube, with ``origin`` as its leading
        dim. Otherwise (``datasets/*.nc``: 29 measured series among 2520
        combinations of origin, experiment, model, device, cache and prompt)
        the measured series are stacked on one dim ``series``, a MultiIndex
        whose levels are ``origin`` and the series dims, with only the series
        that have an ok run, every variable over ``(series, budget, trial)``,
        the per-origin settings and model coordinates as coordinates on
        ``series``, and ``step_time`` by run over ``(step_run, step)``
        (:mod:`analysis.core.stacked`; ``ds.sel(device="mps")`` selects on a
        level). Every analysis takes either form.

    Raises
    ------
    FileNotFoundError
        A path or pattern matches no file.
    SchemaError
        A file is unreadable (corrupt, truncated), not of a schema this
        package reads, or two files of one origin hold the same cell; the
        message names the file(s).
    """
    files = expand_paths(paths)
    if len(files) == 1:
        return schema.load(files[0], chunks=chunks)
    # each file read whole and closed (a lazily opened file would fail, unnamed, inside a later computation)
    parts = [schema.load(f) for f in files]
    names = [str(f) for f in files]
    # first without the per-step times: if the combination is sparse, they are read from the files by run
    light = all(combine.ORIGIN_DIM not in p.dims for p in parts) and any("step_time" in p for p in parts)
    ds = _combine([p.drop_vars(["step_time", schema.STEP_DIM], errors="ignore") for p in parts] if light else parts,
                  names, chunks, lazy=not light)  # (without per-step times: small, numpy is quicker)
    if stacked.unmeasured_series(ds) == 0:  # the files' outer product is what they measured: the cube
        return _combine(parts, names, chunks) if light else ds
    # else the measured series only (the cube of every file's labels was 1100x the files for datasets/*.nc)
    origin = _origin_of(ds, names)
    out = stacked.stack_measured(ds, [(p, origin[n]) for p, n in zip(parts, names) if "step_time" in p]
                                 if light else None)
    return out.chunk({stacked.SERIES: _SERIES_CHUNK, "budget": -1, "trial": -1})


#: Series per dask chunk of a combined dataset stacked on ``series``.
_SERIES_CHUNK = 16


def _origin_of(ds: xr.Dataset, names: list[str]) -> dict[str, str | None]:
    """The label of the origin each input file belongs to in the combined ``ds`` (None: one origin)."""
    if combine.ORIGIN_DIM not in ds.dims:
        return dict.fromkeys(names)
    out: dict[str, str | None] = {}
    for label, files in zip(ds[combine.ORIGIN_DIM].values.tolist(), ds["files"].values.tolist()):
        out.update(dict.fromkeys(json.loads(str(files)), str(label)))
    return out


def _combine(parts: list[xr.Dataset], names: list[str], chunks: Any, *, lazy: bool = True) -> xr.Dataset:
    """The files combined (:mod:`collector.dataset.combine`), normalised and validated; lazily (dask) or in numpy."""
    ds = combine.combine(parts, names, lazy=lazy,
                         hint="merge them with `python -m collector merge --as-trials` (repeated collections) "
                              "or `--resolve first|last`, or open them apart")
    # one consistent chunking for every variable (files' blocks differ after the outer join): a model per chunk
    if not (isinstance(chunks, dict) and chunks):  # a model (and an origin) per chunk, every other dim whole
        chunks = {d: 1 if d in ("model", combine.ORIGIN_DIM) else -1 for d in ds.dims}
    ds = schema.normalize(_restore_fills(ds))
    ds = ds.chunk(chunks) if lazy else ds
    try:
        return schema.validate(ds, check_values=False)
    except SchemaError as exc:
        raise SchemaError(f"combining {names!r}: {exc}") from None


def _restore_fills(ds: xr.Dataset) -> xr.Dataset:
    """Cells no file covers came back as NaN: give them their schema fill and dtype."""
    for name, spec in schema.VARIABLES.items():
        if name in ds.data_vars and np.dtype(ds[name].dtype) != np.dtype(spec.dtype) and spec.dtype[0] in "iu":
            attrs = ds[name].attrs
            ds[name] = ds[name].fillna(spec.fill).astype(spec.dtype)
            ds[name].attrs.update(attrs)
    return ds
