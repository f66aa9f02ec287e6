"""Every public analysis function, called with fast settings: one table for the input-check, fuzz and
lazy-path tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

import analysis


def public_calls(n: int = 20, base: xr.Dataset | None = None) -> dict[str, Callable[[xr.Dataset], Any]]:
    """Name -> call on a dataset, with ``n`` permutations and resamples; ``compare`` compares ``base``
    (default: the dataset itself) with the dataset."""
    fast = {"n_perm": n, "n_boot": n}
    return {
        "regimes": lambda ds: analysis.regimes(ds, **fast),
        "phases": lambda ds: analysis.phases(ds, **fast),
        "memory_effect": lambda ds: analysis.memory_effect(ds, **fast),
        "kv_speedup": lambda ds: analysis.kv_speedup(ds, **fast),
        "monotonicity": lambda ds: analysis.monotonicity(ds),
        "step_regimes": lambda ds: analysis.step_regimes(ds),
        "boundaries": lambda ds: analysis.boundaries(ds, **fast),
        "compare_backends": lambda ds: analysis.compare_backends(ds, **fast),
        "compare": lambda ds: analysis.compare(ds if base is None else base, ds, **fast),
        "plant": lambda ds: analysis.plant(ds, 32, 48, 2.0),
    }
