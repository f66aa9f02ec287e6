"""``collector doctor``: real probes on cpu (tiny-gpt2), a broken sync caught, the mps path on fakes, the CLI, the JSON file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from collector.doctor import Check, Report, doctor, read_json, write_json
from collector.doctor.device import sync_check
from collector.doctor.host import governor_check, nvidia_check, pmset_checks, timer_check
from collector.doctor.noise import MDE_LIMIT, noise_check, robust_cv
from collector.measuring.devices import CPUBackend
from collector.measuring.selfcheck import sync_probe
from collector.shared.errors import ConfigError, DeviceUnavailableError, OutputError
from processes import cli
from test_devices import clock_log, fake_mps  # noqa: F401 - the suite's fakes of torch.mps (fixtures)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cpu_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The whole doctor on cpu, for real, with a governor file that does not exist."""
    missing = tmp_path_factory.mktemp("sys") / "scaling_governor"
    return doctor("cpu", runs=5, governor_path=missing, load_window=0.1)


# --------------------------------------------------------------------------- the real run on cpu
def test_cpu_report_has_every_check(cpu_report: Report) -> None:
    names = [c.name for c in cpu_report.checks]
    assert names == ["timer", "load", "governor", "thermal", "gpu_state", "sync", "steps_step", "steps_events",
                     "allocator", "host_memory", "noise"] or "power" in names
    assert cpu_report.verdict in ("ok", "warnings")
    assert cpu_report.verdict == ("warnings" if cpu_report.warnings else "ok")
    for c in cpu_report.warnings:
        assert c.fix, f"warning {c.name} without a fix"
    assert cpu_report.machine["torch_version"] == torch.__version__


def test_cpu_sync_says_events_are_host_clocks(cpu_report: Report) -> None:
    sync = cpu_report.check("sync")
    assert sync.status == "ok" and "events are host clocks" in sync.summary
    assert sync.values["uses_events"] is False and sync.values["host_s"] > 0
    steps = cpu_report.check("steps_step")
    assert steps.status == "ok" and steps.values["steps"] == 16
    assert steps.values["step_sum"] == pytest.approx(steps.values["latency"], rel=1e-9)
    assert cpu_report.check("steps_events").status == "unavailable"


def test_cpu_memory_reads(cpu_report: Report) -> None:
    alloc = cpu_report.check("allocator")
    assert alloc.status == "unavailable" and "NaN" in alloc.summary
    host = cpu_report.check("host_memory")
    assert host.values["rss"] > 10 * 2**20 and host.values["available"] > 0


def test_cpu_noise_and_its_mde(cpu_report: Report) -> None:
    noise = cpu_report.check("noise")
    assert noise.values["ok_runs"] == 5 and noise.values["median_s"] > 0
    assert noise.values["mde"] >= 1.2  # analysis.regimes' floor: min_effect 0.2
    assert "analysis.regimes" in noise.values["mde_method"]


def test_missing_governor_is_unavailable_not_an_error(cpu_report: Report) -> None:
    gov = cpu_report.check("governor")
    assert gov.status == "unavailable" and "No such file" in gov.summary


# --------------------------------------------------------------------------- host probes
@pytest.mark.parametrize(("governor", "status"), [("powersave", "warn"), ("schedutil", "warn"),
                                                  ("performance", "ok")])
def test_governor(tmp_path: Path, governor: str, status: str) -> None:
    path = tmp_path / "scaling_governor"
    path.write_text(governor + "\n")
    check = governor_check(path)
    assert check.status == status and check.values["governor"] == governor
    if status == "warn":
        assert f"CPU governor {governor!r}" in check.summary and "set 'performance'" in check.fix


def test_commands_that_are_missing_are_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi, no pmset
    gpu = nvidia_check()
    assert gpu.status == "unavailable" and "'nvidia-smi' not found" in gpu.summary
    assert [c.status for c in pmset_checks()] == ["unavailable", "unavailable"]


def _fake_command(folder: Path, name: str, output: str) -> None:
    """A command ``name`` in ``folder`` that prints ``output`` (shell builtins only: PATH holds only ``folder``)."""
    (folder / f"{name}.out").write_text(output + "\n")
    script = folder / name
    script.write_text(f"#!/bin/sh\nwhile IFS= read -r l; do printf '%s\\n' \"$l\"; done < '{folder / name}.out'\n")
    script.chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="shell scripts as fake commands")
def test_commands_are_parsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_command(tmp_path, "nvidia-smi", "1980, 1980, 700.00, 88")
    _fake_command(tmp_path, "pmset", "Now drawing from 'Battery Power'\n CPU_Speed_Limit \t= 70")
    monkeypatch.setenv("PATH", str(tmp_path))
    gpu = nvidia_check()
    assert gpu.status == "warn" and gpu.values["gpu0_temperature_c"] == 88 and gpu.values["gpu0_power_limit_w"] == 700
    therm, power = pmset_checks()
    assert therm.status == "warn" and therm.values["cpu_speed_limit"] == 70
    assert power.status == "warn" and "plug in" in power.fix


def test_timer() -> None:
    check = timer_check()
    assert check.status == "ok" and 0 < check.values["measured_step_s"] < 1e-3


def test_host_report_is_cheap_and_torch_free() -> None:
    code = ("import sys, time; t = time.perf_counter(); from collector.doctor import host_report; "
            "r = host_report(); assert 'torch' not in sys.modules, 'torch imported'; "
            "print(time.perf_counter() - t, r.summary())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[0]) < 3.0


# --------------------------------------------------------------------------- sync: a broken synchronize is caught
class _AsyncDevice(CPUBackend):
    """A device that runs the queued work in 10x the time it took to launch it; events see the device time."""

    has_events = True

    def __init__(self, sync_waits: bool) -> None:
        self.sync_waits = sync_waits
        self.since = time.perf_counter()

    def new_event(self) -> Any:
        return _AsyncEvent()

    def synchronize(self) -> None:
        if self.sync_waits:  # wait for the work queued since the last sync (9x its launch time more)
            time.sleep(9 * (time.perf_counter() - self.since))
        self.since = time.perf_counter()


class _AsyncEvent:
    def record(self, stream: object = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: "_AsyncEvent") -> float:
        return (end.t - self.t) * 10 * 1e3  # milliseconds of device time


def test_broken_sync_is_caught() -> None:
    check = sync_check("fake", sync_probe(_AsyncDevice(sync_waits=False), size=128, min_time=0.005, repeats=3))
    assert check.status == "warn" and "synchronize returned before the device finished" in check.summary
    assert check.values["ratio"] < 0.5 and "--timing events" in check.fix


def test_working_sync_passes() -> None:
    check = sync_check("fake", sync_probe(_AsyncDevice(sync_waits=True), size=128, min_time=0.005, repeats=3))
    assert check.status == "ok", check.summary
    assert 0.8 <= check.values["ratio"] <= 1.5


# --------------------------------------------------------------------------- the mps path, on the suite's fakes
def test_mps_path_calls_torch_mps(fake_mps: list[str]) -> None:  # noqa: F811
    report = doctor("mps", runs=3, load_window=0.05)
    sync = report.check("sync")
    assert sync.values["uses_events"] is True and "device events" in sync.summary
    assert "sync" in fake_mps and "record" in fake_mps  # torch.mps.synchronize, torch.mps.Event(...).record
    assert report.check("steps_events").values["steps"] == 16  # timing=events ran through torch.mps.Event
    alloc = report.check("allocator")  # torch.mps.current_allocated_memory (the fake grows 1000 bytes a read)
    assert alloc.values["allocated_after"] > alloc.values["allocated_before"] >= 1000
    assert alloc.values["limit"] == 8 << 30  # torch.mps.recommended_max_memory
    assert report.check("driver").values["driver"] == 123_456_789  # torch.mps.driver_allocated_memory
    assert report.device == "mps"


# --------------------------------------------------------------------------- noise
def test_quiet_noise_is_ok_and_states_the_default_sweeps_mde() -> None:
    lat = 0.05 * np.exp(np.random.default_rng(0).normal(0, 0.02, 20))
    assert robust_cv(lat) == pytest.approx(0.02, abs=0.01)
    check = noise_check(lat, 20)
    assert check.status == "ok", check.summary
    assert 1.2 <= check.values["mde"] < MDE_LIMIT
    assert "12 budgets x 3 trials" in check.summary


def test_slow_runs_and_failures_warn() -> None:
    lat = [0.05] * 15 + [0.1] * 5
    check = noise_check(lat, 20)
    assert check.status == "warn" and "5 of 20 runs were over x1.5" in check.summary and check.fix
    failed = noise_check([0.05, 0.05], 20, ["error: boom"])
    assert failed.status == "warn" and "only 2 of 20 probe runs succeeded: error: boom" in failed.summary


def test_noise_without_the_analysis_is_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "analysis", None)  # import analysis -> ImportError, as where dask is missing
    lat = 0.05 * np.exp(np.random.default_rng(0).normal(0, 0.02, 20))
    check = noise_check(lat, 20)
    assert check.status == "ok" and "no mde: the analysis cannot be imported here" in check.summary
    assert math.isnan(check.values["mde"]) and check.values["cv_robust"] > 0


# --------------------------------------------------------------------------- input checks and the JSON file
def test_bad_inputs_raise_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match=r"runs must be an integer from 3 to 1000, got 2"):
        doctor("cpu", runs=2)
    with pytest.raises(DeviceUnavailableError, match=r"unknown device 'tpu'; choices: cpu, cuda, mps"):
        doctor("tpu", runs=3)
    with pytest.raises(ConfigError, match=r"unknown check status 'bad'"):
        Check("host", "x", "bad", "")


def test_json_round_trip(cpu_report: Report, tmp_path: Path) -> None:
    path = write_json(cpu_report, tmp_path / "doctor.json")
    data = json.loads(path.read_text())
    assert data["doctor_format"] == 1 and data["verdict"] == cpu_report.verdict
    assert [w["check"] for w in data["warnings"]] == [c.name for c in cpu_report.warnings]
    back = read_json(path)
    assert back.to_dict() == cpu_report.to_dict()
    nan = Report("cpu", (Check("memory", "driver", "info", "x", values={"driver": math.nan}),))
    assert math.isnan(read_json(write_json(nan, tmp_path / "nan.json")).check("driver").values["driver"])


def test_json_path_is_checked(tmp_path: Path, cpu_report: Report) -> None:
    with pytest.raises(OutputError, match=r"folder .*nope.* does not exist"):
        write_json(cpu_report, tmp_path / "nope" / "d.json")
    with pytest.raises(OutputError, match=r"is a folder"):
        write_json(cpu_report, tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({"doctor_format": 99}))
    with pytest.raises(ConfigError, match=r"doctor file format 99 is not supported; expected 1"):
        read_json(tmp_path / "other.json")


# --------------------------------------------------------------------------- the command line
@pytest.mark.process
@pytest.mark.parametrize(("args", "message"), [
    (["--device", "tpu"], "error: unknown device 'tpu'; choices: cpu, cuda, mps (available here: "),
    (["--device", "sim"], "error: unknown device 'sim'"),
    (["--runs", "many"], "error: runs must be an integer from 3 to 1000, got 'many'"),
    (["--json", "no/such/folder/d.json"], "error: cannot write 'no/such/folder/d.json': folder"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    res = cli("doctor", *args, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())


@pytest.mark.process
def test_cli_writes_the_report(tmp_path: Path) -> None:
    res = cli("doctor", "--device", "cpu", "--runs", "3", "--json", "d.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "verdict: " in res.stdout and "sync/sync" in res.stdout and "wrote d.json" in res.stdout
    report = read_json(tmp_path / "d.json")
    assert report.device == "cpu" and report.check("noise").values["runs"] == 3
