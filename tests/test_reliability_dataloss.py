"""Issue 13, data loss and processes: real sweeps (``python -m collector`` on device sim) killed, signalled and
pointed at their own journals. docs/reliability.md lists each fault with the test here that keeps it fixed.

Faults are planted in a CLI process through tests/collector_with_faults.py (a plain ``python -m collector``
ignores DECODE_REGIMES_FAULTS, which the last tests check).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.sweep import failures
from collector.sweep import worker as worker_mod
from collector.sweep.journal import Journal
from processes import gone

SIM = ["--devices", "sim", "--models", "gpt2", "--cache", "on", "--prompt-lens", "8"]
FAULTY = str(Path(__file__).with_name("collector_with_faults.py"))
ROOT = str(Path(__file__).resolve().parents[1])


def _env(faults: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    env.pop(worker_mod.FAULTS_ENV, None)
    if faults is not None:
        env[worker_mod.FAULTS_ENV] = faults
    return env


def _start(*args: str, cwd: Path, faults: str | None = None, **kw) -> subprocess.Popen:
    """A sweep command in its own process (with the fault injector on when ``faults`` is given)."""
    cmd = [sys.executable, FAULTY, *args] if faults is not None else [sys.executable, "-m", "collector", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=_env(faults), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **kw)


def _cli(*args: str, cwd: Path, faults: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, FAULTY, *args] if faults is not None else [sys.executable, "-m", "collector", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(faults), capture_output=True, text=True, timeout=120)


def _rows(journal: Path) -> list[tuple]:
    if not journal.exists():
        return []
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT budget, status, worker, pid FROM runs ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _wait(cond, proc: subprocess.Popen | None = None, limit: float = 60.0, step: float = 0.02):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(step)
    pytest.fail("timed out")


def _worker_of(proc: subprocess.Popen) -> psutil.Process:
    """The sweep's live worker process."""
    def find():
        for c in psutil.Process(proc.pid).children():
            try:
                if c.status() != psutil.STATUS_ZOMBIE and "collector.sweep.worker" in " ".join(c.cmdline()):
                    return c
            except psutil.Error:  # it ended meanwhile
                continue
        return None
    return _wait(find, proc)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Path:
    """a.nc + a.journal (budget 8), c.nc + c.journal (budget 16), b.journal (a copy of a.journal), x.db (SQLite)."""
    d = tmp_path_factory.mktemp("sweeps")
    for name, budget in (("a", "8"), ("c", "16")):
        assert main(["run", *SIM, "--budgets", budget, "--trials", "1", "--quiet", "-o", str(d / f"{name}.nc")]) == 0
    shutil.copy(d / "a.journal", d / "b.journal")
    sqlite3.connect(str(d / "x.db")).execute("CREATE TABLE t (x)").connection.close()
    return d


# --------------------------------------------------------------------------- run --force and a live sweep
@pytest.mark.process
def test_force_refuses_while_the_journal_owner_lives(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    proc = _start("run", *SIM, "--budgets", "4,8", "--trials", "1", "--order", "sequential", "--timeout", "600",
                  "--quiet", "-o", "s.nc", cwd=tmp_path, faults="timeout@budget=8")  # hangs at budget 8
    try:
        _wait(lambda: len(_rows(tmp_path / "s.journal")) == 1, proc)
        before = _rows(tmp_path / "s.journal")
        assert main(["run", *SIM, "--budgets", "4", "--trials", "1", "--quiet", "--force", "-o", "s.nc"]) == 2
        err = capsys.readouterr().err
        _one_line_error(err)
        assert f"in use by pid {proc.pid}" in err
        assert (tmp_path / "s.journal").exists() and (tmp_path / "s.journal.lock").exists()
        assert _rows(tmp_path / "s.journal") == before
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    # its owner gone, --force replaces it
    assert main(["run", *SIM, "--budgets", "4", "--trials", "1", "--quiet", "--force", "-o", "s.nc"]) == 0
    assert len(_rows(tmp_path / "s.journal")) == 1


# --------------------------------------------------------------------------- no dataset over a journal or an input
@pytest.mark.parametrize("args", [
    ["export", "a.journal", "-o", "a.journal"],
    ["export", "a.journal", "-o", "b.journal", "--force"],
    ["export", "a.journal", "-o", "x.db", "--force"],  # an SQLite file by its content, whatever its name
    ["export", "a.journal", "-o", "a.journal-wal", "--force"],
    ["export", "a.journal", "-o", "a.journal-shm", "--force"],
    ["export", "--csv", "a.journal", "-o", "b.journal", "--force"],
    ["resume", "a.journal", "-o", "a.journal"],
    ["resume", "a.journal", "-o", "b.journal"],
    ["merge", "a.nc", "c.nc", "-o", "c.journal", "--force"],
    ["merge", "a.nc", "c.nc", "-o", "a.nc", "--force"],
    ["merge", "a.nc", "c.nc", "-o", "./c.nc", "--force"],
    ["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "s.journal-wal"],
    ["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "--force", "-o", "x.db"],
    ["import-study", "a.nc", "-o", "a.nc", "--force"],
])
@pytest.mark.process
def test_no_command_writes_over_a_journal_or_its_input(sweeps, monkeypatch, capsys, args):
    monkeypatch.chdir(sweeps)
    before = {p.name: _digest(p) for p in sweeps.iterdir() if p.is_file()}
    assert main(args) == 2
    _one_line_error(capsys.readouterr().err)
    after = {p.name: _digest(p) for p in sweeps.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing removed
    with Journal.open(sweeps / "a.journal") as j:
        assert j.count() == 1


@pytest.mark.process
def test_run_output_naming_a_journal_wal_is_refused_in_a_real_process(tmp_path):
    out = _cli("run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "s.journal-wal", cwd=tmp_path)
    assert out.returncode == 2 and "wrote" not in out.stdout
    _one_line_error(out.stderr)
    assert "sweep journal" in out.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- killed from outside: not a failure
@pytest.mark.process
def test_a_worker_killed_from_outside_is_run_again_not_failed(tmp_path):
    kills = {8: signal.SIGKILL, 12: signal.SIGTERM, 16: signal.SIGSEGV}
    proc = _start("run", *SIM, "--budgets", "4,8,12,16", "--trials", "1", "--order", "sequential", "-o", "k.nc",
                  cwd=tmp_path, faults=";".join(f"slow@budget={b}" for b in kills))  # each of these takes 0.5 s
    journal = tmp_path / "k.journal"
    victims = []
    for n, sig in enumerate(kills.values(), start=1):
        _wait(lambda: len(_rows(journal)) == n, proc)
        victims.append(_worker_of(proc))
        victims[-1].send_signal(sig)  # in the middle of the next (slow) run
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    rows = _rows(journal)
    assert [(b, s) for b, s, _, _ in rows] == [(4, "ok"), (8, "ok"), (12, "ok"), (16, "ok")]
    for row, victim in zip(rows[1:], victims):
        assert row[3] != victim.pid  # measured again by a fresh worker
    assert (schema.load(tmp_path / "k.nc")["status"] == 0).all()


@pytest.mark.process
def test_a_worker_killed_during_warm_up_does_not_fail_the_run(tmp_path):
    proc = _start("run", *SIM, "--budgets", "4,8", "--trials", "1", "--order", "sequential", "--warmup", "1",
                  "--isolation", "cell", "-o", "w.nc", cwd=tmp_path, faults="slow-warmup@budget=8")
    journal = tmp_path / "w.journal"
    _wait(lambda: len(_rows(journal)) == 1, proc)
    first = _rows(journal)[0][3]
    victim = _wait(lambda: (w := _worker_of(proc)).pid != first and w)  # the budget-8 cell's worker, warming up
    time.sleep(0.2)
    victim.kill()
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    assert [(b, s) for b, s, _, _ in _rows(journal)] == [(4, "ok"), (8, "ok")]


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.parametrize("how", ["killpg", "timeout"])
def test_sigterm_to_the_process_group_interrupts_the_sweep_without_failing_a_run(tmp_path, how):
    args = ["run", *SIM, "--budgets", "4,8", "--trials", "1", "--order", "sequential", "-o", "g.nc"]
    if how == "timeout":  # GNU timeout signals its whole process group, the workers with it
        tool = shutil.which("timeout")
        if tool is None:
            pytest.skip("no timeout command here")
        proc = subprocess.Popen([tool, "6", sys.executable, FAULTY, *args], cwd=tmp_path,
                                env=_env("timeout@budget=8"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    else:
        proc = _start(*args, cwd=tmp_path, faults="timeout@budget=8", start_new_session=True)
    journal = tmp_path / "g.journal"
    _wait(lambda: len(_rows(journal)) == 1, proc, limit=30)
    if how == "killpg":
        _worker_of(proc)
        os.killpg(proc.pid, signal.SIGTERM)
    rc = proc.wait(60)
    err = proc.stderr.read() if proc.stderr else ""
    assert rc in (130, 124) and "interrupted" in err, (rc, err)  # timeout exits 124 when it had to signal
    assert [(b, s) for b, s, _, _ in _rows(journal)] == [(4, "ok")]  # the budget-8 run is still pending
    assert not Path(str(journal) + ".lock").exists()
    out = _cli("resume", "g.journal", "--quiet", cwd=tmp_path)  # no faults now: it runs
    assert out.returncode == 0, out.stderr
    assert [(b, s) for b, s, _, _ in _rows(journal)] == [(4, "ok"), (8, "ok")]


def test_classify_exit_tells_interruptions_from_failures():
    c = failures.classify_exit
    assert c(-signal.SIGKILL, oom_killed=True, repeated=False) == "oom"
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV):
        assert c(-sig, oom_killed=False, repeated=False) is None
    assert c(-signal.SIGSEGV, oom_killed=False, repeated=True) == "error"
    assert c(-signal.SIGKILL, oom_killed=False, repeated=True) == "error"
    assert c(-signal.SIGKILL, oom_killed=None, repeated=True) == "oom"  # no OOM counter here: SIGKILL twice
    assert c(1, oom_killed=False, repeated=False) == "error"  # the interpreter itself failed


# --------------------------------------------------------------------------- resume --retry-failed
@pytest.mark.process
def test_resume_retry_failed_runs_failed_runs_again_and_keeps_the_attempts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(worker_mod.FAULTS_ENV, "raise@budget=8")
    assert main(["run", *SIM, "--budgets", "4,8", "--trials", "2", "--quiet", "-o", "r.nc"]) == 0
    assert sorted(s for _, s, _, _ in _rows(tmp_path / "r.journal")) == ["error", "error", "ok", "ok"]
    monkeypatch.delenv(worker_mod.FAULTS_ENV)
    assert main(["resume", "r.journal", "--quiet"]) == 0  # without the flag failures stay
    assert sorted(s for _, s, _, _ in _rows(tmp_path / "r.journal")) == ["error", "error", "ok", "ok"]
    assert main(["resume", "r.journal", "--retry-failed", "--quiet"]) == 0
    with Journal.open(tmp_path / "r.journal") as j:
        rows, attempts = list(j.rows()), j.attempts()
    assert len(rows) == 4 and all(r.record.ok for r in rows)
    assert sorted((a.key.budget, a.key.trial, a.record.status) for a in attempts) == [(8, 0, "error"), (8, 1, "error")]
    assert "fault injected" in attempts[0].record.error
    ds = schema.load(tmp_path / "r.nc")
    assert (ds["status"] == 0).all() and json.loads(ds.attrs["failures"]) == []  # the latest attempt


# --------------------------------------------------------------------------- seeds
@pytest.mark.process
def test_a_huge_seed_is_refused_up_front(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *SIM, "--budgets", "8", "--seed", "99999999999999999999999999", "-o", "h.nc"]) == 2
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "'99999999999999999999999999'" in err and "2**63" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.process
def test_a_journal_holding_a_huge_seed_still_exports(sweeps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(sweeps / "a.journal", tmp_path / "h.journal")
    con = sqlite3.connect(str(tmp_path / "h.journal"))  # what a journal written before seeds were bounded holds
    spec = json.loads(con.execute("SELECT value FROM meta WHERE key='spec'").fetchone()[0])
    spec.update(seed=10**26, output="h.nc")
    con.execute("UPDATE meta SET value=? WHERE key='spec'", (json.dumps(spec),))
    con.commit()
    con.close()
    assert main(["export", "h.journal"]) == 0
    ds = schema.load("h.nc")
    assert ds.attrs["seed"] == str(10**26) and (ds["status"] == 0).all()
    capsys.readouterr()
    assert main(["resume", "h.journal"]) == 2  # it cannot be extended, and says why
    _one_line_error(capsys.readouterr().err)


# --------------------------------------------------------------------------- the final save, signals
def _big_sweep(tmp_path: Path, faults: str) -> subprocess.Popen:
    """A sweep that hangs in its second run and whose dataset takes a moment to write (1000 budgets x steps)."""
    return _start("run", *SIM, "--budgets", "1:1000", "--trials", "1", "--timing", "step", "--order", "sequential",
                  "--timeout", "600", "--quiet", "-o", "f.nc", cwd=tmp_path, faults=faults)


def _temps(folder: Path, name: str = "f.nc") -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


@pytest.mark.process
def test_kill_9_during_the_final_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    proc = _big_sweep(tmp_path, "timeout@budget=2")
    _wait(lambda: len(_rows(tmp_path / "f.journal")) == 1, proc)
    proc.send_signal(signal.SIGINT)  # stop: the sweep now writes f.nc
    _wait(lambda: _temps(tmp_path), proc, step=0.001)
    proc.kill()
    proc.wait()
    left = _temps(tmp_path)
    assert left and not (tmp_path / "f.nc").exists()
    unrelated = [tmp_path / ".g.nc.12345678.tmp", tmp_path / "f.nc.tmp", tmp_path / f".f.nc.{os.getpid()}-abcdefgh.tmp"]
    for p in unrelated:  # another output's, not our pattern, and a save running now (this process)
        p.write_text("x")
    out = _cli("export", "f.journal", cwd=tmp_path)  # the next save of f.nc (run, resume, export, merge)
    assert out.returncode == 0, out.stderr
    assert _temps(tmp_path) == [tmp_path / f".f.nc.{os.getpid()}-abcdefgh.tmp"]
    assert all(p.exists() for p in unrelated)
    assert int((schema.load(tmp_path / "f.nc")["status"] == 0).sum()) == 1


@pytest.mark.process
def test_resume_and_run_remove_stale_temp_files_of_their_output_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".r.nc.{int(dead.stdout)}-abcdefgh.tmp"  # a save by a process that is gone
    assert main(["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "-o", "r.nc"]) == 0
    stale.write_bytes(b"\0" * 1000)
    assert main(["resume", "r.journal", "--quiet"]) == 0
    assert not stale.exists()
    stale.write_bytes(b"\0" * 1000)
    assert main(["run", *SIM, "--budgets", "8", "--trials", "1", "--quiet", "--force", "-o", "r.nc"]) == 0
    assert not stale.exists()


@pytest.mark.process
def test_two_sigterms_release_the_lock_say_so_and_leave_the_journal_resumable(tmp_path):
    proc = _big_sweep(tmp_path, "timeout@budget=2")
    _wait(lambda: len(_rows(tmp_path / "f.journal")) == 1, proc)
    proc.send_signal(signal.SIGTERM)
    _wait(lambda: _temps(tmp_path), proc, step=0.001)  # the final save has begun
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 130 and "resume" in err and "Traceback" not in err, (rc, err)
    if "interrupted twice" in err:  # as a rule: the save is abandoned
        assert not (tmp_path / "f.nc").exists()
    else:  # the save ended before the second signal came: written, and the signal ignored
        assert "interrupted:" in err and (tmp_path / "f.nc").exists()
    assert not Path(tmp_path / "f.journal.lock").exists() and _temps(tmp_path) == []
    assert len(_rows(tmp_path / "f.journal")) == 1
    with Journal.open(tmp_path / "f.journal", write=True) as j:  # resumable: nobody holds it, nothing lost
        assert j.count() == 1


# --------------------------------------------------------------------------- orphaned workers
#: How long an orphan may take to go in these tests: far below the run timeout (600 s) that would otherwise end it,
#: and far above what the mechanisms take (the kernel at once, the parent check every PARENT_POLL = 0.1 s), so a
#: loaded machine does not fail them. How fast it goes is measured by benchmarks/reliability_timing.py instead.
ORPHAN_LIMIT = 10.0


@pytest.mark.process
def test_an_orphaned_worker_dies_with_its_sweep_not_at_its_timeout(tmp_path):
    proc = _start("run", *SIM, "--budgets", "4,8", "--trials", "1", "--order", "sequential", "--timeout", "600",
                  "--quiet", "-o", "o.nc", cwd=tmp_path, faults="timeout@budget=8")  # hangs at budget 8
    _wait(lambda: len(_rows(tmp_path / "o.journal")) == 1, proc)
    victim = _worker_of(proc)
    assert victim.is_running()
    proc.kill()
    proc.wait()
    _wait(lambda: gone(victim.pid), limit=ORPHAN_LIMIT, step=0.005)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_asks_the_kernel_to_kill_it_with_its_parent():
    """The mechanism of the test above on Linux: the worker's parent-death signal is SIGKILL."""
    code = ("import ctypes, collector.sweep.worker as m; assert m._kill_with_parent(); s = ctypes.c_int(); "
            "assert ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0) == 0; print(s.value)")  # 2 = PR_GET_PDEATHSIG
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == signal.SIGKILL


#: A worker whose kernel kill is off (the path of systems without PR_SET_PDEATHSIG), that says 'ready' once its
#: parent check runs; its stdin (fd R) stays open, so it never sees EOF.
_PLAIN_WORKER = ("import os, sys; import collector.sweep.worker as m; m._kill_with_parent = lambda: False; "
                 "sys.argv[1:] = [str(os.getppid())]; "
                 "m._exit_with_parent = (lambda f: lambda p, *a: (f(p, *a), print('ready', flush=True)))"
                 "(m._exit_with_parent); m.main()")
#: Its parent, which prints the worker's pid and waits.
_PARENT = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {worker!r}], stdin={r}, "
           "pass_fds=({r},)); print(p.pid, flush=True); time.sleep(600)")
#: A subreaper (the worker's orphans come to it, so it learns how the worker ended) that starts the parent, kills it
#: once the worker is ready and prints the worker's exit code.
_REAPER = """
import ctypes, os, subprocess, sys
assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
r, w = os.pipe()
parent = subprocess.Popen([sys.executable, "-c", {parent!r}.format(worker={worker!r}, r=r)], stdout=subprocess.PIPE,
                          pass_fds=(r,), text=True)
os.close(r)
got = [parent.stdout.readline().strip() for _ in range(2)]
assert "ready" in got, got
pid = int(next(line for line in got if line != "ready"))
parent.kill()
parent.wait()
_, status = os.waitpid(pid, 0)  # the orphan is ours now
print(os.waitstatus_to_exitcode(status), flush=True)
os.close(w)
"""


@pytest.mark.process
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the test learns the exit code as a Linux subreaper")
def test_without_pdeathsig_the_parent_check_ends_an_orphan():
    """The path of systems without PR_SET_PDEATHSIG: a worker whose stdin stays open (no EOF) and whose parent dies
    ends through its parent check (exit code 3), not at a timeout or by a signal."""
    code = _REAPER.format(parent=_PARENT, worker=_PLAIN_WORKER)
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                         timeout=60 + ORPHAN_LIMIT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 3, (out.stdout, out.stderr)


# --------------------------------------------------------------------------- the fault injector
@pytest.mark.process
def test_a_normal_run_ignores_the_fault_variable(tmp_path):
    env = _env("raise@budget=8;crash@budget=4")
    env["PYTEST_CURRENT_TEST"] = "tests/x.py::y (call)"  # looking like a test is not enough
    out = subprocess.run([sys.executable, "-m", "collector", "run", *SIM, "--budgets", "4,8", "--trials", "1",
                          "--quiet", "-o", "n.nc"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [s for _, s, _, _ in _rows(tmp_path / "n.journal")] == ["ok", "ok"]


def test_planted_faults_need_the_test_switch(monkeypatch):
    monkeypatch.setenv(worker_mod.FAULTS_ENV, "raise@budget=8")
    monkeypatch.setattr(worker_mod, "_fault_injection", False)
    assert worker_mod.planted_faults() == ()
    monkeypatch.setattr(worker_mod, "_fault_injection", True)
    assert worker_mod.planted_faults() == (("raise", (("budget", "8"),)),)
