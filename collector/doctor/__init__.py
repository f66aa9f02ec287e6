"""``collector doctor``: a self-check of the instrument on this machine (like ``pyperf system show``).

:func:`doctor` runs, in this order:

1. the host probes (:mod:`collector.doctor.host`): timer resolution, background
   load, CPU frequency governor, power and thermal state;
2. the device probes through the sweeps' own backends
   (:mod:`collector.measuring.selfcheck`, judged in :mod:`collector.doctor.device`):
   sync correctness on a fixed-size matmul (host clock vs device events), the
   step times of real ``tiny-gpt2`` generations against their latency
   (``timing=step``, and ``timing=events`` where the device has events), the
   allocator / driver / host memory reads;
3. the noise of ``runs`` generations of one small cell and the smallest regime
   a default sweep could detect at that noise (:mod:`collector.doctor.noise`).

The result is a :class:`Report` with a verdict (``ok`` / ``warnings``, each
warning with its fix), written as JSON by :func:`write_json`.
:func:`host_report` runs only the cheap host probes (milliseconds plus a
short CPU-load window).

The mps path (``torch.mps.synchronize``, ``torch.mps.Event``,
``current_allocated_memory``, ``driver_allocated_memory``) is tested with
fakes of ``torch.mps`` and has not yet been run on a Mac.
"""

from __future__ import annotations

import datetime as _dt
import operator
import os
import platform
from collections.abc import Callable
from typing import Any

from collector.doctor.host import GOVERNOR_PATH, host_checks
from collector.doctor.report import Check, Report, read_json, write_json
from collector.shared.errors import ConfigError

__all__ = ["Check", "Report", "doctor", "host_report", "read_json", "write_json"]

#: Most probe runs the doctor accepts (each is one generation of the tiny model).
MAX_RUNS = 1000


def _check_runs(runs: Any) -> int:
    try:
        n = operator.index(runs)
    except TypeError:
        try:
            n = int(str(runs), 10)
        except ValueError:
            raise ConfigError(f"runs must be an integer from 3 to {MAX_RUNS}, got {runs!r}") from None
    if isinstance(runs, bool) or not 3 <= n <= MAX_RUNS:
        raise ConfigError(f"runs must be an integer from 3 to {MAX_RUNS}, got {runs!r}")
    return n


def _machine(device: str) -> dict[str, Any]:
    from collector import __version__
    from collector.measuring.environment import cpu_name, gpu_name, package_version

    return {"platform": platform.platform(), "machine": platform.machine(), "processor": cpu_name(),
            "gpu_name": gpu_name([device]), "cpus": os.cpu_count(), "python_version": platform.python_version(),
            "package_version": __version__, "torch_version": package_version("torch"),
            "transformers_version": package_version("transformers")}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def host_report(device: str = "cpu", *, governor_path: str | os.PathLike[str] = GOVERNOR_PATH,
                load_window: float = 0.2) -> Report:
    """Only the cheap host probes (timer, load, governor, thermal/power): no model, no device work."""
    return Report(device=device, checks=tuple(host_checks(governor_path=governor_path, load_window=load_window)),
                  created=_now())


def doctor(device: str | None = None, *, runs: int = 20, governor_path: str | os.PathLike[str] = GOVERNOR_PATH,
           load_window: float = 0.5, on_check: Callable[[Check], None] | None = None) -> Report:
    """Check the instrument on this machine.

    Parameters
    ----------
    device
        ``cpu``, ``cuda`` or ``mps``; None: the device a quick sweep would use.
    runs
        Generations of the noise probe (3..1000; default 20).
    governor_path
        Where to read the CPU frequency governor (a missing file: the check says it is unavailable).
    load_window
        Seconds over which the CPU busy percent is sampled.
    on_check
        Called with each check as soon as it is made (a progress display).

    Returns
    -------
    Report
        Every check, the verdict (``ok`` / ``warnings``) and the machine.

    Raises
    ------
    ConfigError
        ``runs`` out of range.
    DeviceUnavailableError
        An unknown device, or one this machine lacks (before any probe runs).
    """
    n = _check_runs(runs)
    from collector.doctor import device as judge
    from collector.doctor.noise import noise_check
    from collector.measuring import selfcheck
    from collector.measuring.devices import get_backend

    if device is None:
        from collector.measuring.environment import best_device

        device = best_device()
    backend = get_backend(device)  # DeviceUnavailableError, before anything runs
    checks: list[Check] = []

    def add(*new: Check) -> None:
        for c in new:
            checks.append(c)
            if on_check is not None:
                on_check(c)

    add(*host_checks(governor_path=governor_path, load_window=load_window))
    add(judge.sync_check(device, selfcheck.sync_probe(backend)))
    add(judge.generation_check(device, selfcheck.generation_probe(device, "step")))
    if backend.has_events:
        add(judge.generation_check(device, selfcheck.generation_probe(device, "events")))
    else:
        add(judge.generation_check(device, _NoEvents(), has_events=False))
    add(*judge.memory_checks(device, selfcheck.memory_probe(backend), backend.has_device_memory, backend.keeps_peak))
    latencies, errors = selfcheck.noise_probe(device, n)
    add(noise_check(latencies, n, errors))
    return Report(device=device, checks=tuple(checks), machine=_machine(device), created=_now())


class _NoEvents:
    """Stands in for a generation probe where the device has no events (nothing is run)."""

    timing = "events"
