"""decode-regimes analysis: pure ``xarray.Dataset -> xarray.Dataset`` functions.

Never imports torch. Several functions share their module's name
(``analysis.regimes`` is both); they are imported here, eagerly, so the
package attribute is always the function: a later ``import analysis.regimes``
finds the module already loaded and does not rebind it.
"""

from __future__ import annotations

from analysis import synthetic
from analysis.backends import compare_backends
from analysis.boundaries import boundaries
from analysis.compare import compare
from analysis.io import open_dataset
from analysis.kv import kv_speedup
from analysis.memory import memory_effect
from analysis.monotonicity import monotonicity
from analysis.phases import phases
from analysis.planting import plant
from analysis.regimes import regimes
from analysis.report import report
from analysis.steps import step_regimes

__all__ = [
    "open_dataset",
    "regimes",
    "phases",
    "memory_effect",
    "kv_speedup",
    "monotonicity",
    "step_regimes",
    "boundaries",
    "compare_backends",
    "compare",
    "report",
    "synthetic",
    "plant",
]
