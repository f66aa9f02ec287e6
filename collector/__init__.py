"""decode-regimes collector: run Hugging Face causal LMs and record decoding latency.

- :mod:`collector.shared`: the torch-free vocabulary both sides import (errors, devices and factors, the run
  record and protocol, the simulator, the trend, safe text); it imports nothing else of the collector.
- :mod:`collector.dataset`: the netCDF contract (:mod:`collector.dataset.schema`, also importable as
  :mod:`collector.schema`) and the files: storage, combining, export and merge, tidy CSV, study import.
- :mod:`collector.sweep`: the sweep spec and the run of a sweep (order, workers, journal, refinement).
- :mod:`collector.measuring`: one generation on a device and the machine's description (the only torch).
- :mod:`collector.http`, :mod:`collector.doctor`, :mod:`collector.diagnose`: the HTTP engine,
  ``collector doctor`` and ``collector diagnose``.

Importing :mod:`collector` (or :mod:`collector.schema`, :mod:`collector.shared`, :mod:`collector.dataset.schema`)
never imports torch: the measuring entry points are loaded lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first attribute access)
_LAZY = {
    "measure": "collector.measuring.measurement",
    "warmup": "collector.measuring.measurement",
    "load_model": "collector.measuring.measurement",
    "check_request": "collector.measuring.measurement",
    "presets": "collector.measuring.models",
    "SweepSpec": "collector.sweep.spec",
    "build_spec": "collector.sweep.spec",
    "run_sweep": "collector.sweep.runner",
    "merge": "collector.dataset.export",
    "RunRecord": "collector.shared.record",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'collector' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
