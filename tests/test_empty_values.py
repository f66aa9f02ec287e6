"""Tables say why a value is missing: never an empty cell, ``x``, ``[, ]`` or ``nan`` (issue 20).

Checked on the published study file, which has one trial, memory readings in one experiment only, no
prefill/decode split in most cells, one prompt length in most experiments and a sparse budget grid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis.core.labels import na
from analysis.registry import ANALYSES
from analysis.tables.results import regimes_segments, regimes_series

STUDY = Path(__file__).resolve().parents[1] / "datasets" / "mps-m3max-study.nc"
BAD_CELL = re.compile(r"^(x|\[, \]|-?x?nan.*|.*\bnan\b.*|.*nan\.\.nan.*)$", re.IGNORECASE)


@pytest.fixture(scope="module")
def study() -> tuple[xr.Dataset, xr.Dataset]:
    ds = analysis.open_dataset(STUDY)
    return ds, analysis.regimes(ds)


@pytest.fixture(scope="module")
def results(study: tuple[xr.Dataset, xr.Dataset]) -> dict[str, xr.Dataset]:
    ds, reg = study
    out = {"regimes": reg}
    for entry in ANALYSES:
        if entry.name in ("regimes", "step_regimes"):  # the study has no per-step times
            continue
        kw = {"reg": reg} if entry.takes_reg else {}
        out[entry.name] = entry.function(ds, **kw)
    return out


def _tables(results: dict[str, xr.Dataset]) -> list:
    tables = [regimes_segments(results["regimes"]), regimes_series(results["regimes"])]
    for entry in ANALYSES:
        if entry.name not in results or entry.table is None or entry.name == "regimes":
            continue
        tables.append(entry.table(results[entry.name], show_all=True) if entry.show_all
                      else entry.table(results[entry.name]))
    return tables


def test_na_names_the_reason() -> None:
    assert na("no memory readings") == "n/a (no memory readings)"
    assert na() == "n/a"


def test_no_empty_or_placeholder_cell(results: dict[str, xr.Dataset]) -> None:
    tables = _tables(results)
    assert len(tables) >= 8
    for t in tables:
        for row in t.rows:
            for col, cell in zip(t.columns, row):
                assert cell.strip(), (t.title, col, row)
                assert not BAD_CELL.match(cell.strip()), (t.title, col, cell)
                assert "[, ]" not in cell and not cell.startswith("x ") and cell != "x", (t.title, col, cell)


def test_tables_leave_out_series_nobody_measured(results: dict[str, xr.Dataset]) -> None:
    kv = next(e for e in ANALYSES if e.name == "kv_speedup").table(results["kv_speedup"])
    assert len(kv.rows) == 1 and "kv_ablation" in kv.rows[0][0]
    assert "with no cache on/off pair not listed" in kv.note  # (pairs of which a side, or both, never ran)
    backends = next(e for e in ANALYSES if e.name == "compare_backends").table(results["compare_backends"])
    assert all(not r[2].endswith("/0") for r in backends.rows)
    assert regimes_series(results["regimes"]).note.startswith("183 series with no value to compare with a baseline")


def test_memory_row_says_there_is_no_memory_data(results: dict[str, xr.Dataset]) -> None:
    mem = results["memory_effect"]
    probe = mem.sel(experiment="instability_probe", model="gpt2-medium", device="mps", cache=True,
                    prompt_len=65).squeeze()
    assert not bool(probe["used"].any())
    assert np.isnan(float(probe["r2_memory"]))  # not "memory explains 0 %"
    table = next(e for e in ANALYSES if e.name == "memory_effect").table(mem)
    row = next(r for r in table.rows if "instability_probe" in r[0])
    cells = dict(zip(table.columns, row))
    assert cells["memory explains"] == "n/a (no usable memory readings)"
    assert cells["memory inside regime"] == "n/a"
    assert not any(c.strip() == "0%" for c in row)


def test_phases_say_why_nothing_was_split(results: dict[str, xr.Dataset]) -> None:
    ph = results["phases"]
    table = next(e for e in ANALYSES if e.name == "phases").table(ph)
    reasons = {dict(zip(table.columns, r))["excess decode"] for r in table.rows}
    assert reasons <= {"n/a (no phase times)", "n/a (too few budgets outside)"}
    assert "no prefill/decode times in its runs" in ph.attrs["summary"]
    mc = ph["n_split_runs"].sel(experiment="main_crossover", model="gpt2-medium", device="mps", cache=True,
                                prompt_len=65).squeeze()
    assert int(mc) == 0


def test_boundaries_summary_has_no_unknown_or_nan(results: dict[str, xr.Dataset]) -> None:
    text = results["boundaries"].attrs["summary"]
    assert "nan" not in text and "onset on unknown" not in text
    assert "with prompt_len 65 only" in text
    # the normal budget before the onset is one the series ran: prompt_ablation measured 496, 512, 624, 640
    after = results["boundaries"]["onset_after"].sel(experiment="prompt_ablation", model="gpt2-medium",
                                                      device="mps", cache=True, prompt_len=3).squeeze()
    assert float(after) == 512


def test_monotonicity_counts_measured_series(results: dict[str, xr.Dataset]) -> None:
    head = results["monotonicity"].attrs["summary"].splitlines()[0]
    # the study's 15 series with data: 9 of 2+ budgets, 6 of one; its 177 empty combinations are no series
    assert "6 of 9 series monotone" in head and "6 series with one measured budget not counted" in head
