"""decode-regimes analysis: pure ``xarray.Dataset -> xarray.Dataset`` functions.

Never imports torch. Public functions are loaded lazily from one small module
each, so ``import analysis`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (loaded on first attribute access)
_LAZY = {
    "open_dataset": "analysis.io",
    "regimes": "analysis.regimes",
    "phases": "analysis.phases",
    "memory_effect": "analysis.memory",
    "kv_speedup": "analysis.kv",
    "monotonicity": "analysis.monotonicity",
    "step_regimes": "analysis.steps",
    "boundaries": "analysis.boundaries",
    "compare_backends": "analysis.backends",
    "synthetic": "analysis.synthetic",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    mod = importlib.import_module(module)
    return mod if module.endswith("." + name) and not hasattr(mod, name) else getattr(mod, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
