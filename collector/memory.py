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
    allocation per sample), so it holds the GIL for microseconds at a time.

Host figures come from psutil: the process resident set (``rss``), system
available memory and swap in use. Device figures come from the backend
(:mod:`collector.devices`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import psutil

from collector.devices import Backend
from collector.errors import ConfigError

__all__ = ["MEMORY_MODES", "MemoryFigures", "MemoryMonitor", "MemorySampler", "check_memory_mode", "host_reading"]

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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one read and update the running extremes."""
        rss = float(_PROCESS.memory_info().rss)
        avail = float(psutil.virtual_memory().available)
        dev = self.backend.device_allocated()
        self.rss_peak = _max(self.rss_peak, rss)
        self.sys_available_min = _min(self.sys_available_min, avail)
        self.device_peak = _max(self.device_peak, dev)
        self.samples += 1

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.sample()
        except BaseException as exc:  # noqa: BLE001 - reported by stop(), never lost silently
            self.error = exc

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
