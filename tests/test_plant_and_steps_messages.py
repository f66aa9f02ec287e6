"""plant refuses an interval with no measured run; steps on an ``ends`` sweep says how to get per-step times
(issue 20). On real files: a CPU sweep timed ``ends`` (budgets 16-256) and the published study."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import analysis
from analysis.errors import InputError
from collector.dataset import schema

ROOT = Path(__file__).resolve().parents[1]
ENDS = ROOT / "tests" / "data" / "real" / "cpu-loop-ends-t3-on.nc"
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"


@pytest.fixture(scope="module")
def ends():
    return analysis.open_dataset(ENDS)


def test_plant_refuses_an_interval_below_the_measured_budgets(ends) -> None:
    assert int(ends["budget"].min()) == 16
    with pytest.raises(InputError, match=r"budget in \[8, 12\].*measured budgets are 16-256 \(16 values\)"):
        analysis.plant(ends, 8, 12, 2.0)


def test_plant_refuses_total_lengths_never_run(ends) -> None:
    with pytest.raises(InputError, match=r"total length in \[300, 400\].*total lengths \(prompt \+ budget\) are "):
        analysis.plant(ends, 300, 400, 2.0, onset="total")


def test_plant_refuses_where_it_would_plant_nothing() -> None:
    study = analysis.open_dataset(STUDY)
    main = study["experiment"] == "main_crossover"
    # main_crossover never ran budgets 528-624; the probe did
    with pytest.raises(InputError, match=r"in the series chosen by where"):
        analysis.plant(study, 528, 624, 2.0, where=main)
    planted = analysis.plant(study, 528, 624, 2.0, where=study["experiment"] == "instability_probe")
    assert int(planted["truth_anomalous"].sum()) == 7


def test_plant_still_plants_an_interval_partly_measured(ends) -> None:
    out = analysis.plant(ends, 8, 16, 2.0)  # only 16 was measured: it is planted
    assert sorted(set(out["budget"].where(out["truth_anomalous"].any([d for d in out["truth_anomalous"].dims
                                                                        if d != "budget"])).dropna("budget")
                      .values.astype(int).tolist())) == [16]


@pytest.mark.parametrize(("path", "why"), [
    (ENDS, "it was timed with --timing ends"),
    (STUDY, "it was timed with --timing ends"),  # the study's published whole-generation times (timing_note)
    ("claims-step", "its attrs say timing='step' but it holds none"),
])
def test_steps_says_in_one_line_how_to_get_step_times(path: Path | str, why: str, tmp_path: Path) -> None:
    if path == "claims-step":  # a file whose attrs claim per-step timing without step_time (older imports did)
        ds = schema.load(ENDS)
        path = tmp_path / "claims-step.nc"
        schema.save(ds.assign_attrs(timing="step"), path)
    proc = subprocess.run([sys.executable, "-m", "analysis", "steps", str(path), "--all"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert why in lines[0] and "--timing step" in lines[0] and "Traceback" not in proc.stderr
