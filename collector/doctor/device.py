"""The device checks of the doctor: the figures of :mod:`collector.measuring.selfcheck` judged against thresholds.

This module is torch-free: it takes the probes' dataclasses and returns
:class:`~collector.doctor.report.Check` objects. Thresholds:

* sync: host time until ``synchronize`` returns over the device-event time
  of the same matmuls in [:data:`SYNC_LOW`, :data:`SYNC_HIGH`] (below: the
  synchronize returned before the device finished; above: the events miss
  work the host waited for);
* step sums: ``timing=step`` steps add up to the latency exactly
  (:data:`STEP_EXACT` relative); ``timing=events`` within
  :data:`EVENTS_TOLERANCE` relative or 0.5 ms;
* allocator: the allocated figure grows by at least :data:`ALLOC_SEEN` of a
  64 MiB tensor.
"""

from __future__ import annotations

import math
from typing import Any

from collector.doctor.report import Check

__all__ = [
    "ALLOC_SEEN",
    "EVENTS_TOLERANCE",
    "STEP_EXACT",
    "SYNC_HIGH",
    "SYNC_LOW",
    "generation_check",
    "memory_checks",
    "sync_check",
]

SYNC_LOW = 0.8
SYNC_HIGH = 1.5
STEP_EXACT = 1e-6
EVENTS_TOLERANCE = 0.05
ALLOC_SEEN = 0.9

_MIB = 2.0**20


def _ms(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if math.isfinite(x) else "n/a"


def _mib(x: float) -> str:
    return f"{x / _MIB:,.0f} MiB" if math.isfinite(x) else "n/a"


def sync_check(device: str, probe: Any) -> Check:
    """Judge a :class:`~collector.measuring.selfcheck.SyncProbe` (matmul timed by host clock and by events)."""
    values = {"size": probe.size, "reps": probe.reps, "flops": probe.flops, "launch_s": probe.launch_s,
              "host_s": probe.host_s, "event_s": probe.event_s, "uses_events": probe.uses_events,
              "low": SYNC_LOW, "high": SYNC_HIGH}
    kernel = f"{probe.reps} x matmul {probe.size}x{probe.size} float32"
    if not probe.uses_events:
        rate = probe.flops / probe.host_s / 1e9 if probe.host_s > 0 else math.nan
        return Check("sync", "sync", "ok",
                     f"{device}: work is synchronous and events are host clocks, so sync is exact; "
                     f"{kernel}: {_ms(probe.host_s)} ({rate:.3g} GFLOP/s)", values=values)
    ratio = probe.host_s / probe.event_s if probe.event_s > 0 else math.nan
    values["ratio"] = ratio
    rate = probe.flops / probe.event_s / 1e9 if probe.event_s > 0 else math.nan
    line = (f"{kernel}: host clock with sync {_ms(probe.host_s)}, device events {_ms(probe.event_s)} "
            f"(host/events x{ratio:.2f}; launches alone {_ms(probe.launch_s)}; {rate:.3g} GFLOP/s)")
    if not math.isfinite(ratio) or ratio < SYNC_LOW:
        return Check("sync", "sync", "warn", line + f": synchronize returned before the device finished "
                     f"(below x{SYNC_LOW})",
                     fix="host-clock timings (--timing step, ends) are too short on this device: use --timing events, "
                         "and report this file with the torch version",
                     values=values)
    if ratio > SYNC_HIGH and probe.host_s - probe.event_s > 1e-3:
        return Check("sync", "sync", "warn", line + f": the events miss time the host waited for (over x{SYNC_HIGH})",
                     fix="event timings (--timing events) are too short on this device: use --timing step",
                     values=values)
    return Check("sync", "sync", "ok", line, values=values)


def generation_check(device: str, probe: Any, has_events: bool = True) -> Check:
    """Judge a :class:`~collector.measuring.selfcheck.GenerationProbe`: its step times against its latency."""
    name = f"steps_{probe.timing}"
    if probe.timing == "events" and not has_events:
        return Check("sync", name, "unavailable",
                     f"{device} has no device events: timing=events reads the host clock (exact on a synchronous "
                     "device)")
    values = {"latency": probe.latency, "prefill_time": probe.prefill_time, "step_sum": probe.step_sum,
              "steps": probe.steps}
    if probe.status != "ok":
        return Check("sync", name, "warn", f"a tiny-gpt2 generation with timing={probe.timing} failed: "
                     f"{probe.status}: {probe.error}",
                     fix=f"--timing {probe.timing} cannot be used on this device: report this file", values=values)
    diff = abs(probe.step_sum - probe.latency)
    values["difference"] = diff
    line = (f"timing={probe.timing}: {probe.steps} steps sum to {_ms(probe.step_sum)}, latency {_ms(probe.latency)} "
            f"(difference {diff * 1e6:.3g} us)")
    if probe.timing == "step":
        ok = diff <= STEP_EXACT * max(probe.latency, 1e-3)
        fix = "the per-step times do not add up: report this file (a bug in the clock)"
    else:
        ok = diff <= max(EVENTS_TOLERANCE * probe.latency, 5e-4)
        fix = "device events disagree with the host clock: use --timing step on this device, and report this file"
    if not math.isfinite(diff) or not ok:
        return Check("sync", name, "warn", line + " (outside tolerance)", fix=fix, values=values)
    return Check("sync", name, "ok", line, values=values)


def memory_checks(device: str, probe: Any, has_device_memory: bool, keeps_peak: bool) -> list[Check]:
    """Judge a :class:`~collector.measuring.selfcheck.MemoryProbe`: allocator, driver and host reads."""
    checks: list[Check] = []
    errs = dict(probe.errors)
    if not has_device_memory:
        checks.append(Check("memory", "allocator", "unavailable",
                            f"{device} has no allocator figures: mem_device_peak and mem_device_driver are NaN "
                            "(the host's RSS stands in)"))
    else:
        grew = probe.allocated_after - probe.allocated_before
        values = {"allocated_before": probe.allocated_before, "allocated_after": probe.allocated_after,
                  "tensor_bytes": probe.tensor_bytes, "peak": probe.peak, "limit": probe.limit,
                  "keeps_peak": keeps_peak}
        line = (f"allocated {_mib(probe.allocated_before)} -> {_mib(probe.allocated_after)} around a "
                f"{_mib(probe.tensor_bytes)} tensor; peak "
                f"{_mib(probe.peak) if keeps_peak else 'sampled (the allocator keeps none)'}; limit {_mib(probe.limit)}")
        if "allocated" in errs or not math.isfinite(grew) or grew < ALLOC_SEEN * probe.tensor_bytes:
            why = errs.get("allocated", f"it grew by {_mib(grew)}")
            checks.append(Check("memory", "allocator", "warn", line + f": the allocator read missed the tensor ({why})",
                                fix="mem_device_peak is not reliable with this torch version: report this file",
                                values=values))
        else:
            checks.append(Check("memory", "allocator", "ok", line, values=values))
        if math.isfinite(probe.driver):
            checks.append(Check("memory", "driver", "info", f"driver / reserved memory {_mib(probe.driver)}",
                                values={"driver": probe.driver}))
        else:
            checks.append(Check("memory", "driver", "unavailable",
                                f"{device} driver memory cannot be read ({errs.get('driver', 'NaN')})"))
    values = {"rss": probe.rss, "rss_from_proc": probe.rss_fast, "available": probe.available,
              "swap_used": probe.swap_used}
    host_errs = [f"{k}: {v}" for k, v in errs.items() if k in ("rss", "available")] + (
        [probe.host_error] if probe.host_error else [])
    line = (f"process RSS {_mib(probe.rss)} ({'/proc read directly' if probe.rss_fast else 'psutil'}), "
            f"available {_mib(probe.available)}, swap in use {_mib(probe.swap_used)}")
    if host_errs or not math.isfinite(probe.rss):
        checks.append(Check("memory", "host_memory", "warn", line + f" ({'; '.join(host_errs) or 'RSS is NaN'})",
                            fix="mem_rss_peak will be NaN: report this file", values=values))
    elif math.isfinite(probe.swap_used) and probe.swap_used > 256 * _MIB:
        checks.append(Check("memory", "host_memory", "warn", line + " (the system is swapping)",
                            fix="close programs until swap use stops growing: swapping adds latency to runs",
                            values=values))
    else:
        checks.append(Check("memory", "host_memory", "ok", line, values=values))
    return checks
