"""decode-regimes collector: run Hugging Face causal LMs and record decoding latency.

Importing :mod:`collector` (or :mod:`collector.schema`, :mod:`collector.sim`)
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
    "SweepSpec": "collector.spec",
    "build_spec": "collector.spec",
    "run_sweep": "collector.sweep.runner",
    "merge": "collector.export",
    "RunRecord": "collector.record",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'collector' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
