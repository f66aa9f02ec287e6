"""The lines a summary adds for a dataset that combines several origins (hosts or protocols)."""

from __future__ import annotations

import xarray as xr

from collector.combine import ORIGIN_DIM, differences

__all__ = ["origin_lines"]

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
    if ORIGIN_DIM not in result.dims or ORIGIN_DIM not in result.coords:
        return []
    labels = [str(v) for v in result[ORIGIN_DIM].values.tolist()]
    diffs = {k: v for k, v in differences(result).items() if k in _SHOWN}
    lines = [f"{len(labels)} origins (hosts or protocols), kept apart along dim 'origin'"
             + ("; where their settings differ:" if diffs else "")]
    for i, label in enumerate(labels):
        said = ", ".join(f"{k} {_short(v[i])}" for k, v in diffs.items())
        lines.append(f"  {label}: {said}" if said else f"  {label}")
    return lines


def _short(value: str) -> str:
    value = value or "(none)"
    return value if len(value) <= _WIDTH else value[: _WIDTH - 3] + "..."
