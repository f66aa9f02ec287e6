"""compare prints each file's typical value with its spread beside the ratio, pyperf style (issue 20)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis.core.labels import fmt_change, fmt_level
from analysis.tables.results import compare_series

ROOT = Path(__file__).resolve().parents[1]
A = ROOT / "tests" / "data" / "real" / "cpu-loop-step-t5-both.nc"
B = ROOT / "tests" / "data" / "real" / "cpu-idle-loop-step-t3-off.nc"
LINE = re.compile(r"^[\d.]+ (s|ms|us|ns)( \+- [\d.]+)? -> [\d.]+ (s|ms|us|ns)( \+- [\d.]+)?: \d+\.\d\dx (slower|faster)$")


def test_pyperf_style() -> None:
    assert fmt_change(1.0e-3, 1e-5, 1.1e-3, 2e-5) == "1.00 ms +- 0.01 -> 1.10 ms +- 0.02: 1.10x slower"
    assert fmt_change(2.0, math.nan, 1.0, math.nan) == "2.00 s -> 1.00 s: 2.00x faster"
    assert fmt_level(2.5e-7, 1e-8) == "250 ns +- 10"
    assert fmt_level(123.4, 5.0, "tokens") == "123 tokens +- 5"
    assert fmt_change(math.nan, 0.1, 1.0, 0.1) == ""


@pytest.fixture(scope="module")
def result():
    return analysis.compare(analysis.open_dataset(A), analysis.open_dataset(B), labels=(A.name, B.name))


def test_levels_are_the_ratio_s_parts(result) -> None:
    ser = result.squeeze()
    assert float(ser["level_b"] / ser["level_a"]) == pytest.approx(float(ser["series_ratio"]), rel=1e-9)
    assert float(ser["spread_a"]) == pytest.approx(float(ser["level_a"] * ser["noise_a"]))
    assert result["level_a"].attrs["units"] == "s"
    # the level is A's typical latency over the budgets it used: between its smallest and largest cell
    lat = analysis.open_dataset(A)["latency"].sel(cache=False).median("trial")
    assert float(lat.min()) <= float(ser["level_a"]) <= float(lat.max())


def test_table_and_verdict_show_absolute_values(result) -> None:
    table = compare_series(result)
    cell = table.rows[0][table.columns.index("A -> B")]
    assert LINE.match(cell), cell
    assert "A -> B" in table.key_columns
    verdict = str(result["verdict"].squeeze().values)
    assert f"({cell})" in verdict


def test_cli_prints_it() -> None:
    proc = subprocess.run([sys.executable, "-m", "analysis", "compare", str(A), str(B)], capture_output=True,
                          text=True, cwd=ROOT, check=True)
    flat = " ".join(proc.stdout.split())
    assert re.search(r"[\d.]+ s \+- [\d.]+ -> [\d.]+ ms \+- [\d.]+: \d+\.\d\dx faster", flat), proc.stdout


def test_one_run_a_cell_leaves_the_spread_out() -> None:
    study = analysis.open_dataset(ROOT / "datasets" / "mps-m3max-study.nc")
    probe = study.sel(experiment=["kv_ablation"], device=["mps"], model=["gpt2-medium"])
    res = analysis.compare(probe, probe)
    cells = [r[1] for r in compare_series(res).rows]
    assert cells and all("+-" not in c for c in cells), cells
    assert all(np.isnan(res["spread_a"].values).ravel())
