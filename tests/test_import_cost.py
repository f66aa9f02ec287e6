"""``import analysis`` is light: heavy libraries load on first use (issue 20).

Measured with ``python -X importtime -c "import analysis"``: about 1.5 s (cumulative) before the public
names were loaded lazily, a few milliseconds after. What is checked here is what makes that true: which
modules an import pulls in (a wall-clock bound would be flaky on a loaded 2-core machine).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("scipy", "statsmodels", "sklearn", "matplotlib", "dask", "xarray", "pandas")


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
                         check=True, capture_output=True, text=True).stdout
    return {m.split(".")[0] for m in out.split()}


@pytest.mark.process
def test_import_analysis_loads_no_heavy_library() -> None:
    loaded = _loaded_after("import analysis")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.process
def test_the_analyses_load_without_statsmodels_sklearn_or_matplotlib() -> None:
    """The registry (every analysis function, the command line's list) leaves statsmodels, scikit-learn and
    matplotlib to the first fit that needs them."""
    loaded = _loaded_after("import analysis\nanalysis.regimes\nanalysis.open_dataset\nimport analysis.cli.commands")
    assert {"scipy", "xarray"} <= loaded
    assert not loaded & {"statsmodels", "sklearn", "matplotlib"}, sorted(loaded & {"statsmodels", "sklearn",
                                                                                   "matplotlib"})


def test_names_resolve_and_match_the_registry() -> None:
    import types

    import analysis
    from analysis.registry import ANALYSES

    # the registry declares the analyses once: the package lists them from it (a new analysis touches no list here)
    names = [a.name for a in ANALYSES]
    assert [n for n in analysis.__all__ if n in names] == names
    assert all(getattr(analysis, n) is a.function for n, a in zip(names, ANALYSES))
    for name in analysis.__all__:
        assert not isinstance(getattr(analysis, name), types.ModuleType) or name == "synthetic", name
    assert callable(analysis.regime_table) and callable(analysis.compare) and callable(analysis.report)
    assert isinstance(analysis.io, types.ModuleType)  # a submodule not imported yet, on first use
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        analysis.nope  # noqa: B018


@pytest.mark.process
def test_a_submodule_imported_first_does_not_hide_its_function() -> None:
    code = ("import analysis.compare.statistics, analysis.report.html, analysis.regimes\n"
            "import analysis, types\n"
            "assert callable(analysis.compare) and callable(analysis.report) and callable(analysis.regimes)\n"
            "from analysis import compare, regimes\n"
            "assert callable(compare) and callable(regimes)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
