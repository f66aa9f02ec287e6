"""The headline (analysis.report.headline): one sentence per finding, strongest first, on real files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import analysis
from analysis.report.headline import headline, headline_of

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
NULL = ROOT / "tests" / "data" / "real" / "cpu-idle-loop-ends-t3-on.nc"


@pytest.fixture(scope="module")
def study():
    ds = analysis.open_dataset(STUDY)
    return ds, analysis.regimes(ds)


def test_study_opens_with_the_probe_regime(study):
    ds, reg = study
    lines = headline_of(ds, reg)
    first = lines[0]
    # the instability_probe experiment's gpt2-medium mps regime, 512-624, not a one-budget spike
    assert first.startswith("gpt2-medium on mps (experiment=instability_probe")
    assert "budgets 512-624" in first and "slower" in first
    assert re.search(r"x10\.8 \[8\.6, 13\.5\]", first)  # effect and CI as the regimes result has them
    assert "not seen on cpu or cuda" in first  # backends: gpt2-medium ran there (main_crossover), no regime
    assert "KV-cache speedup falls from x8.4 to x1.9" in first  # kv: the kv_ablation pair collapses at 512
    # a regime resting on one run comes after those resting on several, and says so
    spikes = [i for i, s in enumerate(lines) if "(one run)" in s]
    several = [i for i, s in enumerate(lines) if "budgets 512-624" in s]
    assert spikes and several and max(several) < min(spikes)
    assert lines[-1] == "2 more regimes: see the regimes table."
    assert all(s.endswith(".") for s in lines)


def test_clauses_only_from_results_given(study):
    _, reg = study
    bare = headline(reg)  # no backends, kv or phases: only what the regimes result says
    assert "budgets 512-624" in bare[0]
    assert "cpu" not in bare[0] and "KV" not in bare[0]
    assert len(headline(reg, limit=1)) == 2


def test_null_file_says_nothing_was_found_and_what_could_have_been():
    ds = analysis.open_dataset(NULL)
    reg = analysis.regimes(ds)
    (line,) = headline_of(ds, reg)
    assert line.startswith("No regime was found in 2 series")
    mde = float(reg["mde"].min())
    assert f"x{mde:.1f}" in line and "smallest slowdown" in line and "80%" in line


def test_cli_regimes_and_report_open_with_the_headline(tmp_path, capsys):
    from analysis.__main__ import main

    assert main(["regimes", str(STUDY)]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("gpt2-medium on mps (experiment=instability_probe")
    assert main(["report", str(NULL), "-o", str(tmp_path / "r"), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("No regime was found in 2 series")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert md.splitlines()[2].startswith("**No regime was found in 2 series")
