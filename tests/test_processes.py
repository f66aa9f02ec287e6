"""Issue 21, process replicates: ``run --processes N`` (the grid as N passes, each in its own fresh worker
process, trial t in pass t % N), ``--isolation run``, the per-run ``process`` variable and the host state
(load average, CPU frequency, torch threads), schema v3 and its upgrader from v2 files.

Real sweeps of the tiny preset model on CPU in real processes (``python -m collector``), killed with
SIGKILL and resumed; plans and the upgrader need no process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from collector.dataset import schema
from collector.shared.errors import ConfigError
from collector.sweep.runner import grid_keys, pass_of, plan
from collector.sweep.spec import build_spec

ROOT = Path(__file__).resolve().parents[1]
FAULTY = str(Path(__file__).with_name("collector_with_faults.py"))
TINY = ["--models", "tiny-gpt2", "--devices", "cpu", "--prompt-lens", "4", "--warmup", "1"]
OLD = ROOT / "tests" / "data" / "real" / "cpu-idle-loop-ends-t3-on.nc"  # written by schema v2
V1 = ROOT / "tests" / "data" / "real" / "cpu-loop-ends-t3-on.nc"  # written by schema v1


def _env(faults: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("DECODE_REGIMES_FAULTS", None)
    if faults is not None:
        env["DECODE_REGIMES_FAULTS"] = faults
    return env


def _cmd(args: list[str], faults: str | None) -> list[str]:
    return [sys.executable, FAULTY, *args] if faults is not None else [sys.executable, "-m", "collector", *args]


def _cli(*args: str, cwd: Path, faults: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(list(args), faults), cwd=cwd, env=_env(faults), capture_output=True, text=True,
                          timeout=300)


def _rows(journal: Path) -> list[tuple]:
    """(model, cache, budget, trial, status, worker, pid, record JSON) of every journal row, in order."""
    if not journal.exists():
        return []
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT model, cache, budget, trial, status, worker, pid, record FROM runs "
                           "ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _spec(**kw):
    base = dict(models="gpt2", devices="sim", budgets="8:32:8", trials=4, caches="both", warmup=1)
    base.update(kw)
    return build_spec(base, defaults=False)


# --------------------------------------------------------------------------- plan and spec
def test_passes_run_one_after_the_other_with_trials_spread_over_them():
    spec = _spec(processes=2)
    seq = plan(spec)
    assert sorted(seq) == sorted(grid_keys(spec)) and len(set(seq)) == spec.n_runs
    passes = [pass_of(spec, k) for k in seq]
    assert passes == sorted(passes)  # pass 0 entirely, then pass 1
    assert all(p == k.trial % 2 for p, k in zip(passes, seq))
    for p in (0, 1):  # each cell has trials in both passes; the runs of a pass are not in grid order
        part = [k for k in seq if pass_of(spec, k) == p]
        assert {k.cell for k in part} == {k.cell for k in grid_keys(spec)}
        assert part != sorted(part)
    # one pass: the plan sweeps have always had (the grouping by pass changes nothing)
    one = _spec(processes=1)
    assert plan(one) == [k for k in plan(one)] and {pass_of(one, k) for k in plan(one)} == {0}


@pytest.mark.parametrize("isolation", ["none", "model", "cell", "run"])
def test_isolation_groups_stay_inside_their_pass(isolation):
    spec = _spec(processes=2, isolation=isolation, models="gpt2,distilgpt2")
    seq = plan(spec)
    passes = [pass_of(spec, k) for k in seq]
    assert passes == sorted(passes)
    if isolation == "cell":
        groups = [(pass_of(spec, k), k.cell) for k in seq]
        blocks = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
        assert len(blocks) == len(set(groups))


@pytest.mark.parametrize("settings, match", [
    (dict(processes=3, trials=2), r"processes must be <= trials \(2\).*processes=3"),
    (dict(processes=0), r"processes.*0"),
    (dict(processes="two"), r"processes.*'two'"),
])
def test_bad_processes_are_refused_up_front(settings, match):
    with pytest.raises(ConfigError, match=match):
        _spec(**settings)


def test_spec_without_processes_is_one_pass():
    d = _spec().to_dict()
    d.pop("processes")
    assert build_spec(d, defaults=False).processes == 1  # a journal written before --processes


# --------------------------------------------------------------------------- real sweeps
@pytest.mark.slow
@pytest.mark.process
def test_processes_2_on_tiny_gpt2_every_run_once_with_its_pass(tmp_path):
    out = _cli("run", *TINY, "--budgets", "2,4", "--cache", "both", "--trials", "4", "--processes", "2",
               "--quiet", "-o", "p.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = _rows(tmp_path / "p.journal")
    keys = [r[:4] for r in rows]
    assert len(rows) == 16 == len(set(keys))  # 2 budgets x 2 cache x 4 trials, each exactly once
    assert all(r[4] == "ok" for r in rows)
    # pass 0 (trials 0, 2) first in one worker, then pass 1 (trials 1, 3) in another, fresh process
    workers = [(r[5], r[6]) for r in rows]
    trials = [r[3] for r in rows]
    assert [t % 2 for t in trials] == sorted(t % 2 for t in trials)
    assert len(set(workers)) == 2 and workers[0] != workers[-1]
    assert {w for w, t in zip(workers, trials) if t % 2 == 0} == {workers[0]}
    ds = schema.load(tmp_path / "p.nc")
    assert ds.attrs["schema_version"] == schema.SCHEMA_VERSION and int(ds.attrs["processes"]) == 2
    proc = ds["process"].squeeze()
    np.testing.assert_array_equal(proc.values, np.broadcast_to(ds["trial"].values % 2, proc.shape))
    assert (proc.groupby("trial").map(lambda p: p.max() == p.min())).all()
    # what the host was doing, per run
    assert np.isfinite(ds["load_avg"].values).all() and (ds["load_avg"].values >= 0).all()
    assert (ds["torch_threads"].values >= 1).all()
    freq = ds["cpu_freq"].values
    assert np.isfinite(freq).all() or np.isnan(freq).all()  # readable here or nowhere
    assert "/" in str(ds.attrs["cpu_count"]) and "code_commit" in ds.attrs


@pytest.mark.process
def test_isolation_run_measures_every_run_in_a_fresh_process(tmp_path):
    out = _cli("run", "--devices", "sim", "--models", "gpt2", "--cache", "on", "--budgets", "8,16", "--trials", "2",
               "--processes", "2", "--isolation", "run", "--quiet", "-o", "r.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = _rows(tmp_path / "r.journal")
    assert len(rows) == 4 == len({r[:4] for r in rows}) == len({r[6] for r in rows})  # 4 runs, 4 processes
    ds = schema.load(tmp_path / "r.nc")
    assert ds.attrs["isolation"] == "run"
    np.testing.assert_array_equal(ds["process"].squeeze().values, np.broadcast_to([0, 1], (2, 2)))
    assert (ds["torch_threads"].values == -1).all()  # device sim: no torch in the worker


@pytest.mark.slow
@pytest.mark.process
def test_kill_9_then_resume_finishes_every_pass(tmp_path):
    """The sweep is SIGKILLed in the middle of pass 0 (runs of budget 4 take 0.5 s each); resume runs the rest
    of pass 0 in a fresh process of pass 0, then pass 1: every run exactly once, each in its pass."""
    args = ["run", *TINY, "--budgets", "2,4", "--cache", "on", "--trials", "4", "--processes", "2", "--quiet",
            "-o", "k.nc"]
    faults = "slow@budget=4"
    proc = subprocess.Popen(_cmd(args, faults), cwd=tmp_path, env=_env(faults), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "k.journal"
    deadline = time.monotonic() + 120
    while len(_rows(journal)) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the sweep recorded nothing"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = _rows(journal)
    assert 2 <= len(before) < 8 and all(r[3] % 2 == 0 for r in before)  # killed inside pass 0
    out = _cli("resume", str(journal), "--quiet", cwd=tmp_path, faults=faults)
    assert out.returncode == 0, out.stderr
    rows = _rows(journal)
    assert rows[: len(before)] == before  # nothing recorded before is lost or changed
    assert len(rows) == 8 == len({r[:4] for r in rows})
    pass0 = [r for r in rows if r[3] % 2 == 0]
    pass1 = [r for r in rows if r[3] % 2 == 1]
    assert len(pass0) == len(pass1) == 4
    assert rows.index(pass0[-1]) < rows.index(pass1[0])  # pass 0 finished before pass 1 began
    assert {r[6] for r in pass0[len(before):]}.isdisjoint({r[6] for r in before})  # in a fresh process
    assert {r[6] for r in pass1}.isdisjoint({r[6] for r in pass0})
    ds = schema.load(tmp_path / "k.nc")
    assert (ds["status"] == 0).all()
    proc_var = ds["process"].squeeze()
    np.testing.assert_array_equal(proc_var.values, np.broadcast_to(ds["trial"].values % 2, proc_var.shape))


# --------------------------------------------------------------------------- schema v3
def test_upgrader_opens_a_committed_v2_file():
    with xr.open_dataset(OLD) as raw:
        assert raw.attrs["schema_version"] == "2" and "process" not in raw
        latency = raw["latency"].values.copy()
    ds = schema.load(OLD)
    assert ds.attrs["schema_version"] == schema.SCHEMA_VERSION and "v2 -> v3" in ds.attrs["upgraded"]
    assert "v2 -> v3" in ds.attrs["history"].splitlines()[-2] and "v3 -> v4" in ds.attrs["history"].splitlines()[-1]
    for name in ("process", "torch_threads"):
        assert ds[name].dtype == np.int32 and (ds[name] == -1).all()
    for name in ("load_avg", "cpu_freq"):
        assert np.isnan(ds[name].values).all()
    assert ds["process"].dims == ds["status"].dims
    np.testing.assert_array_equal(ds["latency"].values.ravel(), latency.ravel())
    assert "units" in ds["cpu_freq"].attrs and "flag_values" not in ds["process"].attrs


def test_a_v1_file_goes_through_both_upgrades():
    ds = schema.load(V1)
    assert ds.attrs["schema_version"] == schema.SCHEMA_VERSION
    note = ds.attrs["upgraded"]
    assert note.startswith("schema v1 -> v2") and note.index("schema v1 -> v2") < note.index("schema v2 -> v3")
    assert ds.sizes["attn"] == 1 and (ds["process"] == -1).all()


def test_upgraded_file_saves_and_reopens_as_v3(tmp_path):
    ds = schema.load(OLD)
    schema.save(ds, tmp_path / "v3.nc")
    again = schema.load(tmp_path / "v3.nc")
    assert again.attrs["upgraded"] == ds.attrs["upgraded"]  # not upgraded a second time
    xr.testing.assert_identical(again[["process", "torch_threads", "load_avg", "latency"]],
                                ds[["process", "torch_threads", "load_avg", "latency"]])


def test_upgrader_keeps_a_lazy_file_lazy():
    ds = schema.load(OLD, chunks={})
    assert ds["process"].chunks is not None
    assert int(ds["process"].max().compute()) == -1
