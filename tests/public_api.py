"""Every public analysis function, called with fast settings: one table for the input-check, fuzz and
lazy-path tests (the analyses from :data:`analysis.registry.ANALYSES`, then ``compare``, ``plant`` and
``regime_table``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

import analysis
from analysis.registry import ANALYSES, Analysis, find


def _fast(entry: Analysis, n: int) -> Callable[[xr.Dataset], Any]:
    settings = {k: n for k in entry.fast}
    return lambda ds: entry.function(ds, **settings)


def public_calls(n: int = 20, base: xr.Dataset | None = None) -> dict[str, Callable[[xr.Dataset], Any]]:
    """Name -> call on a dataset, with ``n`` permutations and resamples; ``compare`` compares ``base``
    (default: the dataset itself) with the dataset."""
    fast = {"n_perm": n, "n_boot": n}
    return {
        **{a.name: _fast(a, n) for a in ANALYSES},
        "compare": lambda ds: analysis.compare(ds if base is None else base, ds, **fast),
        "plant": lambda ds: analysis.plant(ds, 32, 48, 2.0),
        # a pandas DataFrame; as a Dataset (one row per index) the shared checks of a result apply to it
        "regime_table": lambda ds: analysis.regime_table(_fast(find("regimes"), n)(ds)).to_xarray(),
    }
