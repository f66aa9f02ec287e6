"""Each analysis declares its result variables once (a table like ``collector.schema.VARIABLES``):
the result holds exactly them, in order, and the numpydoc ``Returns`` section names every one."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Collection

import pytest
import xarray as xr

from analysis import synthetic
from analysis._outputs import returns_names
from public_api import public_calls

#: function -> (module, name of its table)
TABLES: dict[str, tuple[str, str]] = {
    "regimes": ("analysis.regimes", "OUTPUT_VARIABLES"),
    "kv_speedup": ("analysis.kv", "VARIABLES"),
    "memory_effect": ("analysis.memory", "VARIABLES"),
    "step_regimes": ("analysis.steps", "VARIABLES"),
    "phases": ("analysis.phases", "VARIABLES"),
    "monotonicity": ("analysis.monotonicity", "VARIABLES"),
    "compare_backends": ("analysis.backends", "VARIABLES"),
    "boundaries": ("analysis.boundaries", "VARIABLES"),
}


def _table(name: str) -> Collection[str]:
    module, table = TABLES[name]
    return getattr(importlib.import_module(module), table)


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=3, budgets=tuple(range(16, 161, 16)), trials=3, prompt_lens=(16, 32))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_returns_section_names_every_variable(name: str) -> None:
    func = getattr(importlib.import_module(TABLES[name][0]), name)
    undocumented = sorted(set(_table(name)) - returns_names(func.__doc__))
    assert not undocumented, f"{name}() returns {undocumented} without naming them in its Returns section"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_result_holds_the_table_in_order(name: str, ds: xr.Dataset) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = public_calls(30)[name](ds)
    assert list(result.data_vars) == list(_table(name))
    assert all(result[v].attrs.get("long_name") for v in _table(name))


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
