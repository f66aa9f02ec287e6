"""Reading schema-v1 datasets: one file eagerly, several lazily with dask."""

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
from collector import schema
from collector.errors import SchemaError

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
        When a path or pattern matches no file.
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
        elif not Path(text).is_file() and published.is_name(text):
            files.append(published.resolve(text))  # a published dataset's short name
        else:
            if not Path(text).is_file():
                raise FileNotFoundError(f"no such dataset file: {text!r}")
            files.append(Path(text))
    return files


def open_dataset(paths: PathLike | Sequence[PathLike], *, chunks: Any = None) -> xr.Dataset:
    """Open one or several schema-v1 netCDF files as one validated Dataset.

    Parameters
    ----------
    paths
        A file, a glob pattern (``runs/*.nc``), the short name of a published
        dataset (``"mps-m3max-study"``; ``python -m analysis datasets`` lists
        them) or a list of these.
    chunks
        One file: ``None`` (default) reads it eagerly; any other value opens
        it lazily with dask. Several files are always opened lazily with
        :func:`xarray.open_mfdataset` (one chunk per file unless ``chunks``
        says otherwise) and combined along their coordinates.

    Returns
    -------
    xarray.Dataset
        The schema-v1 dataset. Cells that no file covers are ``not_run``.
        When the files disagree on a global attr, it holds their values
        joined by `` | `` (``sweep``: a JSON list; ``simulated``: 1 if any is).

    Raises
    ------
    FileNotFoundError
        A path or pattern matches no file.
    SchemaError
        A file is not schema v1 (or newer), or two files hold the same cell.
    """
    files = expand_paths(paths)
    if len(files) == 1:
        return schema.load(files[0], chunks=chunks)
    # each file lazily through schema.load: checked, upgraded to the current schema, coordinates normalised
    parts = [schema.load(f, chunks=chunks if chunks is not None else {}) for f in files]
    try:
        ds = xr.merge(parts, compat="no_conflicts", join="outer", combine_attrs=_combine_attrs)
    except ValueError as exc:
        raise SchemaError(f"cannot combine {[str(f) for f in files]!r} along their coordinates: {exc}") from None
    # one consistent chunking for every variable (files' blocks differ after the outer join): a model per chunk
    ds = schema.normalize(_restore_fills(ds)).chunk(chunks if isinstance(chunks, dict) and chunks else {"model": 1})
    return schema.validate(ds, check_values=False)


def _restore_fills(ds: xr.Dataset) -> xr.Dataset:
    """Cells no file covers came back as NaN: give them their schema fill and dtype."""
    for name, spec in schema.VARIABLES.items():
        if name in ds.data_vars and np.dtype(ds[name].dtype) != np.dtype(spec.dtype) and spec.dtype[0] in "iu":
            attrs = ds[name].attrs
            ds[name] = ds[name].fillna(spec.fill).astype(spec.dtype)
            ds[name].attrs.update(attrs)
    return ds


def _combine_attrs(variable_attrs: list[dict[str, Any]], context: Any = None) -> dict[str, Any]:
    if not variable_attrs:
        return {}
    if "schema_version" not in variable_attrs[0]:  # a variable's attrs: keep the first
        return dict(variable_attrs[0])
    merged: dict[str, Any] = {}
    for key in variable_attrs[0]:
        values = [a.get(key) for a in variable_attrs]
        unique = list(dict.fromkeys(str(v) for v in values))
        if len(unique) == 1:
            merged[key] = variable_attrs[0][key]
        elif key == "simulated":
            merged[key] = int(max(int(v) for v in values if v is not None))
        elif key == "sweep":
            merged[key] = json.dumps([json.loads(u) for u in unique])
        else:
            merged[key] = " | ".join(unique)
    merged["schema_version"] = schema.SCHEMA_VERSION
    return merged
