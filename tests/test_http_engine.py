"""Engine http against a real OpenAI-compatible server on 127.0.0.1 (tests/http_server.py: stdlib http.server
serving the tiny random-weight preset through transformers, streamed).

Each test starts the server as its own process, sweeps it with ``python -m collector run --engine http``
and checks what the dataset holds: every run recorded, per-token arrivals that sum to the total, a server
killed mid-sweep giving failed runs and a clean resume, a malformed stream and a truncated generation as
statuses (never a traceback), a planted regime found exactly, a fresh server per configuration with its
start-up time, and no key anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.http.client import ready

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "http_server.py"

pytestmark = pytest.mark.process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(*args: str, port: int | None = None,
           script: Path = SERVER) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The test server (or ``script``) on a free port (or ``port``): yields its endpoint URL and process; stopped
    after (its whole process group)."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"test server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                ready(url + "/models", url.rsplit("/v1", 1)[0] + "/health", timeout=1.0)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the server and any workers it started
        proc.wait(10)


def sweep_args(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "--engine", "http", "--endpoint", url, "--models", "tiny-gpt2", "--prompt-lens", "8", "--quiet",
            "-o", str(out), *more]


def failures(ds: object) -> list[dict[str, object]]:
    return list(json.loads(str(ds.attrs["failures"])))  # type: ignore[attr-defined]


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_every_run_recorded_and_the_arrivals_sum_to_the_total(tmp_path: Path, api: str) -> None:
    with served("--step-sleep", "0.003") as (url, _):
        assert main(sweep_args(url, tmp_path / "h.nc", "--budgets", "4,8,16", "--trials", "2", "--api", api)) == 0
    ds = schema.load(tmp_path / "h.nc")
    assert ds.attrs["engine"] == "http" and ds.attrs["timing"] == "stream" and ds.attrs["api"] == api
    assert ds.attrs["endpoint"] == url.rsplit("/v1", 1)[0]  # the host part only
    assert ds.attrs["server_software"] == "decode-regimes-test" and ds.attrs["server_version"] == "1.0-test"
    assert ds.attrs["prompt_tokenizer"] == "server /tokenize"
    assert list(ds.device.values) == ["http"] and list(ds.cache.values) == [True]
    status = ds.status.values.ravel()
    assert status.size == 6 and np.all(status == schema.STATUS["ok"])
    np.testing.assert_array_equal(ds.tokens.squeeze().values, np.broadcast_to(ds.budget.values[:, None], (3, 2)))
    assert np.all(ds.server_prompt_tokens.values == 8)  # sized exactly through the server's /tokenize
    assert np.all(ds.server_completion_tokens.values == ds.tokens.values)
    steps = ds.step_time.sum("step").values.ravel()
    latency = ds.latency.values.ravel()
    # the arrivals sum to the last token's arrival; latency adds only the wait for the end of the stream
    assert np.all(steps <= latency + 1e-6) and np.all(latency - steps < 0.05 + 0.05 * latency)
    assert np.median(latency - steps) < 0.005  # typically well under a millisecond on this host
    n_steps = np.isfinite(ds.step_time).sum("step").values.ravel()
    np.testing.assert_array_equal(n_steps, np.repeat(ds.budget.values, 2))
    np.testing.assert_allclose(ds.prefill_time.values, ds.step_time.isel(step=0).values, rtol=1e-5)
    decode = ds.step_time.isel(step=slice(1, None)).mean("step").values
    assert np.all(decode[np.isfinite(decode)] >= 0.003)  # each decode step sleeps 3 ms in the server


def test_server_killed_mid_sweep_gives_failed_runs_and_a_clean_resume(tmp_path: Path) -> None:
    out = tmp_path / "k.nc"
    journal = out.with_suffix(".journal")
    port = free_port()
    with served("--step-sleep", "0.01", port=port) as (url, server):
        sweep = subprocess.Popen([sys.executable, "-m", "collector",
                                  *sweep_args(url, out, "--budgets", "8:24:4", "--trials", "4", "--warmup", "0")],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if journal.exists():
                with contextlib.suppress(sqlite3.Error):
                    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
                        if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] >= 4:
                            break
        server.kill()
        server.wait(10)
        _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err.decode()
    assert b"Traceback" not in err
    ds = schema.load(out)
    status = ds.status.values.ravel()
    assert status.size == 20 and np.all(status != schema.STATUS["not_run"])  # every run recorded
    failed = failures(ds)
    assert 0 < len(failed) < 20 and int((status == schema.STATUS["ok"]).sum()) >= 4
    assert all(f["status"] == "error" for f in failed)
    assert any("connection refused" in str(f["error"]) for f in failed)
    assert all("\n" not in str(f["error"]) and len(str(f["error"])) < 300 for f in failed)  # one line each
    with served("--step-sleep", "0.01", port=port):
        assert main(["resume", str(journal), "--retry-failed", "--quiet"]) == 0
    again = schema.load(out)
    assert np.all(again.status.values == schema.STATUS["ok"])
    kept = again.latency.values[ds.status.values == schema.STATUS["ok"]]
    np.testing.assert_array_equal(kept, ds.latency.values[ds.status.values == schema.STATUS["ok"]])  # nothing lost


def test_malformed_stream_and_truncated_generation_are_statuses(tmp_path: Path) -> None:
    out = tmp_path / "m.nc"
    with served("--malformed", "6", "--truncate", "8:5") as (url, _):
        proc = subprocess.run([sys.executable, "-m", "collector",
                               *sweep_args(url, out, "--budgets", "4,6,8", "--trials", "1")],
                              cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    ds = schema.load(out)
    by_budget = {int(b): int(ds.status.sel(budget=b).values.ravel()[0]) for b in ds.budget.values}
    assert by_budget == {4: schema.STATUS["ok"], 6: schema.STATUS["error"], 8: schema.STATUS["truncated"]}
    errors = {int(f["run"]["budget"]): str(f["error"]) for f in failures(ds)}  # type: ignore[index]
    assert errors[6].startswith("malformed stream: event 3 is not JSON")
    assert errors[8].startswith("truncated generation: 5 of 8 tokens (finish_reason 'stop')")
    assert int(ds.tokens.sel(budget=8).values.ravel()[0]) == 5  # the tokens it did produce are kept
    # and so are its times, measured for those 5 tokens: 5 arrivals, summing to the last one
    cut = ds.sel(budget=8).squeeze()
    assert np.isfinite(float(cut.latency)) and int(np.isfinite(cut.step_time).sum()) == 5
    assert float(cut.step_time.sum()) <= float(cut.latency) + 1e-6
    assert np.isnan(ds.latency.sel(budget=6).values).all()


def test_a_strict_server_gets_the_requests_without_the_extra_fields(tmp_path: Path) -> None:
    out = tmp_path / "strict.nc"
    with served("--strict") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2,4", "--trials", "2")) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["ok"])  # with the extra fields every request was a 400
    np.testing.assert_array_equal(ds.tokens.squeeze().values, np.broadcast_to(ds.budget.values[:, None], (2, 2)))


def test_a_server_that_stops_sending_is_a_timeout(tmp_path: Path) -> None:
    out = tmp_path / "t.nc"
    with served("--hang", "6") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "4,6", "--trials", "1", "--timeout", "3", "--warmup", "0")) == 0
    ds = schema.load(out)
    assert int(ds.status.sel(budget=4).values.ravel()[0]) == schema.STATUS["ok"]
    assert int(ds.status.sel(budget=6).values.ravel()[0]) == schema.STATUS["timeout"]
    (failed,) = failures(ds)
    assert "\n" not in str(failed["error"]) and ("3 s" in str(failed["error"]))


def test_a_regime_planted_in_the_server_is_found_exactly(tmp_path: Path) -> None:
    import analysis

    out = tmp_path / "r.nc"
    with served("--step-sleep", "0.004", "--regime", "12:16:3") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2:24:2", "--trials", "3")) == 0
    ds = analysis.open_dataset(str(out))
    reg = analysis.regimes(ds)
    flagged = reg.anomalous.any([d for d in reg.anomalous.dims if d != "budget"])
    assert sorted(int(b) for b in reg.budget.values[flagged.values]) == [12, 14, 16]
    report = analysis.report(ds, tmp_path / "report")
    assert (tmp_path / "report" / "index.html").exists() and report is not None
    # every analysis reads the http dataset unchanged: a result, or the InputError any dataset of one cache
    # value and one prompt length gets (kv_speedup, boundaries)
    from analysis.errors import InputError
    from public_api import public_calls

    calls = public_calls(20)
    calls["plant"] = lambda d: analysis.plant(d, 12, 16, 2.0)
    refused = set()
    for name, call in calls.items():
        try:
            assert call(ds) is not None
        except InputError as exc:
            refused.add(name)
            assert "cache values False and True" in str(exc) or "2 prompt_len values" in str(exc)
    assert refused == {"kv_speedup", "boundaries"}


def test_generations_cut_short_are_kept_and_left_out_of_the_budget_axis(tmp_path: Path) -> None:
    """A server that stops early at some budgets (as one that ignores ignore_eos does at an end-of-sequence
    token): every such run keeps its times and its tokens as status truncated; the analysis leaves them out
    of the budget axis, says how many, and still finds the planted regime exactly. Counted as ok, their short
    times would bend the curve into a false answer."""
    import analysis

    out = tmp_path / "cut.nc"
    with served("--step-sleep", "0.004", "--regime", "12:16:3", "--truncate", "28:32:8",
                "--truncate", "6:8:3:0.5") as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2:32:2", "--trials", "3")) == 0
    ds = analysis.open_dataset(str(out))
    status, tokens = (np.asarray(ds[v].squeeze().values) for v in ("status", "tokens"))  # budget x trial
    budget = np.broadcast_to(ds.budget.values[:, None], status.shape)
    cut = status == schema.STATUS["truncated"]
    assert cut[budget >= 28].all() and not cut[(budget > 8) & (budget < 28)].any()
    assert 0 < cut[(budget == 6) | (budget == 8)].sum() < 6  # half the prompts stop there (a hash of the prompt)
    assert np.all(status[~cut] == schema.STATUS["ok"])
    np.testing.assert_array_equal(tokens[cut], np.where(budget[cut] >= 28, 8, 3))  # what each produced
    latency = np.asarray(ds.latency.squeeze().values)
    assert np.all(np.isfinite(latency))  # every run kept its times
    steps = np.isfinite(ds.step_time.squeeze()).sum("step").values
    np.testing.assert_array_equal(steps[cut], tokens[cut])

    reg = analysis.regimes(ds)
    flagged = reg.anomalous.any([d for d in reg.anomalous.dims if d != "budget"])
    assert sorted(int(b) for b in reg.budget.values[flagged.values]) == [12, 14, 16]
    n_cut = int(cut.sum())
    assert reg.attrs["n_truncated"] == n_cut
    line = next(x for x in reg.attrs["summary"].splitlines() if "truncated" in x)
    assert line.startswith(f"{n_cut} truncated run(s) left out") and "3-8 tokens produced" in line
    assert line.split("budget(s) ")[1].startswith(("6, 8, 28, 30, 32)", "6, 28, 30, 32)", "8, 28, 30, 32)"))
    assert np.isnan(float(reg.ratio.sel(budget=30).squeeze()))  # every run there was cut: nothing measured
    steps_result = analysis.step_regimes(ds)
    assert f"{n_cut} truncated run(s) left out" in steps_result.attrs["summary"]

    # the same runs counted as if they had reached their budget: their short times bend the curve and the
    # answer is wrong (on this host: budgets 10-26 flagged)
    as_ok = ds.assign(status=ds.status.where(ds.status != schema.STATUS["truncated"], schema.STATUS["ok"]))
    wrong = analysis.regimes(as_ok)
    hit = wrong.anomalous.any([d for d in wrong.anomalous.dims if d != "budget"])
    assert sorted(int(b) for b in wrong.budget.values[hit.values]) != [12, 14, 16]


def test_retry_failed_runs_truncated_runs_again(tmp_path: Path) -> None:
    out = tmp_path / "again.nc"
    port = free_port()
    with served("--truncate", "4:2", port=port) as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2,4", "--trials", "2")) == 0
    first = schema.load(out)
    assert np.all(first.status.sel(budget=4).values == schema.STATUS["truncated"])
    with served(port=port):  # the server now produces every token asked for
        assert main(["resume", str(out.with_suffix(".journal")), "--retry-failed", "--quiet"]) == 0
    again = schema.load(out)
    assert np.all(again.status.values == schema.STATUS["ok"]) and np.all(again.tokens.sel(budget=4).values == 4)
    np.testing.assert_array_equal(again.latency.sel(budget=2).values, first.latency.sel(budget=2).values)


def test_a_fresh_server_per_configuration_with_its_start_up_time(tmp_path: Path) -> None:
    port = free_port()
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} --port {{port}} --model {{model}}"
    out = tmp_path / "s.nc"
    assert main(["run", "--engine", "http", "--endpoint", f"http://127.0.0.1:{port}/v1", "--server-cmd", cmd,
                 "--isolation", "cell", "--models", "tiny-gpt2", "--budgets", "2,4", "--trials", "2", "--quiet",
                 "-o", str(out)]) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["ok"])
    start = ds.server_start_time.values
    assert np.all(np.isfinite(start)) and np.all(start > 0)
    assert len(np.unique(start)) == 2  # one server per cell (budget), its start-up time on each of its runs
    assert len(np.unique(ds.worker.values)) == 2
    assert ds.attrs["server_cmd"] == cmd and "fresh server per configuration" in ds.attrs["protocol"]
    with pytest.raises(OSError):  # every server was stopped with its worker
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_started_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    port = free_port()
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} --port {port}"
    code = ("import time; from collector.http.server import ServerProcess; "
            f"s = ServerProcess({cmd!r}, 'http://127.0.0.1:{port}/v1/models'); "
            "print(round(s.start(120), 3), flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert float(parent.stdout.readline()) > 0  # type: ignore[union-attr]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the server is up
        parent.kill()  # SIGKILL: nothing in the parent can clean up; the supervisor must
        parent.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the server on port {port} outlived the process that started it by 30 s")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_server_command_that_fails_gives_failed_runs_with_its_last_line(tmp_path: Path) -> None:
    port = free_port()
    cmd = f"{shlex.quote(sys.executable)} -c \"import sys; sys.stderr.write('no such model: ' + sys.argv[1]); " \
          f"sys.exit(3)\" {{model}}"
    out = tmp_path / "f.nc"
    assert main(["run", "--engine", "http", "--endpoint", f"http://127.0.0.1:{port}/v1", "--server-cmd", cmd,
                 "--models", "tiny-gpt2", "--budgets", "2,4", "--trials", "1", "--quiet", "-o", str(out)]) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["error"])
    for f in failures(ds):
        error = str(f["error"])
        assert "exited with status 3 before it was ready; its last line: 'no such model: tiny-gpt2'" in error
        assert "\n" not in error
    assert str(ds.weights.values[0]) == "pretrained"


def test_the_key_is_sent_but_never_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("DR_TEST_KEY", secret)
    out = tmp_path / "key.nc"
    with served("--api-key", secret) as (url, _):
        assert main(sweep_args(url, out, "--budgets", "2,4", "--trials", "1", "--api-key-env", "DR_TEST_KEY")) == 0
        monkeypatch.setenv("DR_TEST_KEY", "wrong")
        assert main(sweep_args(url, tmp_path / "bad.nc", "--budgets", "2", "--trials", "1", "--api-key-env",
                               "DR_TEST_KEY")) == 0
    ds = schema.load(out)
    assert np.all(ds.status.values == schema.STATUS["ok"])  # the server got the key
    for path in (out, out.with_suffix(".journal")):
        assert secret.encode() not in path.read_bytes()
    bad = failures(schema.load(tmp_path / "bad.nc"))
    assert bad and str(bad[0]["error"]).startswith("HTTP 401")


def test_an_endpoint_that_is_not_there_is_one_line_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "none.nc"
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert main(sweep_args(url, out, "--budgets", "2")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "connection refused" in err and "--server-cmd" in err
    assert not out.exists() and not out.with_suffix(".journal").exists()


def test_the_cli_runs_with_a_key_variable_that_is_not_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DR_TEST_UNSET", raising=False)
    assert main(sweep_args("http://127.0.0.1:9/v1", tmp_path / "x.nc", "--api-key-env", "DR_TEST_UNSET")) == 2
    assert "'DR_TEST_UNSET' (--api-key-env) is not set" in capsys.readouterr().err
    assert os.environ.get("DR_TEST_UNSET") is None
