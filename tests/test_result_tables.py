"""Each analysis declares its result variables once (a table like ``collector.schema.VARIABLES``):
the result holds exactly them, in order, and the numpydoc ``Returns`` section names every one."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import xarray as xr

from analysis import synthetic
from analysis._outputs import ResultVar, returns_names

FAST = {"n_perm": 30, "n_boot": 30}
#: function -> (module, name of its table, call on a small dataset)
TABLES: dict[str, tuple[str, str, Callable[..., xr.Dataset]]] = {
    "regimes": ("analysis.regimes", "OUTPUT_VARIABLES", lambda f, ds: f(ds, **FAST)),
    "kv_speedup": ("analysis.kv", "VARIABLES", lambda f, ds: f(ds, **FAST)),
    "memory_effect": ("analysis.memory", "VARIABLES", lambda f, ds: f(ds, **FAST)),
    "step_regimes": ("analysis.steps", "VARIABLES", lambda f, ds: f(ds)),
    "phases": ("analysis.phases", "VARIABLES", lambda f, ds: f(ds, **FAST)),
    "monotonicity": ("analysis.monotonicity", "VARIABLES", lambda f, ds: f(ds)),
    "compare_backends": ("analysis.backends", "VARIABLES", lambda f, ds: f(ds, **FAST)),
    "boundaries": ("analysis.boundaries", "VARIABLES", lambda f, ds: f(ds, **FAST)),
}


def _table(name: str) -> tuple[Any, Mapping[str, ResultVar] | tuple[str, ...]]:
    module, table, _ = TABLES[name]
    mod = importlib.import_module(module)
    return getattr(mod, name), getattr(mod, table)


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=3, budgets=tuple(range(16, 161, 16)), trials=3, prompt_lens=(16, 32))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_returns_section_names_every_variable(name: str) -> None:
    func, table = _table(name)
    undocumented = sorted(set(table) - returns_names(func.__doc__))
    assert not undocumented, f"{name}() returns {undocumented} without naming them in its Returns section"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_result_holds_the_table_in_order(name: str, ds: xr.Dataset) -> None:
    func, table = _table(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = TABLES[name][2](func, ds)
    assert list(result.data_vars) == list(table)
    assert all(result[v].attrs.get("long_name") for v in table)


def test_returns_names_reads_only_the_returns_section() -> None:
    doc = """Do it.

    Parameters
    ----------
    ``x``
        A setting.

    Returns
    -------
    xarray.Dataset
        - ``a``: one; ``b``, ``c``: two.

    Raises
    ------
    InputError
        ``d`` is bad.
    """
    assert returns_names(doc) == {"a", "b", "c"}
