"""decode-regimes analysis: pure ``xarray.Dataset -> xarray.Dataset`` functions.

Never imports torch. The per-dataset analyses (``analysis.regimes``,
``analysis.kv_speedup``, ...) are the functions of
:data:`analysis.registry.ANALYSES`. ``import analysis`` itself imports
nothing heavy: every public name is loaded on first use (PEP 562), so the
command line and a script that opens one file do not pay for scipy,
statsmodels and scikit-learn until an analysis runs.

Several functions share their module's name (``analysis.regimes`` is both,
so are ``analysis.compare`` and ``analysis.report``). The package refuses to
let the import of such a submodule bind the module over the function
(:class:`_Package`), so the package attribute is always the function,
whatever was imported first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names type checkers see; at run time they are loaded on first use
    from analysis import synthetic as synthetic
    from analysis.compare import compare as compare
    from analysis.io import open_dataset as open_dataset
    from analysis.planting import plant as plant
    from analysis.questions.backends import compare_backends as compare_backends
    from analysis.questions.boundaries import boundaries as boundaries
    from analysis.questions.kv import kv_speedup as kv_speedup
    from analysis.questions.memory import memory_effect as memory_effect
    from analysis.questions.monotonicity import monotonicity as monotonicity
    from analysis.questions.phases import phases as phases
    from analysis.questions.spread import spread as spread
    from analysis.questions.steps import step_regimes as step_regimes
    from analysis.regimes import regimes as regimes
    from analysis.report import report as report
    from analysis.tables.tidy import regime_table as regime_table

#: The public names besides the analyses of :data:`analysis.registry.ANALYSES`: name -> (module, attribute;
#: None: the module itself). The analyses themselves are not listed here: the registry declares them once.
_OTHERS: dict[str, tuple[str, str | None]] = {
    "open_dataset": ("analysis.io", "open_dataset"),
    "compare": ("analysis.compare", "compare"),
    "report": ("analysis.report", "report"),
    "synthetic": ("analysis.synthetic", None),
    "plant": ("analysis.planting", "plant"),
    "regime_table": ("analysis.tables.tidy", "regime_table"),
}
#: Public names that are also the names of submodules: the function wins (see :class:`_Package`).
_SHADOWED = frozenset({"regimes", "compare", "report"})


def _load_analyses() -> list[str]:
    """Set every analysis function of the registry as a package attribute; their names, in its order."""
    from analysis.registry import ANALYSES

    globals().update({a.name: a.function for a in ANALYSES})
    return [a.name for a in ANALYSES]


def _is_submodule(name: str) -> bool:
    """``analysis.<name>`` is a module or package of this package (found without importing it)."""
    try:
        return importlib.util.find_spec(f"{__name__}.{name}") is not None
    except (ImportError, ValueError):
        return False


def __getattr__(name: str) -> Any:
    if name == "__all__":  # the registry's analyses and the other public names (loads the registry)
        names = _load_analyses()
        value: Any = ["open_dataset", *names, *(n for n in _OTHERS if n != "open_dataset")]
        globals()["__all__"] = value
        return value
    if name in _OTHERS:
        module, attr = _OTHERS[name]
        value = importlib.import_module(module) if attr is None else getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if not name.startswith("__") and (name in _SHADOWED or not _is_submodule(name)):  # an analysis?
        if name in _load_analyses():
            return globals()[name]
    if not name.startswith("__"):  # a submodule not imported yet (analysis.io, analysis.plot, ...)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})


class _Package(types.ModuleType):
    """The package's module type: importing ``analysis.regimes`` (and the other submodules named like a
    public function) does not rebind ``analysis.regimes`` to the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the submodule stays in sys.modules; the attribute is the function, loaded on first use
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
