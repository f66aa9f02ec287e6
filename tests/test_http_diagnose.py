"""``collector diagnose`` and the origin of an http dataset, against the real test server (tests/http_server.py).

The plan of an http file sends every follow-up sweep through the file's own endpoint, with the same API; the
questions a server cannot answer (the KV cache, attention and dtype it chooses, the engine, process replicates
without a fresh server) are ``not applicable`` with one line each, and one line of the plan says which. The
diagnosis runs for real through the endpoint. A file's origin names the server (software and version) and the
endpoint's host, so that files of two servers combined are two origins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.dataset.combine import ORIGIN_DIM, combine
from collector.diagnose import make_plan
from test_http_engine import served, sweep_args

pytestmark = pytest.mark.process

SERVER_ONLY = {"cache_impl", "attn", "dtype", "engine", "process"}


def test_diagnose_plans_and_runs_its_sweeps_through_the_same_endpoint(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import analysis

    out = tmp_path / "r.nc"
    with served("--step-sleep", "0.006", "--regime", "12:16:4") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2:24:2", "--trials", "3")) == 0
        capsys.readouterr()
        assert main(["diagnose", str(out), "--plan", "--json"]) == 0
        plan = json.loads(capsys.readouterr().out)
        (regime,) = plan["regimes"]
        by_name = {q["name"]: q for q in regime["questions"]}
        assert {n for n, q in by_name.items() if q["status"] == "not applicable"} == SERVER_ONLY
        assert all(by_name[n]["why"].startswith("engine http: ") for n in SERVER_ONLY)
        planned = [q for q in regime["questions"] if q["status"] == "planned"]
        assert {q["name"] for q in planned} == {"refine", "prompt_len", "warmup"}
        for q in planned:  # the same endpoint and API; no factor the server chooses
            assert f"--engine http --endpoint {url} --api completions" in q["command"]
            assert "--attn" not in q["command"] and "--cache-impl" not in q["command"]
        (scope,) = plan["scope"]
        assert scope == ("engine http: cache_impl, attn, dtype, engine, process cannot be asked of a server (not "
                         f"applicable); the other sweeps go to the file's endpoint {url.rsplit('/v1', 1)[0]}")
        # and the diagnosis runs through the endpoint (refine always runs)
        assert main(["diagnose", str(out), "--questions", "warmup", "--max-minutes", "3", "-o",
                     str(tmp_path / "d.nc")]) == 0
    text = capsys.readouterr().out
    assert "Traceback" not in text
    diag = analysis.open_dataset(str(tmp_path / "d.nc"))
    assert diag.attrs["engine"] == "http" and diag.attrs["endpoint"] == url.rsplit("/v1", 1)[0]
    ran = diag.status.values[diag.status.values != schema.STATUS["not_run"]]
    assert ran.size and np.all(ran == schema.STATUS["ok"])


def test_a_server_command_opens_the_dtype_and_process_questions(tmp_path: Path) -> None:
    out = tmp_path / "r.nc"
    with served("--step-sleep", "0.006", "--regime", "12:16:4") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2:24:2", "--trials", "3")) == 0
    ds = schema.load(out)
    spec = json.loads(ds.attrs["sweep"])
    spec["http"]["server_cmd"] = "serve --model {model} --dtype {dtype} --port {port}"
    ds.attrs.update(sweep=json.dumps(spec), isolation="model")
    plan = make_plan(ds)
    (regime,) = plan.regimes
    by_name = {q.name: q for q in regime.questions}
    assert {n for n, q in by_name.items() if q.status == "not applicable"} == {"cache_impl", "attn", "engine"}
    for name in ("dtype", "process"):  # a fresh server per process, the dtype passed to each
        assert "--server-cmd 'serve --model {model} --dtype {dtype} --port {port}'" in by_name[name].command
        assert "--isolation model" in by_name[name].command
    assert "--dtypes float32 float16" in by_name["dtype"].command
    assert plan.scope[0].startswith("engine http: cache_impl, attn, engine cannot be asked of a server")
    # a file that does not say which endpoint it swept plans nothing, and says so
    ds.attrs["sweep"] = "per origin"
    blind = make_plan(ds)
    assert not blind.planned and "does not say which endpoint" in blind.scope[0]
    assert all(q.status == "not applicable" for q in blind.regimes[0].questions)


def test_the_origin_names_the_server_and_the_endpoint_host_never_a_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-origin-0123456789"
    monkeypatch.setenv("DR_ORIGIN_KEY", secret)
    files = []
    for i in range(2):  # two servers (two endpoints), the same client host and model
        with served("--api-key", secret) as (url, _):
            path = tmp_path / f"s{i}.nc"
            assert main(sweep_args(url, path, "--budgets", "2,4,6", "--trials", "1", "--api-key-env",
                                   "DR_ORIGIN_KEY")) == 0
            files.append((path, url.rsplit("/v1", 1)[0]))
    datasets = [schema.load(p) for p, _ in files]
    for ds, (path, host) in zip(datasets, files):
        assert ds.attrs["endpoint"] == host and ds.attrs["server_software"] == "decode-regimes-test"
        assert f"to decode-regimes-test 1.0-test at {host}," in ds.attrs["protocol"]
        assert secret.encode() not in path.read_bytes()
    both = combine(datasets, [p.name for p, _ in files])
    assert both.sizes[ORIGIN_DIM] == 2  # two servers are two origins, never one
    hosts = {str(v).split(" at ")[1].split(",")[0] for v in both["protocol"].values}
    assert hosts == {h for _, h in files}
