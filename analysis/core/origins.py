"""The lines a summary adds for a dataset that combines several origins (hosts or protocols)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from collector.dataset.combine import ORIGIN_DIM, differences, origin_labels

__all__ = ["origin_groups", "origin_lines"]


def origin_groups(da: xr.DataArray, sdims: Sequence[Hashable]) -> np.ndarray | None:
    """Per series of ``da`` (flattened in C order over ``sdims``), the index of its origin.

    The origin is the ``origin`` dim of a combined cube or the ``origin`` level of a combined dataset's
    stacked ``series`` (:mod:`analysis.core.stacked`).

    Returns
    -------
    numpy.ndarray or None
        Integer codes, one per series; None when ``da`` has no origin (one file, one host and protocol).
    """
    if ORIGIN_DIM in sdims:
        codes = xr.DataArray(np.arange(da.sizes[ORIGIN_DIM]), dims=ORIGIN_DIM)
    else:
        coord = da.coords.get(ORIGIN_DIM)
        if coord is None or coord.ndim != 1 or coord.dims[0] not in sdims:
            return None
        codes = xr.DataArray(pd.factorize(np.asarray(coord.values))[0], dims=coord.dims)
    template = xr.DataArray(np.zeros([da.sizes[d] for d in sdims], dtype=np.int8), dims=list(sdims))
    return np.asarray((codes + template).transpose(*sdims).values).reshape(-1)

#: Longest value shown for one setting (notes can be long).
_WIDTH = 48
#: Origin settings a summary shows (the others, such as platform, stay in the coordinates).
_SHOWN: tuple[str, ...] = ("host", "gpu_name", "processor", "engine", "timing", "warmup", "isolation", "run_order",
                           "memory", "value_kind", "protocol", "torch_version", "transformers_version",
                           "package_version")


def origin_lines(result: xr.Dataset) -> list[str]:
    """Lines naming each origin of ``result`` and the settings in which the origins differ.

    Returns
    -------
    list of str
        Empty when ``result`` has no ``origin`` dim; else a head line and one
        line per origin such as ``"  cuda-h200: gpu_name NVIDIA H200, timing events, warmup 2"``
        (platform strings and Python versions are left to the coordinates).
    """
    labels, _ = origin_labels(result)  # the origin dim, or the origin level of stacked series
    if len(labels) < 2 and ORIGIN_DIM not in result.dims:
        return []
    diffs = {k: v for k, v in differences(result).items() if k in _SHOWN}
    apart = "along dim 'origin'" if ORIGIN_DIM in result.dims else "as level 'origin' of the series"
    lines = [f"{len(labels)} origins (hosts or protocols), kept apart {apart}"
             + ("; where their settings differ:" if diffs else "")]
    for i, label in enumerate(labels):
        said = ", ".join(f"{k} {_short(v[i])}" for k, v in diffs.items())
        lines.append(f"  {label}: {said}" if said else f"  {label}")
    return lines


def _short(value: str) -> str:
    value = value or "(none)"
    return value if len(value) <= _WIDTH else value[: _WIDTH - 3] + "..."
