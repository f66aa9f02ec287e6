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
