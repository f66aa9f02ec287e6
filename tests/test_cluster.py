"""Issue 21, many devices through dask.distributed: a sweep's runs on the workers of a real ``LocalCluster`` (2 worker
processes, CPU, the tiny preset model), every record journalled once on the client, also when one worker is killed
in the middle of the sweep; each worker's host (named by ``DECODE_REGIMES_HOST``) is an origin of the dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import analysis
from collector.dataset import schema
from collector.dataset.combine import ORIGIN_DIM
from collector.dataset.export import export, to_dataset
from collector.measuring.environment import HOST_ENV, collect
from collector.shared.errors import ConfigError
from collector.sweep.journal import Journal
from collector.sweep.spec import build_spec
from processes import gone

distributed = pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]

from collector.sweep.cluster import connect, run_on_cluster  # noqa: E402


def _spec(**kw):
    base = dict(models="tiny-gpt2", devices="cpu", budgets="2,4,6", trials=2, caches="both", prompt_lens="4",
                warmup=1, processes=2)
    base.update(kw)
    return build_spec(base, defaults=False)


def _journal(tmp_path, spec):
    return Journal.create(tmp_path / "c.journal", spec=spec.to_dict(), environment=collect(spec.devices),
                          command="test")


@pytest.fixture(scope="module")
def client():
    with connect(local_workers=2, resources={"cpu": 1}) as c:
        c.wait_for_workers(2, timeout=120)
        yield c
        c.cluster.close()


@pytest.mark.slow
@pytest.mark.process
def test_every_run_lands_once_even_when_a_worker_is_killed(tmp_path, client):
    spec = _spec()
    pids = list(client.run(os.getpid).values())
    assert len(pids) == 2
    seen: list = []
    killed_at: list = []

    def kill_one_after_a_few_runs():
        deadline = time.monotonic() + 240
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        killed_at.append(len(seen))

    killer = threading.Thread(target=kill_one_after_a_few_runs, daemon=True)
    killer.start()
    with _journal(tmp_path, spec) as j:
        res = run_on_cluster(spec, j, client, on_event=lambda e: e.kind == "run" and seen.append(e.key))
        rows = list(j.rows())
        ds = schema.validate(to_dataset(j))
    killer.join(5)
    assert killed_at and killed_at[0] < spec.n_runs  # the worker died in the middle of the sweep
    assert gone(pids[0])
    assert not res.interrupted and res.failed == 0
    keys = [r.key for r in rows]
    assert len(keys) == spec.n_runs == len(set(keys))  # every run exactly once
    assert (ds["status"] == 0).all()
    proc = ds["process"].squeeze()
    np.testing.assert_array_equal(proc.values, np.broadcast_to(ds["trial"].values % 2, proc.shape))
    assert len({r.pid for r in rows}) >= 2  # measured by more than one measuring process


@pytest.mark.process
def test_a_device_no_worker_offers_is_refused_before_any_run(tmp_path, client):
    spec = _spec(devices="sim", models="gpt2")
    with _journal(tmp_path, spec) as j:
        with pytest.raises(ConfigError, match=r"no dask worker offers resource 'sim'.*--resources sim=1"):
            run_on_cluster(spec, j, client)
        assert j.count() == 0


@pytest.mark.process
def test_cli_cluster_local_runs_the_sweep_through_dask(tmp_path):
    out = subprocess.run([sys.executable, "-m", "collector", "run", "--cluster", "local", "--devices", "sim",
                          "--models", "gpt2", "--cache", "on", "--budgets", "8,16", "--trials", "2", "--processes", "2",
                          "--quiet", "-o", "d.nc"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    ds = schema.load(tmp_path / "d.nc")
    assert (ds["status"] == 0).all() and int((ds["process"] >= 0).sum()) == 4


@pytest.mark.process
def test_cli_unreachable_scheduler_is_one_line_before_any_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "collector", "run", "--scheduler", "tcp://127.0.0.1:9", "--devices",
                          "sim", "--models", "gpt2", "--budgets", "8", "--trials", "1", "-o", "u.nc"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the dask scheduler 'tcp://127.0.0.1:9'"), out.stderr
    assert "Traceback" not in out.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.process
def test_each_host_is_an_origin_of_the_dataset(tmp_path, client):
    client.wait_for_workers(2, timeout=120)  # the worker killed above is back (a fresh process)

    def name_host(name: str) -> None:  # defined here: sent to the worker by value
        os.environ[HOST_ENV] = name

    addresses = sorted(client.scheduler_info()["workers"])
    assert len(addresses) == 2
    for name, address in zip(("host-a", "host-b"), addresses):
        client.run(name_host, name, workers=[address])
    spec = _spec(budgets="2,4,6,8", processes=1)
    with _journal(tmp_path, spec) as j:
        res = run_on_cluster(spec, j, client)
        rows = list(j.rows())
        hosts, run_hosts = j.hosts(), j.run_hosts()
    assert not res.interrupted and res.failed == 0
    keys = [r.key for r in rows]
    assert len(keys) == spec.n_runs == len(set(keys))  # every run exactly once
    assert set(hosts) == {"host-a", "host-b"} == set(run_hosts.values())  # both workers measured runs
    assert sorted(run_hosts) == sorted(r.id for r in rows)
    for name, env in hosts.items():  # each host's own environment, as a local sweep records it
        assert env["host"] == name and env["torch_version"] and env["processor"] and env["cpu_count"]

    path = export(tmp_path / "c.journal", tmp_path / "c.nc")
    ds = analysis.open_dataset(path)
    assert list(ds[ORIGIN_DIM].values) == ["host-a", "host-b"]
    assert list(ds["host"].values) == ["host-a", "host-b"] and ds.attrs["host"] == schema.PER_ORIGIN
    ok = (ds["status"] == schema.STATUS["ok"])
    assert int(ok.sum()) == spec.n_runs and int(ok.any(ORIGIN_DIM).sum()) == spec.n_runs  # each run in one origin
    by_host = {h: sum(1 for v in run_hosts.values() if v == h) for h in hosts}
    assert {h: int(ok.sel({ORIGIN_DIM: h}).sum()) for h in hosts} == by_host
    np.testing.assert_array_equal(  # order and worker stay journal-wide
        np.sort(ds["order"].where(ok).max(ORIGIN_DIM).values[ok.any(ORIGIN_DIM).values]), np.arange(spec.n_runs))
    backends = analysis.compare_backends(ds)
    assert list(backends[ORIGIN_DIM].values) == ["host-a", "host-b"]
    assert int(backends["n_series"].sum()) > 0
    both = analysis.compare(ds.sel({ORIGIN_DIM: "host-a"}), ds.sel({ORIGIN_DIM: "host-b"}), labels=("host-a", "host-b"))
    assert "ratio" in both and both.attrs["summary"]


def _host_journal(tmp_path, hosts_of_runs):
    """A journal of a sim sweep whose runs are recorded as measured by the given hosts (None: the sweep's process)."""
    import datetime as dt

    from collector.shared.record import RunRecord
    from collector.sweep.runner import plan

    spec = _spec(devices="sim", models="gpt2", caches="on", budgets="8,16", trials=2, processes=1)
    env = {**collect(spec.devices), "host": "client"}
    j = Journal.create(tmp_path / "h.journal", spec=spec.to_dict(), environment=env, command="test")
    for i, (key, host) in enumerate(zip(plan(spec), hosts_of_runs)):
        if host is not None and host not in j.hosts():
            j.set_host(host, {**env, "host": host, "gpu_name": f"chip of {host}"})
        rec = RunRecord(**key.cell._asdict(), latency=0.1 + i / 100, prefill_time=0.01, decode_time=0.09 + i / 100,
                        tokens=key.budget, n_params=124, weights="random", architecture="gpt2", process=0,
                        started_at=dt.datetime(2026, 1, 1, 0, 0, i, tzinfo=dt.timezone.utc))
        j.add(key, rec, worker=i % 2, pid=100 + i, planned=i, host=host)
    return spec, j


def test_runs_of_two_hosts_and_the_client_export_as_one_origin_each(tmp_path):
    spec, j = _host_journal(tmp_path, ["mac-2", "mac-1", None, "mac-2"])
    with j:
        ds = schema.validate(to_dataset(j))
        rows = list(j.rows())
    assert list(ds[ORIGIN_DIM].values) == ["client", "mac-1", "mac-2"]  # the client's own run is its own origin
    assert list(ds["gpu_name"].values) == ["", "chip of mac-1", "chip of mac-2"]
    assert ds.attrs["host"] == ds.attrs["gpu_name"] == schema.PER_ORIGIN and ds.attrs["command"] == "test"
    ok = ds["status"] == schema.STATUS["ok"]
    assert [int(ok.sel({ORIGIN_DIM: o}).sum()) for o in ("client", "mac-1", "mac-2")] == [1, 1, 2]
    assert int(ok.any(ORIGIN_DIM).sum()) == spec.n_runs == 4
    for i, (r, host) in enumerate(zip(rows, ["mac-2", "mac-1", "client", "mac-2"])):  # order stays journal-wide
        cell = {d: getattr(r.key, d) for d in schema.SWEEP_DIMS}
        assert int(ds["order"].sel(cell).sel({ORIGIN_DIM: host})) == i
        assert float(ds["latency"].sel(cell).sel({ORIGIN_DIM: host})) == r.record.latency
    assert json.loads(ds.attrs["failures"]) == []
    assert json.loads(str(ds["files"].values[0])) == ["h.journal"]
    from collector.sweep.progress import summary_rows

    assert [(r["origin"], r["ok"], r["not_run"]) for r in summary_rows(ds)] == [("client", 1, 0), ("mac-1", 1, 0),
                                                                                ("mac-2", 2, 0)]


def test_a_journal_of_one_host_is_one_dataset_with_that_hosts_environment(tmp_path):
    spec, j = _host_journal(tmp_path, ["mac-1"] * 4)
    with j:
        ds = schema.validate(to_dataset(j))
    assert ORIGIN_DIM not in ds.dims and ds.attrs["host"] == "mac-1" and ds.attrs["gpu_name"] == "chip of mac-1"
    assert int((ds["status"] == 0).sum()) == 4


def test_a_journal_without_hosts_exports_with_its_own_environment(tmp_path):
    spec, j = _host_journal(tmp_path, [None] * 4)
    with j:
        ds = schema.validate(to_dataset(j))
        env = j.environment
    assert ORIGIN_DIM not in ds.dims and ds.attrs["host"] == "client"
    assert all(ds.attrs[k] == v for k, v in env.items())
