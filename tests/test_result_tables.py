"""Each analysis declares its result variables once (a table like ``collector.dataset.schema.VARIABLES``):
the result holds exactly them, in order, and the numpydoc ``Returns`` section names every one."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Collection

import pytest
import xarray as xr

from analysis import synthetic
from analysis.core.outputs import returns_names
from analysis.registry import ANALYSES, Analysis
from public_api import public_calls

#: function -> its analysis (the registry names the table)
TABLES: dict[str, Analysis] = {a.name: a for a in ANALYSES}


def _table(name: str) -> Collection[str]:
    return TABLES[name].variables


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_table_is_its_modules_variables(name: str) -> None:
    """Every analysis module names its table ``VARIABLES`` (regimes too; ``OUTPUT_VARIABLES`` is its names)."""
    func = TABLES[name].function
    assert importlib.import_module(func.__module__).VARIABLES is TABLES[name].variables
    assert func.__name__ == name


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic.make_dataset(seed=3, budgets=tuple(range(16, 161, 16)), trials=3, prompt_lens=(16, 32))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_returns_section_names_every_variable(name: str) -> None:
    func = TABLES[name].function
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
