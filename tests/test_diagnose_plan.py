"""``collector diagnose RUN.nc --plan``: the follow-up sweeps of each regime, their runs and minutes, --max-minutes."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis import synthetic
from collector.__main__ import _settings, build_parser
from collector.diagnose import QUESTIONS, make_plan
from collector.diagnose.plan import STARTUP_S
from collector.shared.errors import ConfigError
from collector.sweep.spec import build_spec
from processes import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study() -> xr.Dataset:
    return analysis.open_dataset(ROOT / "datasets" / "mps-m3max-study.nc")


def test_study_regimes_become_one_plan_per_sweep_series(study: xr.Dataset) -> None:
    plan = make_plan(study)
    labels = [r.label for r in plan.regimes]
    assert len(plan.regimes) == 4, labels  # 7 regimes in 4 experiments, 4 distinct sweep series
    medium = next(r for r in plan.regimes if r.series["model"] == "gpt2-medium" and r.series["cache"]
                  and r.series["prompt_len"] == 65)
    assert (medium.first_budget, medium.last_budget) == (512, 624)
    assert len(medium.seen_in) == 4 and all(s.startswith("experiment=") for s in medium.seen_in)
    assert [q.name for q in medium.questions] == list(QUESTIONS)
    assert all(q.status == "planned" for r in plan.regimes for q in r.questions if q.status != "not applicable")
    refine = medium.questions[0]
    assert refine.settings["budgets"] == [496, 512, 624, 640] and refine.settings["refine"] == 1
    assert refine.settings["trials"] == 3  # the file has 1 trial: at least 3
    cache_off = next(r for r in plan.regimes if not r.series["cache"])
    impl = next(q for q in cache_off.questions if q.name == "cache_impl")
    assert impl.status == "not applicable" and "cache is off" in impl.why and impl.command == ""


def test_every_planned_command_is_a_valid_run(study: xr.Dataset) -> None:
    parser = build_parser()
    for r in make_plan(study).regimes:
        for q in r.questions:
            if not q.command:
                continue
            words = shlex.split(q.command)
            assert words[:4] == ["python", "-m", "collector", "run"]
            args = parser.parse_args(words[3:])
            spec = build_spec(_settings(args))
            assert spec.trials == 3 and set(spec.budgets) == set(q.settings["budgets"]), q.command


def test_estimates_come_from_the_files_run_times(study: xr.Dataset) -> None:
    plan = make_plan(study)
    assert math.isnan(plan.overhead_s)  # the study published no start times
    large = plan.regimes[0]
    assert large.series["model"] == "gpt2-large" and large.first_budget == 384
    process = next(q for q in large.questions if q.name == "process")
    lat = study["latency"].sel(model="gpt2-large", device="mps", cache=True, prompt_len=65).median(
        dim=["experiment", "dtype", "attn", "cache_impl", "trial"])
    seconds = float(lat.sel(budget=[256, 384, 512]).sum())
    warmup = int(study.attrs["warmup"])
    assert process.runs == 9
    # the runs and warm-ups, and a fresh worker for each of the 3 processes (the study shows no worker start)
    assert process.minutes == pytest.approx((seconds * (3 + warmup * 3) + 3 * STARTUP_S) / 60)
    assert any("fresh worker process costs 20 s" in n for n in plan.notes)


def test_overhead_is_read_from_start_times() -> None:
    ds = synthetic.make_dataset(seed=0)  # runs back to back, 50 ms apart
    plan = make_plan(ds)
    assert plan.overhead_s == pytest.approx(0.05, abs=0.01)
    assert plan.regimes, "the default synthetic dataset plants a regime"


def test_max_minutes_is_respected(study: xr.Dataset) -> None:
    full = make_plan(study)
    plan = make_plan(study, max_minutes=60)
    assert 0 < plan.minutes <= 60 < full.minutes
    left = [q for r in plan.regimes for q in r.questions if q.status == "left out"]
    assert left and all("of --max-minutes 60 left" in q.why for q in left)
    assert plan.regimes[0].questions[0].status == "planned"  # the largest regime's refinement comes first
    assert "left out" in plan.summary()
    data = plan.to_dict()
    assert json.loads(json.dumps(data))["max_minutes"] == 60


def test_nothing_to_diagnose_on_a_null_sweep() -> None:
    plan = make_plan(synthetic.make_dataset(seed=1, regimes=()))
    assert plan.regimes == () and plan.summary().startswith("nothing to diagnose")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_minutes": 0}, r"max_minutes must be a positive number of minutes, got 0"),
    ({"max_minutes": float("nan")}, r"got nan"),
    ({"trials": 0}, r"trials must be an integer >= 1, got 0"),
])
def test_bad_settings(study: xr.Dataset, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_plan(study, **kwargs)


@pytest.mark.process
def test_cli_plan_json() -> None:
    res = cli("diagnose", "datasets/mps-m3max-study.nc", "--plan", "--max-minutes", "90", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["max_minutes"] == 90 and data["minutes"] <= 90 and len(data["regimes"]) == 4
    assert data["regimes"][0]["questions"][0]["command"].startswith("python -m collector run --models gpt2-large")


@pytest.mark.process
@pytest.mark.parametrize(("args", "message"), [
    (["datasets/mps-m3max-study.nc", "--plan", "--trials", "0"], "error: --trials must be an integer >= 1, got '0'"),
    (["no-such.nc", "--plan"], "error: no such dataset file or published dataset: 'no-such.nc'"),
    (["mps-m3max-study", "--plan", "--max-minutes", "soon"], "error: --max-minutes must be a positive number"),
])
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    res = cli("diagnose", *args)
    assert res.returncode == 2 and res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr


def test_a_fresh_worker_costs_what_the_files_workers_show() -> None:
    from collector.diagnose.plan import _startup

    ds = synthetic.make_dataset(seed=0)
    assert math.isnan(_startup(ds))  # one worker: nothing to read (the plan then states STARTUP_S)
    t0 = np.datetime64("2026-01-01T00:00:00", "ns")
    n = ds["latency"].size
    lat = np.full(n, 0.5)
    start = t0 + (np.arange(n) * 0.5e9).astype("timedelta64[ns]")
    worker = np.repeat(np.arange(4), -(-n // 4))[:n]
    start = start + (worker * 7e9).astype("timedelta64[ns]")  # each new worker starts 7 s after the last run
    shaped = ds["latency"].shape
    ds = ds.assign(latency=(ds["latency"].dims, lat.reshape(shaped)),
                   started_at=(ds["latency"].dims, start.reshape(shaped)),
                   worker=(ds["latency"].dims, worker.reshape(shaped)))
    assert _startup(ds) == pytest.approx(7.0)


def test_a_plan_over_the_simulator_and_a_real_device_states_both_assumed_starts() -> None:
    """Without worker starts in the file, a sim series is planned with STARTUP_SIM_S and a real one with STARTUP_S:
    the note names both (it named only the first series' value)."""
    from collector.diagnose.plan import STARTUP_SIM_S

    ds = synthetic.make_dataset(seed=0, devices=("sim", "cpu"), models=("gpt2",), caches=(True,),
                                regimes=[synthetic.Regime(200, 240, 5.0, device="sim", cache=True),
                                         synthetic.Regime(200, 240, 5.0, device="cpu", cache=True)])
    plan = make_plan(ds)
    assert {r.series["device"] for r in plan.regimes} == {"sim", "cpu"}
    note = next(n for n in plan.notes if "fresh worker process costs" in n)
    assert f"costs {STARTUP_SIM_S:.0f} s or {STARTUP_S:.0f} s" in note
    assert "for the simulator" in note and "for a real device" in note
