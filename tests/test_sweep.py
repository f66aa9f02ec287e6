"""Sweep execution: order, isolation, faults, interruption and resume (real worker processes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.dataset import schema
from collector.dataset.export import to_dataset
from collector.measuring.environment import collect
from collector.sweep.journal import Journal, RunKey
from collector.sweep.runner import SequentialOrderWarning, grid_keys, plan, run_seed, run_sweep
from collector.sweep.spec import build_spec
from collector.sweep.worker import FAULTS_ENV, failure_status, fault_for, parse_faults


def _spec(**kw):
    base = dict(models="gpt2", devices="sim", budgets="8:32:8", trials=2, caches="both", warmup=1)
    base.update(kw)
    return build_spec(base, defaults=False)


def _journal(tmp_path, spec, name="s.journal"):
    return Journal.create(tmp_path / name, spec=spec.to_dict(), environment=collect(spec.devices), command="test")


# --------------------------------------------------------------------------- planning
def test_plan_is_a_seeded_permutation_of_the_grid():
    spec = _spec()
    keys = grid_keys(spec)
    p0, p1, p2 = plan(spec), plan(spec), plan(spec.replace(seed=1))
    assert sorted(p0) == sorted(keys) and len(set(p0)) == len(keys) == spec.n_runs
    assert p0 == p1
    assert p0 != p2
    assert p0 != keys  # shuffled


def test_sequential_order_is_grid_order():
    spec = _spec(order="sequential")
    assert plan(spec) == grid_keys(spec)


@pytest.mark.parametrize("isolation, group", [("cell", lambda k: k.cell), ("model", lambda k: (k.model, k.device, k.dtype))])
def test_isolation_groups_runs_contiguously(isolation, group):
    spec = _spec(models="gpt2,distilgpt2", isolation=isolation)
    seq = plan(spec)
    groups = [group(k) for k in seq]
    # each group appears as one contiguous block
    blocks = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(blocks) == len(set(groups))
    assert sorted(seq) == sorted(grid_keys(spec))


def test_run_seed_depends_on_key_and_seed_only():
    k = RunKey.from_mapping(dict(model="gpt2", device="sim", dtype="float32", cache=True, prompt_len=8, budget=16, trial=0))
    assert run_seed(0, k) == run_seed(0, RunKey(*k))
    assert run_seed(0, k) != run_seed(1, k)
    assert run_seed(0, k) != run_seed(0, k._replace(trial=1))


# --------------------------------------------------------------------------- faults
def test_parse_faults_and_match():
    faults = parse_faults("raise@budget=8,trial=1; timeout@cache=off")
    k = RunKey.from_mapping(dict(model="gpt2", device="sim", dtype="float32", cache=True, prompt_len=8, budget=8, trial=1))
    assert fault_for(k, faults) == "raise"
    assert fault_for(k._replace(trial=0), faults) is None
    assert fault_for(k._replace(trial=0, cache=False), faults) == "timeout"


@pytest.mark.parametrize("text, match", [("explode@budget=8", "unknown fault 'explode'"),
                                         ("raise@colour=red", "bad fault condition 'colour=red'"),
                                         ("raise@budget", "bad fault condition 'budget'")])
def test_parse_faults_rejects_bad_entries(text, match):
    from collector.shared.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        parse_faults(text)


def test_failure_status_classifies_memory_errors():
    assert failure_status(MemoryError()) == "oom"
    assert failure_status(RuntimeError("CUDA out of memory. Tried to allocate")) == "oom"
    assert failure_status(ValueError("x")) == "error"


@pytest.mark.process
def test_raise_timeout_oom_and_crash_become_status_rows(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "raise@budget=8,trial=0,cache=on;timeout@budget=16,trial=1,cache=on;"
                                   "oom@budget=24,trial=0,cache=off;crash@budget=32,trial=1,cache=off")
    spec = _spec(timeout=1.5)
    with _journal(tmp_path, spec) as j:
        res = run_sweep(spec, j)
        ds = schema.validate(to_dataset(j))
        rows = list(j.rows())
    assert not res.interrupted and res.in_journal == spec.n_runs and res.failed == 4
    st = ds["status"].squeeze()

    def at(cache, budget, trial):
        return int(st.sel(cache=cache, budget=budget, trial=trial))

    assert at(True, 8, 0) == schema.STATUS["error"]
    assert at(True, 16, 1) == schema.STATUS["timeout"]
    assert at(False, 24, 0) == schema.STATUS["oom"]
    assert at(False, 32, 1) == schema.STATUS["error"]
    assert int((st == schema.STATUS["ok"]).sum()) == spec.n_runs - 4
    failures = {(f["run"]["prompt_len"], f["run"]["budget"], f["run"]["trial"]): f for f in json.loads(ds.attrs["failures"])}
    assert "fault injected" in failures[(8, 8, 0)]["error"]
    assert "timeout" in failures[(8, 16, 1)]["error"]
    assert "SIGSEGV" in failures[(8, 32, 1)]["error"]
    assert "MemoryError" in failures[(8, 24, 0)]["error"]
    # the timeout and the crash each cost a worker; the sweep went on in a fresh one (a crash by a signal is
    # first taken for a kill from outside and run again in a fresh worker: it is the run's failure when it repeats)
    assert res.retried == 1
    for i, r in enumerate(rows):
        if r.record.status == "timeout" or "SIGSEGV" in r.record.error:
            assert all(later.worker > r.worker for later in rows[i + 1:])
        elif i + 1 < len(rows) and "SIGSEGV" not in rows[i + 1].record.error:
            assert rows[i + 1].worker == r.worker
    assert np.isnan(ds["latency"].where(st != 0)).all()


# --------------------------------------------------------------------------- end to end, interrupt, resume
@pytest.mark.process
def test_sim_sweep_exports_a_valid_simulated_dataset(tmp_path):
    spec = _spec(sim={"regimes": [{"start": 16, "end": 16, "factor": 4.0}]}, timing="step")
    with _journal(tmp_path, spec) as j:
        res = run_sweep(spec, j)
        ds = schema.validate(to_dataset(j))
    assert res.in_journal == spec.n_runs and res.failed == 0
    assert ds.attrs["simulated"] == 1 and ds.attrs["run_order"] == "random"
    assert (ds["status"] == 0).all()
    assert sorted(ds["order"].values.ravel().tolist()) == list(range(spec.n_runs))
    truth = ds["truth_anomalous"].squeeze()
    assert bool(truth.sel(cache=True, budget=16).all()) and int(truth.sum()) == 2
    lat = ds["latency"].squeeze().sel(cache=True).median("trial")
    assert float(lat.sel(budget=16)) > 2.0 * float(lat.sel(budget=24))  # the planted spike is there
    steps = ds["step_time"].squeeze().sel(cache=True, budget=8, trial=0)
    assert int(np.isfinite(steps).sum()) == 8
    np.testing.assert_allclose(float(steps.sum()), float(ds["latency"].squeeze().sel(cache=True, budget=8, trial=0)),
                               rtol=1e-5)


@pytest.mark.process
def test_stop_then_resume_runs_exactly_the_missing_runs(tmp_path):
    spec = _spec()
    calls = {"n": 0}

    def stop_after_5():
        return calls["n"] >= 5

    def count(e):
        if e.kind == "run":
            calls["n"] += 1

    with _journal(tmp_path, spec) as j:
        first = run_sweep(spec, j, on_event=count, should_stop=stop_after_5)
        done_before = {r.key: r.record for r in j.rows()}
    assert first.interrupted and first.recorded == 5 and len(done_before) == 5
    with Journal.open(tmp_path / "s.journal", write=True) as j:
        second = run_sweep(spec, j)
        rows = list(j.rows())
    assert not second.interrupted and second.recorded == spec.n_runs - 5
    assert len(rows) == spec.n_runs == len({r.key for r in rows})
    for r in rows:
        if r.key in done_before:
            assert r.record == done_before[r.key]
    # resumed sim values equal an uninterrupted sweep's (seeds and positions are fixed by the plan)
    with _journal(tmp_path, spec, "ref.journal") as j:
        run_sweep(spec, j)
        ref = to_dataset(j)
    with Journal.open(tmp_path / "s.journal") as j:
        got = to_dataset(j)
    np.testing.assert_allclose(got["latency"].values, ref["latency"].values, rtol=1e-12)


@pytest.mark.process
def test_sequential_order_warns(tmp_path):
    spec = _spec(order="sequential", budgets="8", trials=1, caches="on")
    with _journal(tmp_path, spec) as j, pytest.warns(SequentialOrderWarning, match="slow episode"):
        run_sweep(spec, j)


@pytest.mark.process
def test_isolation_cell_uses_one_fresh_worker_per_cell(tmp_path):
    spec = _spec(isolation="cell", budgets="8,16", trials=2, caches="on")
    with _journal(tmp_path, spec) as j:
        run_sweep(spec, j)
        rows = list(j.rows())
    by_cell: dict = {}
    for r in rows:
        by_cell.setdefault(r.key.cell, set()).add((r.worker, r.pid))
    assert all(len(v) == 1 for v in by_cell.values())
    assert len({next(iter(v)) for v in by_cell.values()}) == 2


@pytest.mark.slow
@pytest.mark.process
def test_real_cpu_sweep_on_tiny_gpt2(tmp_path):
    spec = build_spec(dict(models="tiny-gpt2", devices="cpu", budgets="2,6", trials=2, caches="both", warmup=1,
                           timing="step"), defaults=False)
    with _journal(tmp_path, spec) as j:
        res = run_sweep(spec, j)
        ds = schema.validate(to_dataset(j))
        info = j.model_info()
    assert res.failed == 0 and res.in_journal == 8
    assert ds.attrs["simulated"] == 0 and ds.attrs["torch_version"]
    assert (ds["status"] == 0).all() and (ds["tokens"].squeeze().sel(budget=6) == 6).all()
    assert info["tiny-gpt2"]["architecture"] == "GPT2LMHeadModel" and int(ds["n_params"][0]) > 0
    assert res.measured_time > 0 and res.setup_time > 0
