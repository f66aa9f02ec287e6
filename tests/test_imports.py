"""The torch-free parts must stay torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


@pytest.mark.process
def test_schema_sim_and_analysis_do_not_import_torch() -> None:
    mods = _modules_after(
        "import collector, collector.schema, collector.dataset.schema, collector.shared.sim, collector.shared.record,"
        " collector.sweep.refine, collector.shared.trend, analysis, analysis.synthetic, analysis.io"
    )
    assert "collector.dataset.schema" in mods and "analysis.synthetic" in mods
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


@pytest.mark.process
def test_functions_named_like_their_modules_stay_functions() -> None:
    """``analysis.phases`` etc. are functions even after their submodule is imported by name."""
    code = (
        "import analysis.questions.phases, analysis.questions.monotonicity, analysis.questions.boundaries, analysis.regimes\n"
        "import analysis\n"
        "import types\n"
        "names = ['phases', 'monotonicity', 'boundaries', 'regimes', 'kv_speedup', 'memory_effect',"
        " 'step_regimes', 'compare_backends', 'open_dataset']\n"
        "import importlib\n"
        "from analysis.registry import ANALYSES\n"
        "for a in ANALYSES:\n"
        "    importlib.import_module(a.function.__module__)\n"  # every analysis module, by name (analysis.spread)
        "names += [a.name for a in ANALYSES]\n"
        "bad = [n for n in names if isinstance(getattr(analysis, n), types.ModuleType)]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_BLOCK_TORCH = '''
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "psutil"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: an install without [collect])")
        return None
sys.meta_path.insert(0, _NoTorch())
'''


@pytest.mark.process
def test_analysis_imports_and_runs_without_torch() -> None:
    """`pip install decode-regimes` (no [collect] extra) must reanalyse a published file: torch, transformers
    and psutil are blocked from importing, then a v1 file is opened (upgraded) and analysed."""
    code = _BLOCK_TORCH + (
        "import glob, analysis\n"
        "from analysis import synthetic\n"
        "from collector import schema\n"  # the stable public path of the dataset contract
        "from collector.dataset import schema as dataset_schema\n"
        "from collector.shared import factors\n"
        "from collector.sweep import spec\n"
        "assert schema.validate is dataset_schema.validate\n"
        "ds = analysis.open_dataset(sorted(glob.glob('datasets/cuda-h200-*.nc'))[0])\n"
        "assert ds.attrs['schema_version'] == schema.SCHEMA_VERSION\n"
        "r = analysis.regimes(ds)\n"
        "k = analysis.kv_speedup(ds, reg=r)\n"
        "s = synthetic.make_dataset(seed=0, budgets=(8, 16, 24, 32), trials=2)\n"
        "print('ok', int(r.anomalous.sum()), k.speedup.dims)\n"
    )
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok ")
    blocked = subprocess.run([sys.executable, "-c", _BLOCK_TORCH + "import collector.measuring.measurement"], cwd=root,
                             capture_output=True, text=True)
    assert blocked.returncode != 0 and "blocked: an install without [collect]" in blocked.stderr
