"""The numbers datasets/README.md quotes for our measured sweeps are what datasets/datasheet_numbers.py computes."""

from __future__ import annotations

from pathlib import Path

import pytest

import analysis
from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "datasets" / "README.md").read_text()


def _section(name: str) -> str:
    start = README.index(f"## {name}.nc")
    end = README.find("\n## ", start + 1)
    return README[start:] if end < 0 else README[start:end]


@pytest.mark.parametrize("name", ["cuda-h200-gpt2", "cuda-h200-opt-bloom", "cpu-xeon16-gpt2-opt"])
def test_quoted_data_numbers_are_recomputed(name: str) -> None:
    n = load_script("datasets/datasheet_numbers.py").data_numbers(analysis.open_dataset(name))
    text = " ".join(_section(name).split())
    for model, (lo, hi) in n.per_token_ms.items():
        assert f"{model} {lo:.1f}-{hi:.1f} ms" in text
    assert f"{round(n.cv_range[0] * 100)}-{round(n.cv_range[1] * 100)} %" in text
    assert f"{n.kv_ratio[0]:.2f}-{n.kv_ratio[1]:.2f}x" in text
    assert f"{n.n_ok} runs, all `ok`" in text
