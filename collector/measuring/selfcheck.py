"""The measuring half of ``collector doctor``: probes of a device backend that return raw figures.

Nothing here judges; :mod:`collector.doctor` turns the figures into checks.
Every probe goes through the backends the sweeps use
(:mod:`collector.measuring.devices`, :mod:`collector.measuring.memory`,
:func:`collector.measuring.measurement.measure`), so what it sees is what a
sweep sees:

* :func:`sync_probe`: a matmul of fixed size, repeated until it takes about
  ``min_time`` seconds, timed three ways: host clock around the launches
  only, host clock until :meth:`Backend.synchronize` returns, and device
  events around the same launches (:class:`EventTimer`; on cpu these are
  host clocks). A synchronize that does not wait shows as a host time far
  below the event time.
* :func:`generation_probe`: one real generation per timing mode, its step
  times against its latency.
* :func:`memory_probe`: the allocator, driver and limit figures of the
  backend (NaN where it has none), before and after a tensor of known size,
  and the host's resident set, available memory and swap.
* :func:`noise_probe`: ``runs`` generations of one small cell (after one
  warm-up), their latencies.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from collector.measuring.devices import Backend, EventTimer, now
from collector.measuring.measurement import load_model, measure
from collector.measuring.memory import HostReader, host_reading

__all__ = [
    "GenerationProbe",
    "MemoryProbe",
    "SyncProbe",
    "generation_probe",
    "memory_probe",
    "noise_probe",
    "sync_probe",
    "torch_version",
]

_NAN = float("nan")


def torch_version() -> str:
    """The installed torch version."""
    return str(torch.__version__)


@dataclass(frozen=True)
class SyncProbe:
    """A fixed-size matmul timed by the host clock and by device events (seconds; medians of ``repeats``).

    Attributes
    ----------
    size, reps
        Matrix side and matmuls per timing.
    flops
        Floating-point operations per timing (``2 * size**3 * reps``).
    launch_s
        Host clock from before the first launch to after the last launch, no synchronisation.
    host_s
        Host clock from before the first launch until ``synchronize`` returned.
    event_s
        Device events around the launches (host clock where the backend has no events).
    uses_events
        Whether ``event_s`` came from device events.
    """

    size: int
    reps: int
    flops: float
    launch_s: float
    host_s: float
    event_s: float
    uses_events: bool


def _time_matmuls(backend: Backend, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor,
                  reps: int) -> tuple[float, float, float]:
    timer = EventTimer(backend, capacity=2)
    backend.synchronize()
    t0 = now()
    timer.record()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    timer.record()
    t1 = now()
    backend.synchronize()
    t2 = now()
    elapsed = timer.elapsed()
    return t1 - t0, t2 - t0, elapsed[-1]


def sync_probe(backend: Backend, *, size: int = 512, min_time: float = 0.02, repeats: int = 5,
               max_reps: int = 1024) -> SyncProbe:
    """Time a fixed-size float32 matmul with the host clock and with device events.

    The number of matmuls per timing doubles from 1 until one timing takes
    ``min_time`` seconds by either clock (or ``max_reps`` is reached); then
    ``repeats`` timings are taken and their medians returned.
    """
    dev = backend.torch_device()
    gen = torch.Generator().manual_seed(0)
    a = torch.randn((size, size), generator=gen).to(dev)
    b = torch.randn((size, size), generator=gen).to(dev)
    out = torch.empty((size, size), device=dev)
    with torch.inference_mode():
        _time_matmuls(backend, a, b, out, 1)  # first call: kernels load, not timed
        reps = 1
        while reps < max_reps:
            _, host, event = _time_matmuls(backend, a, b, out, reps)
            if max(host, event) >= min_time:
                break
            reps *= 2
        times = [_time_matmuls(backend, a, b, out, reps) for _ in range(max(int(repeats), 1))]
    launch, host, event = (statistics.median(t[i] for t in times) for i in range(3))
    return SyncProbe(size=size, reps=reps, flops=2.0 * size**3 * reps, launch_s=launch, host_s=host, event_s=event,
                     uses_events=backend.has_events)


@dataclass(frozen=True)
class GenerationProbe:
    """One real generation: its latency, prefill and step times for one timing mode (seconds)."""

    timing: str
    status: str
    error: str
    latency: float
    prefill_time: float
    step_sum: float
    steps: int


def generation_probe(device: str, timing: str, *, model: str = "tiny-gpt2", budget: int = 16,
                     prompt_len: int = 8) -> GenerationProbe:
    """A warm-up and one generation of ``budget`` tokens with ``timing``; the sum of its step times against latency."""
    loaded = load_model(model=model, device=device)
    kw = dict(model=model, device=device, budget=budget, prompt_len=prompt_len, timing=timing, loaded=loaded)
    measure(**kw)  # type: ignore[arg-type]
    rec = measure(**kw)  # type: ignore[arg-type]
    steps = tuple(rec.step_times)
    return GenerationProbe(timing=timing, status=rec.status, error=rec.error, latency=rec.latency,
                           prefill_time=rec.prefill_time, step_sum=math.fsum(steps) if steps else _NAN,
                           steps=len(steps))


@dataclass(frozen=True)
class MemoryProbe:
    """The memory calls of a backend and the host (bytes; NaN where there is no such figure).

    ``tensor_bytes`` is the size of the tensor allocated between ``allocated_before``
    and ``allocated_after``; ``host_error`` names a host read that failed ('' when none).
    """

    allocated_before: float
    allocated_after: float
    tensor_bytes: float
    peak: float
    driver: float
    limit: float
    rss: float
    rss_fast: bool
    available: float
    swap_used: float
    host_error: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _read(errors: dict[str, str], name: str, call: Callable[[], float]) -> float:
    try:
        return float(call())
    except Exception as exc:  # noqa: BLE001 - a probe never fails; the error is reported
        errors[name] = f"{type(exc).__name__}: {exc}"
        return _NAN


def memory_probe(backend: Backend, *, mib: int = 64) -> MemoryProbe:
    """Read every memory figure the backend and host offer, around a float32 tensor of ``mib`` MiB."""
    errors: dict[str, str] = {}
    backend.synchronize()
    try:
        backend.reset_peak()
    except Exception as exc:  # noqa: BLE001 - a probe never fails; the error is reported
        errors["reset_peak"] = f"{type(exc).__name__}: {exc}"
    before = _read(errors, "allocated", backend.device_allocated)
    x = torch.ones((mib * 2**20 // 4,), dtype=torch.float32, device=backend.torch_device())
    backend.synchronize()
    after = _read(errors, "allocated", backend.device_allocated)
    peak = _read(errors, "peak", backend.device_peak)
    driver = _read(errors, "driver", backend.device_driver)
    limit = _read(errors, "limit", backend.device_limit)
    nbytes = float(x.element_size() * x.nelement())
    del x
    with HostReader() as reader:
        fast = reader.fast
        rss = _read(errors, "rss", reader.rss)
        avail = _read(errors, "available", reader.available)
    swap = _NAN
    host_error = ""
    try:
        swap = host_reading()[2]
    except Exception as exc:  # noqa: BLE001
        host_error = f"{type(exc).__name__}: {exc}"
    return MemoryProbe(allocated_before=before, allocated_after=after, tensor_bytes=nbytes, peak=peak, driver=driver,
                       limit=limit, rss=rss, rss_fast=fast, available=avail, swap_used=swap, host_error=host_error,
                       errors=errors)


def noise_probe(device: str, runs: int, *, model: str = "tiny-gpt2", budget: int = 16, prompt_len: int = 8,
                warmup: int = 1) -> tuple[list[float], list[str]]:
    """``runs`` generations of one cell (cache on, timing ``ends``) after ``warmup``; (latencies of the ok runs, errors)."""
    loaded = load_model(model=model, device=device)
    kw = dict(model=model, device=device, budget=budget, prompt_len=prompt_len, loaded=loaded)
    for _ in range(warmup):
        measure(**kw)  # type: ignore[arg-type]
    latencies, errors = [], []
    for _ in range(runs):
        rec = measure(**kw)  # type: ignore[arg-type]
        if rec.status == "ok":
            latencies.append(float(rec.latency))
        else:
            errors.append(f"{rec.status}: {rec.error}")
    return latencies, errors
