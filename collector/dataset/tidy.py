"""Tidy tables for pandas and R: one row per run (``python -m collector export --csv``).

:func:`to_dataframe` flattens a schema dataset into a :class:`pandas.DataFrame`
with one row per run (every cell whose status is not ``not_run`` /
``not_applicable``): a column per sweep dim and per extra leading dim (e.g. the
``experiment`` of the study dataset), the model's coordinates (``n_params``,
``weights``, ``architecture``), ``status`` as its name, and one column per
per-run variable. A variable with one more dim than a run (``request_latency``
along ``stat`` in imported harness files) gives one column per value
(``request_latency_mean``, ...). Per-step times (``step_time``) are left out:
``ds.step_time.to_dataframe()`` gives them in long form. Pure pandas/xarray.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from collector.dataset import schema
from collector.shared.safetext import visible

__all__ = ["to_dataframe", "write_csv", "spreadsheet_safe", "FORMULA_START"]

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection): such a text cell
#: gets a leading ``'``. Tab and CR are escaped first (as every control character), so they never lead a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_SKIP_STATUS = ("not_run", "not_applicable")


def to_dataframe(ds: xr.Dataset, *, all_cells: bool = False) -> pd.DataFrame:
    """One row per run of a schema dataset.

    Parameters
    ----------
    ds
        A schema dataset (eager or lazy; it is loaded).
    all_cells
        Also keep cells that were never run (``not_run``, ``not_applicable``).

    Returns
    -------
    pandas.DataFrame
        Columns: the run dims (every dim of ``status``, in order), ``n_params``,
        ``weights``, ``architecture``, in a dataset combining several origins
        each origin's settings (``host``, ``timing``, ..., ``files``), ``status`` (name), then each variable
        over the run dims (``latency``, ``prefill_time``, ..., ``order``,
        ``worker``, extra variables such as ``n_runs``) and, for a variable
        with one more dim ``d``, a column ``<name>_<value>`` per value of
        ``d``. Rows in cell order, the sweep dims' coordinates sorted (as in a written
        file), index 0..n-1.
    """
    if "status" not in ds.data_vars:
        raise schema.SchemaError("variable 'status' is missing; expected a schema dataset")
    run_dims = tuple(ds["status"].dims)
    ds = ds.sortby([d for d in run_dims if d in schema.SWEEP_DIMS and d in ds.coords])  # rows in sorted cell order
    columns: dict[str, np.ndarray] = {}
    grids = np.meshgrid(*[ds[d].values if d in ds.coords else np.arange(ds.sizes[d]) for d in run_dims],
                        indexing="ij")
    for d, g in zip(run_dims, grids):
        columns[str(d)] = g.ravel()
    # the model's coordinates (dims model, or origin x model in a combined dataset), then each origin's settings
    positions = np.meshgrid(*[np.arange(ds.sizes[d]) for d in run_dims], indexing="ij")
    per_origin = [str(c) for c in ds.coords if ds[c].dims == (schema.ORIGIN_DIM,) and c != schema.ORIGIN_DIM]
    for name in (*schema.MODEL_COORDS, *per_origin):
        if name in ds.coords and ds[name].dims and set(ds[name].dims) <= set(run_dims):
            index = tuple(positions[run_dims.index(d)].ravel() for d in ds[name].dims)
            columns[name] = np.asarray(ds[name].values)[index]
    status = np.asarray(ds["status"].values).ravel()
    columns["status"] = np.array([schema.STATUS_NAMES.get(int(s), str(int(s))) for s in status], dtype=object)
    for name, var in ((str(k), v) for k, v in ds.data_vars.items()):
        if name == "status":
            continue
        dims = tuple(var.dims)
        if set(dims) == set(run_dims) and len(dims) == len(run_dims):
            columns[str(name)] = np.asarray(var.transpose(*run_dims).values).ravel()
        elif len(dims) == len(run_dims) + 1 and set(run_dims) <= set(dims) and schema.STEP_DIM not in dims:
            (extra,) = [d for d in dims if d not in run_dims]
            labels = ds[extra].values if extra in ds.coords else np.arange(ds.sizes[extra])
            values = np.asarray(var.transpose(extra, *run_dims).values)
            for label, v in zip(labels.tolist(), values):
                columns[f"{name}_{label}"] = v.ravel()
    df = pd.DataFrame(columns)
    if not all_cells:
        df = df[~df["status"].isin(_SKIP_STATUS)]
    return df.reset_index(drop=True)


def _safe_cell(value: object) -> object:
    if not isinstance(value, str):
        return value
    text = visible(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell and column name safe to open in a spreadsheet (a copy).

    Control characters become visible escapes (:func:`collector.shared.safetext.visible`:
    ``\x1b``, ``\t``), and a text that then starts with ``=``, ``+``, ``-`` or
    ``@`` gets a leading ``'`` so that Excel, LibreOffice and Google Sheets
    show it as text instead of running it as a formula (OWASP "CSV
    Injection"). Numbers, booleans and times are left alone.
    """
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(_safe_cell)
    out.columns = [_safe_cell(str(c)) for c in out.columns]
    return out


def write_csv(ds: xr.Dataset, path: str | os.PathLike[str], *, all_cells: bool = False) -> Path:
    """Write :func:`to_dataframe` of ``ds`` as CSV, atomically (temp file + rename).

    Times are ISO 8601 (UTC), missing values empty, booleans ``True``/``False``.
    The dataset is validated first (:func:`collector.dataset.schema.validate`): a row
    that ``export`` would refuse is never written. Text cells and column names
    are made spreadsheet-safe (:func:`spreadsheet_safe`): control characters
    escaped, a leading ``= + - @`` prefixed with ``'``. Numeric columns stay
    numbers.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    OutputError
        The path names no file, its folder is not writable, or the disk is full (nothing is left behind).
    SchemaError
        The dataset is not valid (what ``export`` refuses: a negative time, a budget outside the grid...).
    """
    from collector.dataset.storage import check_output, write_error

    schema.validate(ds)
    df = spreadsheet_safe(to_dataframe(ds, all_cells=all_cells))
    target = check_output(path, "CSV file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc, "CSV file") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        df.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        os.replace(tmp, target)
    except OSError as exc:
        error = write_error(target, exc, "CSV file")  # while the partial file still takes the room
        Path(tmp).unlink(missing_ok=True)
        raise error from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
