"""Issue 21, many devices through dask.distributed: a sweep's runs on the workers of a real ``LocalCluster`` (2 worker
processes, CPU, the tiny preset model), every record journalled once on the client, also when one worker is killed
in the middle of the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from collector import schema
from collector.environment import collect
from collector.errors import ConfigError
from collector.export import to_dataset
from collector.spec import build_spec
from collector.sweep.journal import Journal
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
