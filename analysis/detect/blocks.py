"""A :func:`analysis.regimes` result as the input of the other analyses: its anomalous blocks, its arrays.

The analyses that build on the regimes (phases, memory, kv, boundaries,
backends) take an optional ``reg`` (a result computed before) or compute it
here. This module sits above both :mod:`analysis.core.common` and
:mod:`analysis.regimes`, so neither imports the other (tests/test_import_graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import BUDGET, Series, quiet
from analysis.core.measured import measured_blocks
from analysis.errors import InputError
from analysis.regimes import regimes

__all__ = ["Block", "get_regimes", "reg_array", "regime_blocks"]


@dataclass(frozen=True)
class Block:
    """One anomalous interval of one series: budget indices ``first..last`` (inclusive)."""

    first: int
    last: int
    ratio: float  # mean observed / baseline inside the block
    regime_id: int  # 0.. along the budget axis within the series

    @property
    def kind(self) -> str:
        return "slow" if self.ratio > 1 else "fast"


def get_regimes(ds: xr.Dataset, var: str, reg: xr.Dataset | None, fn: str, **kwargs: Any) -> xr.Dataset:
    """``reg`` checked for use on ``ds[var]``, or ``analysis.regimes.regimes(ds, var, **kwargs)`` when None."""
    if reg is None:
        return regimes(ds, var, **kwargs)
    if not isinstance(reg, xr.Dataset):
        raise InputError(f"{fn}(): reg must be the xarray.Dataset returned by analysis.regimes(), got {type(reg).__name__!r}")
    for name in ("anomalous", "ratio"):
        if name not in reg.data_vars:
            raise InputError(f"{fn}(): reg lacks {name!r}; pass the Dataset returned by analysis.regimes()")
        if BUDGET not in reg[name].dims:
            raise InputError(f"{fn}(): reg[{name!r}] has dims {reg[name].dims!r}, without {BUDGET!r}")
    return reg


def reg_array(reg: xr.Dataset, name: str, series: Series, budgets: np.ndarray, fn: str) -> np.ndarray:
    """``reg[name]`` as an array ``(n_series, n_budget)`` in the caller's series and budget order."""
    dims = tuple(series.dims) + (BUDGET,)
    da = reg[name]
    missing = [d for d in dims if d not in da.dims]
    extra = [d for d in da.dims if d not in dims]
    if missing or extra:
        raise InputError(f"{fn}(): reg[{name!r}] has dims {da.dims!r}; expected the series dims and budget {dims!r}")
    wanted = {d: series.template[d].values for d in series.dims} | {BUDGET: budgets}
    positions = {}
    for d, values in wanted.items():
        if d not in da.indexes:
            raise InputError(f"{fn}(): reg[{name!r}] has no coordinate on dim {d!r}")
        pos = da.indexes[d].get_indexer(values)
        if np.any(pos < 0):
            missing_value = np.asarray(values)[pos < 0][0].item()
            raise InputError(f"{fn}(): reg does not match the dataset: {d}={missing_value!r} is not in reg[{name!r}]")
        positions[d] = pos
    da = da.isel(positions)
    return np.asarray(da.transpose(*dims).values).reshape(series.size, budgets.size)


def regime_blocks(
    reg: xr.Dataset, series: Series, budgets: np.ndarray, fn: str, *, split_segments: bool = False
) -> list[list[Block]]:
    """Per series (flat index), the contiguous anomalous budget intervals of a regimes() result.

    Blocks are split where the direction (slow/fast) changes and, with
    ``split_segments``, where the segment id (``reg.regime``) changes; by
    default adjacent anomalous segments of one direction form one block.
    ``budgets`` gives the budget order of the caller's arrays.

    Only the budgets the series measured (a finite ``ratio``) count: a block starts and ends at measured
    budgets and holds no stretch of budgets the series never ran
    (:func:`analysis.core.measured.measured_blocks`).
    """
    anomalous = np.asarray(reg_array(reg, "anomalous", series, budgets, fn), dtype=bool)
    ratio = np.asarray(reg_array(reg, "ratio", series, budgets, fn), dtype=np.float64)
    ids = (
        np.asarray(reg_array(reg, "regime", series, budgets, fn), dtype=np.float64)
        if split_segments and "regime" in reg.data_vars
        else None
    )
    out: list[list[Block]] = []
    for s in range(series.size):
        blocks: list[Block] = []
        measured = np.isfinite(ratio[s])
        for a, b in measured_blocks(anomalous[s], measured):
            inside = [i for i in range(a, b + 1) if measured[i]]
            start = a
            for i, nxt in zip(inside, [*inside[1:], None]):
                split = nxt is None
                if nxt is not None:
                    same_id = ids is None or ids[s, nxt] == ids[s, i]
                    same_dir = (ratio[s, nxt] > 1) == (ratio[s, i] > 1)
                    split = not (same_id and same_dir)
                if split:
                    with quiet():
                        r = float(np.nanmean(ratio[s, start : i + 1]))
                    rid = len(blocks)
                    blocks.append(Block(start, i, r, rid))
                    if nxt is not None:
                        start = nxt
        out.append(blocks)
    return out

