"""Memory figures of one run: cheap endpoint reads and a background peak sampler.

Modes (``memory=``):

``off``
    nothing is read; every figure is NaN.
``endpoints``
    one read just before the clocks start and one just after they stop; peaks
    are the larger of the two reads (cuda's ``max_memory_allocated`` is a true
    peak anyway, since the allocator tracks it).
``sampled``
    ``endpoints`` plus a daemon thread that reads every ``interval`` seconds
    while the run goes on and keeps only running extremes (no lists, no
    allocation per sample).

The sampler shares the interpreter with the timed thread, so each read must
hold the GIL as briefly as possible: on Linux it reads ``/proc/self/statm``
and ``/proc/meminfo`` with one ``os.pread`` each on descriptors opened once
(about 8 us a sample, against about 60 us through psutil, whose parsing
measurably slowed a host-bound decode loop); elsewhere it uses psutil. The
device is sampled only where the allocator keeps no peak of its own (mps:
``current_allocated_memory``); cuda's ``max_memory_allocated`` is exact.

Host figures: the process resident set (``rss``), system available memory
and swap in use. Device figures come from the backend (:mod:`collector.measuring.devices`).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import psutil

from collector.measuring.devices import Backend
from collector.shared.errors import ConfigError

__all__ = [
    "MEMORY_MODES",
    "HostReader",
    "MemoryFigures",
    "MemoryMonitor",
    "MemorySampler",
    "check_memory_mode",
    "host_reading",
]

#: Memory modes a run accepts.
MEMORY_MODES: tuple[str, ...] = ("off", "endpoints", "sampled")

_NAN = float("nan")
_PROCESS = psutil.Process()


def check_memory_mode(mode: str, interval: float) -> None:
    """Raise :class:`ConfigError` for an unknown mode or a non-positive interval."""
    if mode not in MEMORY_MODES:
        raise ConfigError(f"unknown memory mode {mode!r}; choices: {', '.join(MEMORY_MODES)}")
    if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval <= 0:
        raise ConfigError(f"memory_interval must be a positive number of seconds, got {interval!r}")


class HostReader:
    """Fast reads of process RSS and system available memory (Linux ``/proc``, else psutil).

    Use as a context manager (or call :meth:`close`) so the descriptors are closed.
    """

    def __init__(self) -> None:
        self._statm = self._meminfo = -1
        self._page = 4096
        try:
            self._statm = os.open("/proc/self/statm", os.O_RDONLY)
            self._meminfo = os.open("/proc/meminfo", os.O_RDONLY)
            self._page = os.sysconf("SC_PAGE_SIZE")
            self.rss()
            self.available()
        except (OSError, ValueError, IndexError, AttributeError):
            self.close()

    @property
    def fast(self) -> bool:
        """True when reading ``/proc`` directly."""
        return self._statm >= 0 and self._meminfo >= 0

    def rss(self) -> float:
        """Resident set of this process, bytes."""
        if self._statm < 0:
            return float(_PROCESS.memory_info().rss)
        return float(int(os.pread(self._statm, 128, 0).split()[1]) * self._page)

    def available(self) -> float:
        """System available memory, bytes."""
        if self._meminfo < 0:
            return float(psutil.virtual_memory().available)
        text = os.pread(self._meminfo, 512, 0)
        start = text.index(b"MemAvailable:") + 13
        return float(int(text[start:text.index(b"kB", start)]) * 1024)

    def close(self) -> None:
        """Close the descriptors (reads fall back to psutil afterwards)."""
        for fd in (self._statm, self._meminfo):
            if fd >= 0:
                os.close(fd)
        self._statm = self._meminfo = -1

    def __enter__(self) -> "HostReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_reading() -> tuple[float, float, float]:
    """(process RSS, system available memory, swap in use), in bytes."""
    return (
        float(_PROCESS.memory_info().rss),
        float(psutil.virtual_memory().available),
        float(psutil.swap_memory().used),
    )


def _max(a: float, b: float) -> float:
    return b if math.isnan(a) else (a if math.isnan(b) else max(a, b))


def _min(a: float, b: float) -> float:
    return b if math.isnan(a) else (a if math.isnan(b) else min(a, b))


@dataclass(frozen=True)
class MemoryFigures:
    """The five memory figures of one run (bytes; NaN where not available).

    Attributes
    ----------
    device_peak
        Peak allocator memory: cuda ``max_memory_allocated`` since the run's
        reset; mps the largest ``current_allocated_memory`` read; cpu NaN.
    device_driver
        End of run: cuda ``memory_reserved``; mps ``driver_allocated_memory``.
    rss_peak
        Largest process resident set read.
    sys_available_min
        Smallest system available memory read.
    swap_used
        System swap in use at the end of the run.
    samples
        Number of reads taken (endpoints included).
    """

    device_peak: float = _NAN
    device_driver: float = _NAN
    rss_peak: float = _NAN
    sys_available_min: float = _NAN
    swap_used: float = _NAN
    samples: int = 0


class MemorySampler:
    """Daemon thread that reads memory every ``interval`` seconds and keeps extremes.

    Parameters
    ----------
    backend
        Device backend whose ``device_allocated`` is sampled.
    interval
        Seconds between reads (the thread sleeps on an Event, so ``stop`` is prompt).
    """

    def __init__(self, backend: Backend, interval: float) -> None:
        check_memory_mode("sampled", interval)
        self.backend = backend
        self.interval = float(interval)
        self.rss_peak = _NAN
        self.sys_available_min = _NAN
        self.device_peak = _NAN
        self.samples = 0
        self.error: BaseException | None = None
        self.sample_device = not backend.keeps_peak and backend.has_device_memory
        self._reader: HostReader | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one read and update the running extremes."""
        reader = self._reader if self._reader is not None else HostReader()
        rss = reader.rss()
        avail = reader.available()
        if rss > self.rss_peak or self.rss_peak != self.rss_peak:
            self.rss_peak = rss
        if avail < self.sys_available_min or self.sys_available_min != self.sys_available_min:
            self.sys_available_min = avail
        if self.sample_device:
            self.device_peak = _max(self.device_peak, self.backend.device_allocated())
        self.samples += 1
        if reader is not self._reader:
            reader.close()

    def _run(self) -> None:
        try:
            with HostReader() as reader:
                self._reader = reader
                while not self._stop.wait(self.interval):
                    self.sample()
        except BaseException as exc:  # noqa: BLE001 - reported by stop(), never lost silently
            self.error = exc
        finally:
            self._reader = None

    def start(self) -> "MemorySampler":
        """Start the thread (idempotent guard: raises if already started)."""
        if self._thread is not None:
            raise RuntimeError("MemorySampler already started")
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "MemorySampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MemoryMonitor:
    """Collects :class:`MemoryFigures` around one run in the given mode.

    Call :meth:`begin` before the clocks start and :meth:`end` after they stop;
    neither read happens inside the timed region.
    """

    def __init__(self, backend: Backend, mode: str = "endpoints", interval: float = 0.005) -> None:
        check_memory_mode(mode, interval)
        self.backend = backend
        self.mode = mode
        self.interval = float(interval)
        self._sampler: MemorySampler | None = None
        self._rss = _NAN
        self._avail = _NAN
        self._dev = _NAN
        self._samples = 0

    def _read(self) -> None:
        rss, avail, _ = host_reading()
        self._rss = _max(self._rss, rss)
        self._avail = _min(self._avail, avail)
        self._dev = _max(self._dev, self.backend.device_allocated())
        self._samples += 1

    def begin(self) -> None:
        """Reset the device peak, read once, and start the sampler in ``sampled`` mode."""
        if self.mode == "off":
            return
        self.backend.reset_peak()
        self._read()
        if self.mode == "sampled":
            self._sampler = MemorySampler(self.backend, self.interval).start()

    def end(self) -> MemoryFigures:
        """Stop sampling, read once more, and return the figures of the run."""
        if self.mode == "off":
            return MemoryFigures()
        if self._sampler is not None:
            self._sampler.stop()
            s = self._sampler
            self._sampler = None
            if s.error is not None:
                raise RuntimeError(f"memory sampler failed: {s.error!r}") from s.error
            self._rss = _max(self._rss, s.rss_peak)
            self._avail = _min(self._avail, s.sys_available_min)
            self._dev = _max(self._dev, s.device_peak)
            self._samples += s.samples
        self._read()
        swap = float(psutil.swap_memory().used)
        peak = self.backend.device_peak()
        return MemoryFigures(
            device_peak=self._dev if math.isnan(peak) else _max(peak, self._dev),
            device_driver=self.backend.device_driver(),
            rss_peak=self._rss,
            sys_available_min=self._avail,
            swap_used=swap,
            samples=self._samples,
        )

    def abandon(self) -> None:
        """Stop a running sampler without reading (after a failed run)."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
