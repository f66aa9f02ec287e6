"""The machine a sweep runs on: dataset attrs, the resume check and ``collector info``.

Torch-free where possible: versions come from package metadata
(:mod:`importlib.metadata`), the CPU name from ``sysctl`` (macOS) or
``/proc/cpuinfo`` (Linux), the NVIDIA GPU name from ``nvidia-smi``. Torch is
imported only to ask which devices are available (cuda, mps) and, when
``nvidia-smi`` is missing, for the cuda device name.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from collector.shared.hardware import PREFERENCE, REAL_DEVICES

__all__ = [
    "HOST_ENV",
    "RESUME_KEYS",
    "available_devices",
    "best_device",
    "code_commit",
    "collect",
    "cpu_count",
    "cpu_name",
    "gpu_name",
    "host_name",
    "info",
    "package_version",
    "resume_changes",
]

#: Environment variable that names this host in place of its network name (containers and fleets whose
#: hostnames are random or all the same; two workers of one host that should be two origins).
HOST_ENV = "DECODE_REGIMES_HOST"

#: Environment entries that must not change between a sweep and its resume.
RESUME_KEYS: tuple[str, ...] = ("host", "torch_version", "gpu_name", "processor", "machine")


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``""`` when not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _run(cmd: Sequence[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """CPU name: the chip on macOS (``sysctl -n machdep.cpu.brand_string``), ``model name`` on Linux."""
    if platform.system() == "Darwin":
        name = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if name:
            return name
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_name() -> str:
    """The name of this host as data record it: :data:`HOST_ENV` (``DECODE_REGIMES_HOST``) when set and not
    blank, else the network name of this machine (``platform.node()``)."""
    return os.environ.get(HOST_ENV, "").strip() or platform.node()


@functools.lru_cache(maxsize=1)
def _torch_devices() -> tuple[str, ...]:
    from collector.measuring.devices import available_devices as torch_available

    return tuple(torch_available())


def available_devices(*, with_sim: bool = False) -> list[str]:
    """Backends that can run here (cpu always; cuda, mps asked through torch); ``sim`` when asked."""
    if not package_version("torch"):
        devices = ["cpu"]  # pragma: no cover - torch is a dependency
    else:
        devices = list(_torch_devices())
    return devices + (["sim"] if with_sim else [])


def best_device() -> str:
    """The device a quick sweep should use: the first of :data:`collector.shared.hardware.PREFERENCE` available here
    (mps, else cuda, else cpu)."""
    here = available_devices()
    for d in PREFERENCE[:-1]:
        if d in here:
            return d
    return PREFERENCE[-1]


def gpu_name(devices: Sequence[str]) -> str:
    """GPU name for the devices a sweep uses: the chip for mps, the card for cuda, else ``""``."""
    if "mps" in devices:
        return cpu_name()
    if "cuda" in devices:
        name = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).splitlines()
        if name:
            return name[0].strip()
        try:  # pragma: no cover - needs a GPU without nvidia-smi
            import torch

            return str(torch.cuda.get_device_name(torch.cuda.current_device()))
        except Exception:  # noqa: BLE001 - a name is nice to have, never required
            return ""
    return ""


def _os_version() -> str:
    if platform.system() == "Darwin":
        mac = platform.mac_ver()[0]
        if mac:
            return f"macOS {mac}"
    return f"{platform.system()} {platform.release()}"


def collect(devices: Sequence[str]) -> dict[str, Any]:
    """Environment of a sweep on ``devices`` as dataset attrs (plus ``host``, kept in the journal only).

    ``torch_version`` / ``transformers_version`` are empty when every device
    is ``sim`` (no torch is used then).
    """
    from collector import __version__

    real = any(d in REAL_DEVICES for d in devices)  # not sim, not http (a server we only send requests to)
    return {
        "host": host_name(),
        "package_version": __version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_name(),
        "gpu_name": gpu_name(devices),
        "os_version": _os_version(),
        "python_version": platform.python_version(),
        "torch_version": package_version("torch") if real else "",
        "transformers_version": package_version("transformers") if real else "",
        "cpu_count": cpu_count(),
        "code_commit": code_commit(),
    }


def cpu_count() -> str:
    """Logical CPUs of the host and those this process may use: ``"8/8"`` (``os.cpu_count()`` / affinity)."""
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on macOS
        usable = total
    return f"{total}/{usable}"


def code_commit(folder: str | None = None) -> str:
    """The git commit checked out in ``folder`` (default: the working directory), with ``-dirty`` when
    tracked files differ from it; ``""`` when it is not a git repository or git is missing."""
    where = folder or os.getcwd()
    head = _run(["git", "-C", where, "rev-parse", "HEAD"])
    if not head:
        return ""
    changed = _run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"])
    return head + ("-dirty" if changed else "")


def resume_changes(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"key: 'old' -> 'new'"`` for each :data:`RESUME_KEYS` entry that changed."""
    return [f"{k}: {stored.get(k, '')!r} -> {now.get(k, '')!r}" for k in RESUME_KEYS if stored.get(k, "") != now.get(k, "")]


def info() -> dict[str, Any]:
    """What ``python -m collector info`` shows: devices, versions, memory.

    Returns
    -------
    dict
        ``devices`` (list of dicts: name, available, detail), ``versions``
        (package -> version), ``memory`` (bytes: total, available, swap_total,
        swap_used, and per device ``device_limit`` where known), ``host``,
        ``platform``, ``processor``.
    """
    import psutil

    from collector import __version__

    here = available_devices()
    devices = [{"name": "cpu", "available": True, "detail": cpu_name()}]
    memory: dict[str, Any] = {}
    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    memory.update(total=float(vm.total), available=float(vm.available), swap_total=float(sw.total),
                  swap_used=float(sw.used))
    for d in [name for name in REAL_DEVICES if name != "cpu"]:  # the accelerators
        detail, limit = "", float("nan")
        if d in here:
            detail = gpu_name([d])
            try:
                from collector.measuring.devices import get_backend

                limit = get_backend(d).device_limit()
            except Exception:  # noqa: BLE001 - info is best effort
                pass
            memory[f"{d}_limit"] = limit
        devices.append({"name": d, "available": d in here, "detail": detail})
    devices.append({"name": "sim", "available": True, "detail": "simulated latency model (collector.shared.sim)"})
    versions = {"decode-regimes": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "numpy", "xarray", "netCDF4", "psutil", "rich"):
        versions[pkg] = package_version(pkg) or "not installed"
    return {
        "host": host_name(),
        "platform": platform.platform(),
        "processor": cpu_name(),
        "best_device": best_device(),
        "devices": devices,
        "versions": versions,
        "memory": memory,
    }
