"""``python -m collector``: errors, run/resume/export/merge/info/models, kill -9 and Ctrl-C (real processes)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.sweep.journal import Journal
from processes import cli, gone

SIM = ["--devices", "sim", "--models", "gpt2"]


def _popen(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "collector", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


# --------------------------------------------------------------------------- errors: one line, exit 2, nothing created
@pytest.mark.parametrize("args, match", [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--cache", "sometimes"], "invalid choice: 'sometimes'"),
    (["run", *SIM, "--budgets", "8:4"], "stop 4 < start 8"),
    (["run", *SIM, "--budgets", "0,8"], "budgets must be >= 1, got 0"),
    (["run", *SIM, "--trials", "zero"], "trials must be integers, got 'zero'"),
    (["run", "--devices", "sim", "--models", "no-such-model"], "unknown model 'no-such-model'"),
    (["run", "--devices", "cpu", "--models", "no/such-model-anywhere"], "unknown model 'no/such-model-anywhere'"),
    (["run", "--devices", "tpu", "--models", "gpt2"], "unknown device 'tpu'"),
    (["run", "--config", "missing.toml"], "cannot read config 'missing.toml'"),
    (["run", "--config", "bad.toml"], "is not valid TOML"),
    (["run", "--config", "unknown.toml"], "unknown sweep setting 'colour'"),
    (["run", "--config", "badsim.toml"], "unknown sim setting 'nosie_cv'"),
    (["resume", "nope.journal"], "no journal at 'nope.journal'"),
    (["export", "nope.journal"], "no journal at 'nope.journal'"),
])
def test_errors_are_one_line_exit_2_and_create_nothing(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("models = [gpt2\n")
    (tmp_path / "unknown.toml").write_text('[sweep]\nmodels = ["gpt2"]\ncolour = "red"\n')
    (tmp_path / "badsim.toml").write_text('devices = ["sim"]\nmodels = ["gpt2"]\n[sim]\nnosie_cv = 0.1\n')
    before = set(os.listdir(tmp_path))
    assert main([*args, "-o", "out.nc"] if args[0] == "run" else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err
    assert set(os.listdir(tmp_path)) == before


@pytest.mark.process
def test_unavailable_device_is_refused(tmp_path, monkeypatch, capsys):
    from collector.measuring.environment import available_devices

    missing = [d for d in ("cuda", "mps") if d not in available_devices()]
    if not missing:
        pytest.skip("every device is available here")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--devices", missing[0], "--models", "tiny-gpt2", "-o", "x.nc"]) == 2
    err = capsys.readouterr().err
    assert f"device {missing[0]!r} is not available" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.process
def test_error_in_a_real_process_has_no_traceback(tmp_path):
    out = cli("run", "--devices", "sim", "--models", "nope", "-o", "x.nc", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "unknown model 'nope'" in out.stderr
    assert os.listdir(tmp_path) == []


def test_existing_journal_or_output_is_not_overwritten(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", *SIM, "--budgets", "8,16", "--trials", "1", "--quiet", "-o", "a.nc"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


# --------------------------------------------------------------------------- commands
@pytest.mark.process
def test_run_with_toml_and_flags_then_export_merge(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        '[sweep]\nmodels = "gpt2"\ndevices = ["sim"]\nbudgets = "8:32:8"\ntrials = 2\ncache = "on"\n'
        '[sim]\nnoise_cv = 0.01\n[[sim.regimes]]\nstart = 16\nend = 16\nfactor = 5.0\n')
    assert main(["run", "--config", "s.toml", "--trials", "3", "-o", "a.nc"]) == 0
    out = capsys.readouterr().out
    assert "wrote a.nc" in out and "python -m analysis regimes a.nc" in out
    ds = schema.load("a.nc")
    assert ds.sizes["trial"] == 3 and (ds["status"] == 0).all()  # the flag won over the file
    assert json.loads(ds.attrs["sim_model"])["noise_cv"] == 0.01
    assert ds.attrs["command"].startswith("python -m collector run --config s.toml")
    # export again elsewhere; same data
    assert main(["export", "a.journal", "-o", "b.nc"]) == 0
    np.testing.assert_array_equal(schema.load("b.nc")["latency"].values, ds["latency"].values)
    # a second sweep on other budgets merges cleanly; overlapping ones conflict
    assert main(["run", "--config", "s.toml", "--budgets", "40,48", "--quiet", "-o", "c.nc"]) == 0
    assert main(["merge", "a.nc", "c.nc", "-o", "m.nc"]) == 0
    m = schema.load("m.nc")
    assert m["budget"].values.tolist() == [8, 16, 24, 32, 40, 48]
    assert set(np.unique(m["source"].values).tolist()) == {-1, 0, 1}
    capsys.readouterr()
    # b.nc is a.nc exported again: the same runs, refused whatever --resolve says (issue 23)
    assert main(["merge", "a.nc", "b.nc", "-o", "n.nc", "--resolve", "last"]) == 2
    assert "its runs would be counted twice" in capsys.readouterr().err and not Path("n.nc").exists()
    assert main(["run", "--config", "s.toml", "--budgets", "8,16", "--trials", "3", "--quiet", "-o", "d.nc"]) == 0
    assert main(["merge", "a.nc", "d.nc", "-o", "n.nc"]) == 2
    assert "was measured in 'a.nc' and in 'd.nc'" in capsys.readouterr().err and not Path("n.nc").exists()
    assert main(["merge", "a.nc", "d.nc", "-o", "n.nc", "--resolve", "last"]) == 0
    assert (schema.load("n.nc")["source"].sel(budget=[8, 16]) == 1).all()


def test_info_and_models_json(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"devices", "versions", "memory"} <= set(data) and data["memory"]["total"] > 0
    assert any(d["name"] == "cpu" and d["available"] for d in data["devices"])
    assert main(["models", "--json"]) == 0
    names = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"tiny-gpt2", "distilgpt2", "gpt2"} <= set(names) and names["gpt2"]["n_params"] > 1e8


def test_info_and_models_tables(capsys):
    assert main(["info"]) == 0 and "best device" in capsys.readouterr().out
    assert main(["models"]) == 0 and "distilgpt2" in capsys.readouterr().out


@pytest.mark.process
def test_resume_refuses_a_changed_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "a.nc"]) == 0
    with Journal.open("a.journal", write=True) as j:
        env = j.environment
        env["host"] = "another-machine"
        j.set("environment", env)
    capsys.readouterr()
    assert main(["resume", "a.journal"]) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "another-machine" in err


@pytest.mark.process
def test_resume_refuses_a_journal_in_use(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "a.nc"]) == 0
    with Journal.open("a.journal", write=True):
        assert main(["resume", "a.journal"]) == 2
    assert f"in use by pid {os.getpid()}" in capsys.readouterr().err


# --------------------------------------------------------------------------- kill -9 and Ctrl-C
def _count(journal: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _snapshot(journal: Path) -> dict:
    con = sqlite3.connect(str(journal), timeout=5)
    try:
        return {row[0]: row[1:] for row in con.execute(
            "SELECT id, model, device, dtype, attn, cache, cache_impl, prompt_len, budget, trial, record FROM runs")}
    finally:
        con.close()


def _wait_for(journal: Path, n: int, proc: subprocess.Popen, limit: float = 60) -> None:
    t0 = time.monotonic()
    while _count(journal) < n:
        assert proc.poll() is None, f"sweep ended early: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() - t0 < limit
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.process
def test_kill_9_at_random_moments_then_resume_loses_and_repeats_nothing(tmp_path):
    args = ["run", "--devices", "sim", "--models", "gpt2,distilgpt2", "--budgets", "4:120:4", "--trials", "4",
            "--quiet", "-o", "k.nc"]
    n_runs = 2 * 2 * 30 * 4
    journal = tmp_path / "k.journal"
    rng = random.Random(7)
    snapshots = []
    proc = _popen(*args, cwd=tmp_path)
    for target in sorted(rng.sample(range(20, n_runs - 180), 3)):  # (at least 180 runs remain to be killed in)
        _wait_for(journal, target, proc)
        time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        snapshots.append(_snapshot(journal))
        assert 0 < len(snapshots[-1]) < n_runs
        proc = _popen("resume", "k.journal", "--quiet", cwd=tmp_path)
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    final = _snapshot(journal)
    keys = [v[:9] for v in final.values()]
    assert len(final) == n_runs == len(set(keys))  # every run exactly once
    for snap in snapshots:  # no completed run was lost or changed
        for i, row in snap.items():
            assert final[i] == row
    ds = schema.load(tmp_path / "k.nc")
    assert (ds["status"] == schema.STATUS["ok"]).all()
    assert sorted(ds["order"].values.ravel().tolist()) == list(range(n_runs))
    # the journal and the dataset agree run by run
    with Journal.open(journal) as j:
        for row in j.rows():
            cell = ds["latency"].sel(row.key._asdict())
            assert float(cell) == pytest.approx(row.record.latency, rel=1e-12)


@pytest.mark.slow
@pytest.mark.process
def test_ctrl_c_exports_without_losing_journal_rows(tmp_path):
    args = ["run", "--devices", "sim", "--models", "gpt2", "--budgets", "4:400:4", "--trials", "4",
            "-o", "c.nc"]
    journal = tmp_path / "c.journal"
    proc = _popen(*args, cwd=tmp_path)
    _wait_for(journal, 30, proc)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(60)
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 130 and "interrupted" in err and "resume" in err
    n = _count(journal)
    ds = schema.load(tmp_path / "c.nc")
    assert int((ds["status"] != schema.STATUS["not_run"]).sum()) == n
    assert 30 <= n < 2 * 100 * 4
    out = cli("resume", "c.journal", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (schema.load(tmp_path / "c.nc")["status"] == 0).all()


@pytest.mark.process
def test_an_orphaned_worker_exits_mid_run(tmp_path, monkeypatch):
    import psutil

    monkeypatch.setenv("DECODE_REGIMES_FAULTS", "timeout@budget=8")  # the run at budget 8 hangs for an hour
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("collector_with_faults.py")),  # faults on
                             "run", *SIM, "--budgets", "4,8", "--trials", "1", "--cache", "on", "--order", "sequential",
                             "--timeout", "600", "--quiet", "-o", "o.nc"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "o.journal", 1, proc)
    pid = _snapshot_pids(tmp_path / "o.journal")[0]
    time.sleep(0.3)
    assert psutil.pid_exists(pid)  # hanging in the budget-8 run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if gone(pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the orphaned worker is still running")


def _snapshot_pids(journal: Path) -> list[int]:
    con = sqlite3.connect(str(journal), timeout=5)
    try:
        return [int(r[0]) for r in con.execute("SELECT pid FROM runs ORDER BY id")]
    finally:
        con.close()


# --------------------------------------------------------------------------- merge (library level)
def test_merge_datasets_combines_devices_and_steps():
    from analysis.synthetic import make_dataset
    from collector.dataset.export import merge_datasets

    a = make_dataset(0, devices=("sim",), budgets=(8, 16), trials=2, step_time=True)
    b = make_dataset(1, devices=("cuda",), budgets=(16, 32), trials=3).drop_vars(["step_time", "step"])
    m = merge_datasets([a, b], names=["a.nc", "b.nc"])
    assert m["device"].values.tolist() == ["cuda", "sim"] and m["budget"].values.tolist() == [8, 16, 32]  # sorted
    assert m.sizes["trial"] == 3 and m.sizes["step"] == 33
    src = m["source"]
    assert (src.sel(device="sim", budget=[8, 16], trial=[0, 1]) == 0).all()
    assert (src.sel(device="cuda", budget=[16, 32]) == 1).all()
    assert (m["status"].where(src == -1, 4) == 4).all()  # not measured anywhere: not_run
    np.testing.assert_array_equal(m["latency"].sel(device="cuda", budget=32).values,
                                  b["latency"].sel(device="cuda", budget=32).values)
    assert [s["source"] for s in json.loads(m.attrs["merged_from"])] == ["a.nc", "b.nc"]
    assert len(json.loads(m.attrs["sweep"])) == 2


def test_merge_refusals():
    from analysis.synthetic import make_dataset
    from collector.dataset.export import merge_datasets
    from collector.shared.errors import ConfigError

    a = make_dataset(0, budgets=(8, 16), trials=2)
    with pytest.raises(ConfigError, match="at least two datasets"):
        merge_datasets([a])
    with pytest.raises(ConfigError, match="unknown resolve 'both'; choices: error, first, last"):
        merge_datasets([a, a], resolve="both")
    # another engine, or pretrained vs random weights of one name: another origin, kept apart (collector.dataset.combine)
    b = a.copy(deep=True)
    b["started_at"] = b["started_at"] + np.timedelta64(1, "h")  # other runs (the same runs twice are refused)
    b.attrs = dict(a.attrs, engine="generate")
    both = merge_datasets([a, b], names=["a.nc", "b.nc"])
    assert both["engine"].values.tolist() == ["loop", "generate"] and both.attrs["engine"] == "per origin"
    c = b.assign_coords(weights=("model", ["pretrained"]))
    c.attrs = dict(a.attrs)
    kept = merge_datasets([a, c], names=["a.nc", "c.nc"])
    assert kept["weights"].values.tolist() == [["random"], ["pretrained"]]
    np.testing.assert_array_equal(kept["latency"].sel(origin="c").values, a["latency"].values)
    with pytest.raises(ConfigError, match="was measured in 'input 0' and in 'input 1'"):
        merge_datasets([a, b.assign_attrs(engine="loop")])
    with pytest.raises(ConfigError, match="inputs 'input 0' and 'input 1' hold the same run"):
        merge_datasets([a, a.copy(deep=True)])
    first = merge_datasets([a, make_dataset(5, budgets=(8, 16), trials=2)], resolve="first")
    np.testing.assert_array_equal(first["latency"].values, a["latency"].values)


@pytest.mark.process
def test_resume_and_export_from_another_directory_write_beside_the_journal(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "runs/a.nc"]) == 0
    (tmp_path / "runs" / "a.nc").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["export", str(tmp_path / "runs" / "a.journal")]) == 0
    assert (tmp_path / "runs" / "a.nc").exists() and not (elsewhere / "runs").exists()
    assert main(["resume", str(tmp_path / "runs" / "a.journal"), "--quiet"]) == 0
    assert not (elsewhere / "runs").exists()


# --------------------------------------------------------------------------- environment and summary
def test_environment_and_resume_check():
    from collector.measuring.environment import RESUME_KEYS, collect, resume_changes

    sim = collect(["sim"])
    assert sim["torch_version"] == "" and sim["gpu_name"] == "" and sim["host"] and sim["processor"]
    cpu = collect(["cpu"])
    assert cpu["torch_version"] and cpu["transformers_version"]
    assert resume_changes(cpu, dict(cpu)) == []
    changed = resume_changes(cpu, dict(cpu, torch_version="9.9", host="other"))
    assert changed == [f"host: {cpu['host']!r} -> 'other'", f"torch_version: {cpu['torch_version']!r} -> '9.9'"]
    assert set(RESUME_KEYS) <= set(cpu)


def test_summary_rows_count_failures_and_medians(capsys):
    from analysis.synthetic import make_dataset
    from collector.sweep.progress import print_summary, summary_rows

    ds = make_dataset(0, budgets=(8, 16, 32), trials=4, missing=0.25)
    rows = summary_rows(ds)
    assert len(rows) == 2 and {r["cache"] for r in rows} == {True, False}
    st = ds["status"]
    for r in rows:
        sel = st.sel(cache=r["cache"])
        assert r["failed"] == int((sel == 1).sum()) and r["ok"] == int((sel == 0).sum())
        med = ds["latency"].sel(cache=r["cache"]).squeeze().median("trial")
        assert r["median_max"] == pytest.approx(float(med.sel(budget=32)))
        assert r["ms_per_token"] == pytest.approx(1e3 * (float(med.sel(budget=32)) - float(med.sel(budget=8))) / 24)
    print_summary(ds, "x.nc")
    out = capsys.readouterr().out
    assert "wrote x.nc" in out and "gpt2" in out
