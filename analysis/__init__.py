"""decode-regimes analysis: pure ``xarray.Dataset -> xarray.Dataset`` functions.

Never imports torch. The per-dataset analyses (``analysis.regimes``,
``analysis.kv_speedup``, ...) are the functions of
:data:`analysis.registry.ANALYSES`, set here from it. Several share their
module's name (``analysis.regimes`` is both); the registry imports every
analysis module before they are set, so the package attribute is always the
function: a later ``import analysis.regimes`` finds the module already loaded
and does not rebind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis import synthetic
from analysis.compare import compare
from analysis.io import open_dataset
from analysis.planting import plant
from analysis.registry import ANALYSES
from analysis.report import report
from analysis.tables.tidy import regime_table

if TYPE_CHECKING:  # the names type checkers see; at run time they are set from the registry below
    from analysis.backends import compare_backends as compare_backends
    from analysis.boundaries import boundaries as boundaries
    from analysis.kv import kv_speedup as kv_speedup
    from analysis.memory import memory_effect as memory_effect
    from analysis.monotonicity import monotonicity as monotonicity
    from analysis.phases import phases as phases
    from analysis.regimes import regimes as regimes
    from analysis.steps import step_regimes as step_regimes

globals().update({a.name: a.function for a in ANALYSES})

__all__ = [
    "open_dataset",
    *(a.name for a in ANALYSES),
    "compare",
    "report",
    "synthetic",
    "plant",
    "regime_table",
]
