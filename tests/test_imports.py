"""The torch-free parts must stay torch-free."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_schema_sim_and_analysis_do_not_import_torch() -> None:
    mods = _modules_after(
        "import collector, collector.schema, collector.sim, collector.record, analysis, analysis.synthetic, analysis.io"
    )
    assert "collector.schema" in mods and "analysis.synthetic" in mods
    assert "torch" not in mods
    assert "transformers" not in mods


def test_lazy_names_resolve() -> None:
    import analysis
    import collector

    assert callable(analysis.open_dataset)
    assert callable(analysis.synthetic.make_dataset)
    assert collector.RunRecord.__name__ == "RunRecord"
    assert set(analysis.__all__) >= {"regimes", "phases", "memory_effect", "kv_speedup", "monotonicity",
                                     "step_regimes", "boundaries", "compare_backends", "open_dataset"}


def test_functions_named_like_their_modules_stay_functions() -> None:
    """``analysis.phases`` etc. are functions even after their submodule is imported by name."""
    code = (
        "import analysis.phases, analysis.monotonicity, analysis.boundaries, analysis.regimes\n"
        "import analysis\n"
        "import types\n"
        "names = ['phases', 'monotonicity', 'boundaries', 'regimes', 'kv_speedup', 'memory_effect',"
        " 'step_regimes', 'compare_backends', 'open_dataset']\n"
        "bad = [n for n in names if isinstance(getattr(analysis, n), types.ModuleType)]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
