"""Short human names of series, shared by the tables, figures, report and compare.

A *series* is one cell of every dim except ``budget``, ``trial`` and
``step``. Its name shows the dims that vary in the dataset, and only those:
the cache as ``cache on`` / ``cache off``, the prompt as ``prompt 32``, model,
device and dtype by value, others as ``attn=sdpa``; e.g. ``gpt2-medium mps
cache on`` where model, device and cache vary, ``mps cache on`` where only
device and cache do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "NON_SERIES_DIMS",
    "clean_text",
    "fmt_change",
    "fmt_interval",
    "fmt_level",
    "fmt_num",
    "is_simulated",
    "na",
    "iter_series",
    "n_values",
    "scalar",
    "series_dims",
    "series_name",
    "varying_dims",
]

#: Dims that never index a series: the axis of change, replicates, steps and the regimes result's own dims.
NON_SERIES_DIMS: tuple[str, ...] = ("budget", "trial", "step", "segment", "regime", "mode", "covariate", "change")
_ALWAYS = ("model", "device", "cache")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def scalar(v: Any) -> Any:
    """A numpy/bytes value as a plain Python scalar (str for bytes)."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def clean_text(s: Any) -> str:
    """``str(s)`` without control characters (strings from files go to terminals and pages)."""
    return _CONTROL.sub("", str(scalar(s)))


def series_dims(obj: xr.Dataset | xr.DataArray, var: str | None = None) -> list[str]:
    """The series dims of ``obj[var]`` (or of the whole object): every dim except :data:`NON_SERIES_DIMS`."""
    dims = obj[var].dims if var is not None else obj.dims
    return [str(d) for d in dims if d not in NON_SERIES_DIMS]


def varying_dims(obj: xr.Dataset | xr.DataArray, dims: Sequence[str]) -> set[str]:
    """Those of ``dims`` with more than one value in ``obj``; for a dim of stacked series (a MultiIndex, as
    ``series`` of a combined dataset), those of its levels with more than one value."""
    out: set[str] = set()
    for d in dims:
        index = obj.indexes.get(d)
        if isinstance(index, pd.MultiIndex):
            out |= {str(n) for n, lev in zip(index.names, index.levels) if index.get_level_values(n).nunique() > 1}
        elif obj.sizes.get(d, 1) > 1:
            out.add(d)
    return out


def _value(d: str, v: Any) -> str:
    v = scalar(v)
    if d == "cache":
        return "cache on" if bool(v) else "cache off"
    if d in ("model", "device", "dtype"):
        return clean_text(v)
    if d == "series":  # several series stacked on one dim, named by their labels
        return clean_text(v)
    if d == "prompt_len":
        return f"prompt {clean_text(v)}"
    if isinstance(v, bool):
        return f"{d}={'on' if v else 'off'}"
    return f"{d}={clean_text(v)}"


def series_name(coords: Mapping[str, Any], varying: Iterable[str] = ()) -> str:
    """Name of one series from its ``{dim: value}``: the dims that vary (``varying``), and only those.

    A factor with one value in the dataset tells series apart no better than nothing, so it is not repeated
    in every label (a table's title or the report states it once). A dataset where nothing varies (one
    series) names it by model, device and cache.
    """
    varying = set(varying)
    parts = [_value(d, v) for d, v in coords.items() if d in varying]
    if not parts:
        parts = [_value(d, v) for d, v in coords.items() if d in _ALWAYS]
    if not parts:
        parts = [_value(d, v) for d, v in coords.items()]
    return " ".join(parts) or "all"


def n_values(obj: xr.Dataset | xr.DataArray, name: str) -> int:
    """How many values dim ``name`` of ``obj`` has, or level ``name`` of a dim of stacked series (1: absent)."""
    if name in obj.dims:
        return int(obj.sizes[name])
    for index in obj.indexes.values():
        if isinstance(index, pd.MultiIndex) and name in index.names:
            return int(index.get_level_values(name).nunique())
    return 1


def iter_series(obj: xr.Dataset | xr.DataArray, dims: Sequence[str]) -> Iterator[tuple[dict[str, int], dict[str, Any]]]:
    """``(isel index, {dim: value})`` of every series over ``dims``, in C order; a dim of stacked series (a
    MultiIndex) gives ``{level: value}`` for each of its levels instead of its own value."""
    shape = [obj.sizes[d] for d in dims]
    stacked = {d: index for d in dims if isinstance(index := obj.indexes.get(d), pd.MultiIndex)}
    for idx in np.ndindex(*shape):
        index = {d: int(i) for d, i in zip(dims, idx)}
        values: dict[str, Any] = {}
        for d, i in index.items():
            if d in stacked:  # stacked series: one entry per level
                values.update({str(n): scalar(v) for n, v in zip(stacked[d].names, stacked[d][i])})
            else:
                values[d] = scalar(obj[d].values[i]) if d in obj.coords else i
        yield index, values


def is_simulated(attrs: Mapping[str, Any]) -> bool:
    """Whether a dataset's attrs mark it (or any file merged into it) as simulated."""
    v = attrs.get("simulated", 0)
    try:
        return int(scalar(v)) == 1
    except (TypeError, ValueError):
        return "1" in str(v).split(" | ")


#: Largest magnitude written in fixed point; past it (and below it, for values that would print as 0.00 but are
#: not 0) a fixed-point format such as ".2f" falls back to ".3g": a 1.9e151 mde is never 155 digits in a table.
FIXED_MAX = 1e6


def fmt_fixed(x: float, decimals: int = 2) -> str:
    """``x`` with ``decimals`` decimals when ``|x| < FIXED_MAX``, else in 3 significant digits (``1.9e+151``).

    The one bounded format of a number that a table or summary states with a
    fixed number of decimals: at most about 12 characters whatever ``x`` is
    (``nan``, ``inf`` and ``-inf`` as such).
    """
    f = float(x)
    if not math.isfinite(f):
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if abs(f) >= FIXED_MAX:
        return format(f, ".3g")
    return f"{f:.{decimals}f}"


def fmt_ratio(x: float, decimals: int = 2) -> str:
    """A ratio as the tables write it, ``x2.71`` (bounded: ``x1.9e+151``; see :func:`fmt_fixed`)."""
    return "x" + fmt_fixed(x, decimals)


def fmt_num(x: Any, fmt: str = ".3g") -> str:
    """A number for humans ("" for NaN/None); integers without decimals; a fixed-point ``fmt`` stays bounded
    (:data:`FIXED_MAX`)."""
    x = scalar(x)
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, str):
        return clean_text(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return clean_text(x)
    if not math.isfinite(f):
        return "" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if f.is_integer() and abs(f) < 1e9 and fmt in (".3g", "g"):
        return str(int(f))
    if fmt.endswith("f") and abs(f) >= FIXED_MAX:
        return format(f, ".3g")
    return format(f, fmt)


def fmt_interval(lo: Any, hi: Any, fmt: str = ".3g") -> str:
    """``[lo, hi]`` ("" when either end is missing)."""
    a, b = fmt_num(lo, fmt), fmt_num(hi, fmt)
    return f"[{a}, {b}]" if a and b else ""


def na(reason: str = "") -> str:
    """The cell of a value that does not exist, with the reason: ``n/a (no memory readings)``.

    Tables print this instead of an empty cell, ``x``, ``[, ]`` or ``nan``: a reader is told why.
    """
    return f"n/a ({reason})" if reason else "n/a"


_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))


def _scale(x: float, units: str) -> tuple[str, float]:
    """The unit to print ``x`` in and its size: seconds become s, ms, us or ns; other units stay."""
    if units != "s" or not math.isfinite(x) or x == 0:
        return units, 1.0
    for name, size in _TIME_UNITS:
        if abs(x) >= size:
            return name, size
    return _TIME_UNITS[-1]


def fmt_level(x: float, spread: float = math.nan, units: str = "s") -> str:
    """A typical value with its per-run spread, pyperf style: ``1.00 ms +- 0.01`` (the spread in the same unit;
    left out when unknown, e.g. one run a cell). ``""`` for NaN."""
    if not math.isfinite(x):
        return ""
    name, size = _scale(x, units)
    v = x / size
    decimals = max(0, 2 - math.floor(math.log10(abs(v)))) if v != 0 else 2  # three significant digits
    text = f"{fmt_fixed(v, decimals)} {name}".strip()
    if math.isfinite(spread):
        text += f" +- {fmt_fixed(spread / size, decimals)}"  # the spread to the same decimal place
    return text


def fmt_change(a: float, spread_a: float, b: float, spread_b: float, units: str = "s") -> str:
    """``1.00 ms +- 0.01 -> 1.10 ms +- 0.02: 1.10x slower`` (pyperf's compare_to line); ``""`` if either is NaN."""
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return ""
    r = b / a
    how = f"{fmt_fixed(r)}x slower" if r >= 1 else f"{fmt_fixed(1 / r)}x faster"
    return f"{fmt_level(a, spread_a, units)} -> {fmt_level(b, spread_b, units)}: {how}"
