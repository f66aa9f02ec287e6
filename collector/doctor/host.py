"""The host probes of the doctor (torch-free, cheap: milliseconds, plus ``load_window`` seconds of CPU sampling).

* :func:`timer_check`: ``time.get_clock_info('perf_counter')`` and the
  smallest non-zero difference of consecutive reads;
* :func:`load_check`: load average against the CPU count, and psutil's CPU
  percent over a short window;
* :func:`governor_check`: the Linux CPU frequency scaling governor;
* :func:`thermal_checks`: macOS ``pmset -g therm`` / ``pmset -g batt`` and
  ``nvidia-smi`` clocks, power limit and temperature, where the commands exist.

A probe that cannot answer returns a check with status ``unavailable`` and
the reason; none raises.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence

import psutil

from collector.doctor.report import Check

__all__ = [
    "GOVERNOR_PATH",
    "LOAD_LIMIT",
    "TIMER_LIMIT",
    "governor_check",
    "host_checks",
    "load_check",
    "nvidia_check",
    "pmset_checks",
    "thermal_checks",
    "timer_check",
]

#: Where Linux exposes the frequency scaling governor of the first CPU.
GOVERNOR_PATH = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
#: Coarsest timer step (seconds) that does not warn: a decode step is >= tens of microseconds.
TIMER_LIMIT = 1e-6
#: Load average per CPU (and CPU busy fraction) above which the host is called busy.
LOAD_LIMIT = 0.5
#: GPU temperature (C) from which nvidia-smi's reading warns (clocks are throttled near it).
GPU_HOT_C = 85.0


def timer_check(reads: int = 20_000) -> Check:
    """Resolution of the host clock: declared (``get_clock_info``) and measured (smallest non-zero step).

    Warns when the measured step exceeds :data:`TIMER_LIMIT`.
    """
    info = time.get_clock_info("perf_counter")
    pc = time.perf_counter
    smallest = math.inf
    last = pc()
    for _ in range(max(int(reads), 2)):
        t = pc()
        if t != last and t - last < smallest:
            smallest = t - last
        last = t
    values = {"implementation": info.implementation, "declared_resolution_s": float(info.resolution),
              "monotonic": bool(info.monotonic), "measured_step_s": smallest, "limit_s": TIMER_LIMIT}
    line = (f"perf_counter ({info.implementation}): declared {info.resolution:.3g} s, "
            f"smallest step seen {smallest:.3g} s")
    if not info.monotonic or not math.isfinite(smallest) or smallest > TIMER_LIMIT:
        return Check("timer", "timer", "warn", line + f" (over {TIMER_LIMIT:g} s or not monotonic)",
                     fix="time longer generations (larger budgets) or use a platform with a finer perf_counter",
                     values=values)
    return Check("timer", "timer", "ok", line, values=values)


def load_check(window: float = 0.5) -> Check:
    """Background load: load average (1 min) per CPU and psutil's CPU percent over ``window`` seconds.

    Warns when either is above :data:`LOAD_LIMIT` (per CPU; busy fraction).
    """
    cpus = os.cpu_count() or 1
    try:
        load1 = float(os.getloadavg()[0])
    except (OSError, AttributeError):
        load1 = math.nan
    try:
        busy = float(psutil.cpu_percent(interval=max(float(window), 0.05))) / 100.0
    except Exception:  # noqa: BLE001 - a probe never fails
        busy = math.nan
    values = {"load_avg_1min": load1, "cpus": cpus, "cpu_busy": busy, "limit_per_cpu": LOAD_LIMIT}
    if math.isnan(load1) and math.isnan(busy):
        return Check("host", "load", "unavailable", "neither the load average nor the CPU percent can be read here",
                     values=values)
    parts = []
    if not math.isnan(load1):
        parts.append(f"load average {load1:.2f} on {cpus} CPUs ({load1 / cpus:.2f} per CPU)")
    if not math.isnan(busy):
        parts.append(f"CPU busy {busy:.0%} over {window:g} s")
    line = "; ".join(parts)
    if (not math.isnan(load1) and load1 / cpus > LOAD_LIMIT) or (not math.isnan(busy) and busy > LOAD_LIMIT):
        return Check("host", "load", "warn", line + f" (over {LOAD_LIMIT:.0%} of the CPUs)",
                     fix="stop other programs (builds, browsers, other benchmarks) before a sweep; "
                         "runs share the CPUs with them",
                     values=values)
    return Check("host", "load", "ok", line, values=values)


def governor_check(path: str | os.PathLike[str] = GOVERNOR_PATH) -> Check:
    """The CPU frequency scaling governor (Linux ``scaling_governor``); warns unless ``performance``."""
    freq: dict[str, float] = {}
    try:
        f = psutil.cpu_freq()
        if f is not None:
            freq = {"cpu_mhz": float(f.current), "cpu_mhz_min": float(f.min), "cpu_mhz_max": float(f.max)}
    except Exception:  # noqa: BLE001 - a probe never fails
        pass
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            governor = fh.read().strip()
    except OSError as exc:
        return Check("host", "governor", "unavailable",
                     f"no CPU frequency governor to read ({os.fspath(path)}: {exc.strerror or exc})",
                     values={"path": os.fspath(path), **freq})
    values = {"governor": governor, "path": os.fspath(path), **freq}
    if governor != "performance":
        return Check("host", "governor", "warn",
                     f"CPU governor {governor!r}: the clock speed changes with load, between and within runs",
                     fix="set 'performance': sudo cpupower frequency-set -g performance "
                         "(or: echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
                     values=values)
    return Check("host", "governor", "ok", "CPU governor 'performance'", values=values)


def _command(cmd: Sequence[str], timeout: float = 10.0) -> tuple[str, str]:
    """(stdout, reason it failed or ''); never raises."""
    if shutil.which(cmd[0]) is None:
        return "", f"command {cmd[0]!r} not found"
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "", f"{' '.join(cmd)!r} failed: {exc}"
    if out.returncode != 0:
        err = (out.stderr or out.stdout).strip().splitlines()
        return "", f"{' '.join(cmd)!r} exited {out.returncode}" + (f": {err[0]}" if err else "")
    return out.stdout, ""


def pmset_checks() -> list[Check]:
    """macOS thermal and power state: ``pmset -g therm`` (CPU speed limit) and ``pmset -g batt`` (on battery)."""
    checks = []
    text, why = _command(["pmset", "-g", "therm"])
    if why:
        checks.append(Check("host", "thermal", "unavailable", f"no thermal state ({why})"))
    else:
        m = re.search(r"CPU_Speed_Limit\s*=\s*(\d+)", text)
        limit = float(m.group(1)) if m else math.nan
        if limit < 100:
            checks.append(Check("host", "thermal", "warn", f"CPU speed limited to {limit:.0f}% (thermal pressure)",
                                fix="let the Mac cool down, raise it off the desk, and rerun when pmset -g therm "
                                    "shows no limit", values={"cpu_speed_limit": limit}))
        else:
            checks.append(Check("host", "thermal", "ok", "no thermal speed limit (pmset -g therm)",
                                values={"cpu_speed_limit": limit}))
    text, why = _command(["pmset", "-g", "batt"])
    if why:
        checks.append(Check("host", "power", "unavailable", f"no power source state ({why})"))
    elif "Battery Power" in text:
        checks.append(Check("host", "power", "warn", "running on battery power (the OS may slow the chip down)",
                            fix="plug in the power adapter (and turn Low Power Mode off) before a sweep",
                            values={"source": "battery"}))
    else:
        checks.append(Check("host", "power", "ok", "on AC power (pmset -g batt)", values={"source": "ac"}))
    return checks


def _number(text: str) -> float:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return math.nan


def nvidia_check() -> Check:
    """``nvidia-smi`` SM clock, its maximum, power limit and temperature of each GPU; warns on a hot GPU."""
    query = "clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
    text, why = _command(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"])
    if why:
        return Check("host", "gpu_state", "unavailable", f"no GPU clocks or power state ({why})")
    rows = [[_number(x) for x in line.split(",")] for line in text.strip().splitlines() if line.strip()]
    rows = [r + [math.nan] * (4 - len(r)) for r in rows]
    if not rows:
        return Check("host", "gpu_state", "unavailable", "nvidia-smi listed no GPU")
    values = {f"gpu{i}_{k}": r[j] for i, r in enumerate(rows)
              for j, k in enumerate(("sm_mhz", "sm_max_mhz", "power_limit_w", "temperature_c"))}
    line = "; ".join(f"GPU {i}: SM {r[0]:.0f}/{r[1]:.0f} MHz, power limit {r[2]:.0f} W, {r[3]:.0f} C"
                     for i, r in enumerate(rows))
    hot = [i for i, r in enumerate(rows) if r[3] >= GPU_HOT_C]
    if hot:
        return Check("host", "gpu_state", "warn", line + f" (GPU {', '.join(map(str, hot))} at or over {GPU_HOT_C:.0f} C)",
                     fix="let the GPU cool down or improve its airflow; hot GPUs lower their clocks", values=values)
    return Check("host", "gpu_state", "info", line + " (an idle GPU runs below its maximum clock)", values=values)


def thermal_checks() -> list[Check]:
    """Power and thermal state where readable: pmset on macOS, nvidia-smi where present (each says when absent)."""
    checks = pmset_checks() if shutil.which("pmset") else [
        Check("host", "thermal", "unavailable", "no thermal state: pmset (macOS) not found")]
    checks.append(nvidia_check())
    return checks


def host_checks(*, governor_path: str | os.PathLike[str] = GOVERNOR_PATH, load_window: float = 0.5) -> list[Check]:
    """Every cheap host probe: timer, load, governor, thermal and power state."""
    return [timer_check(), load_check(load_window), governor_check(governor_path), *thermal_checks()]
