"""Device backends (cpu, cuda, mps): availability, sync, event timers, memory probes.

One small class per backend, all with the same surface, so the measuring code
never branches on the device name:

* :meth:`Backend.check_available` raises :class:`~collector.shared.errors.DeviceUnavailableError`
  with the reason and the devices available here;
* :meth:`Backend.synchronize` waits for all queued device work;
* :meth:`Backend.new_event` returns a timing event (``torch.cuda.Event`` /
  ``torch.mps.Event`` with ``enable_timing=True``) or ``None`` where the backend
  has none (cpu: work is synchronous, so the host clock is exact);
  :class:`EventTimer` wraps both and falls back to the host clock;
* memory probes: :meth:`Backend.device_allocated`, :meth:`Backend.device_peak`,
  :meth:`Backend.device_driver`, :meth:`Backend.device_limit`,
  :meth:`Backend.reset_peak` (NaN where the backend has no such figure);
* :meth:`Backend.check_dtype` runs a tiny matmul in the dtype on the device and
  raises :class:`~collector.shared.errors.ConfigError` if the device cannot run it.

The host clock is :func:`now` (``time.perf_counter``), looked up at call time so
tests can observe the order of sync and clock reads.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from collector.shared.errors import ConfigError, DeviceUnavailableError
from collector.shared.hardware import DTYPES as _DTYPES
from collector.shared.hardware import REAL_DEVICES

__all__ = [
    "DEVICES",
    "DTYPES",
    "Backend",
    "CPUBackend",
    "CUDABackend",
    "MPSBackend",
    "EventTimer",
    "available_devices",
    "get_backend",
    "now",
    "torch_dtype",
]

#: Device names the torch backends handle (``sim`` is handled by collector.shared.sim, not here); declared in
#: collector.shared.hardware.
DEVICES: tuple[str, ...] = REAL_DEVICES
#: Compute dtypes the collector accepts (collector.shared.hardware).
DTYPES: tuple[str, ...] = _DTYPES

_NAN = float("nan")


def now() -> float:
    """Host clock in seconds (``time.perf_counter``)."""
    return time.perf_counter()


def torch_dtype(name: str) -> torch.dtype:
    """The ``torch.dtype`` for a dtype name; :class:`ConfigError` for an unknown name."""
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choices: {', '.join(DTYPES)}")
    return getattr(torch, name)


class Backend:
    """Common surface of a device backend. Subclasses fill in the probes."""

    name: ClassVar[str] = ""
    #: human-readable availability test, quoted in the error message
    availability_test: ClassVar[str] = ""
    #: whether :meth:`new_event` returns device timing events
    has_events: ClassVar[bool] = False
    #: whether :meth:`device_allocated` reports anything (not NaN)
    has_device_memory: ClassVar[bool] = False
    #: whether the allocator tracks its own peak (:meth:`device_peak`), so sampling is not needed
    keeps_peak: ClassVar[bool] = False

    # -- availability -------------------------------------------------------------
    @classmethod
    def is_available(cls) -> bool:
        """True when this backend can run here."""
        raise NotImplementedError

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`DeviceUnavailableError` unless the backend can run here."""
        if not cls.is_available():
            raise DeviceUnavailableError(
                f"device {cls.name!r} is not available: {cls.availability_test} is False; "
                f"choices here: {', '.join(available_devices())}"
            )

    def torch_device(self) -> torch.device:
        """The ``torch.device`` tensors and models are moved to."""
        return torch.device(self.name)

    # -- time -----------------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait until all queued work on the device has finished."""

    def new_event(self) -> Any | None:
        """A device timing event, or ``None`` when the backend has none (host clock)."""
        return None

    def event_stream(self) -> Any | None:
        """The stream the model's work is queued on (None: the backend's only one)."""
        return None

    # -- memory (bytes; NaN where the backend has no such figure) ----------------------
    def reset_peak(self) -> None:
        """Start a new peak-memory window (cuda: ``reset_peak_memory_stats``)."""

    def device_allocated(self) -> float:
        """Bytes held by live tensors now."""
        return _NAN

    def device_peak(self) -> float:
        """Allocator's own peak since :meth:`reset_peak` (NaN where it keeps none)."""
        return _NAN

    def device_driver(self) -> float:
        """Bytes the allocator holds from the driver (cuda reserved, mps driver)."""
        return _NAN

    def device_limit(self) -> float:
        """Working-set limit of the device (cuda total memory, mps recommended max)."""
        return _NAN

    def empty_cache(self) -> None:
        """Give cached blocks back to the driver (after an out-of-memory)."""

    # -- dtypes --------------------------------------------------------------------------
    def check_dtype(self, dtype: str) -> None:
        """Raise :class:`ConfigError` unless a matmul in ``dtype`` runs on this device."""
        dt = torch_dtype(dtype)
        try:
            a = torch.ones((4, 4), dtype=dt, device=self.torch_device())
            b = (a @ a).sum()
            self.synchronize()
            ok = bool(torch.isfinite(b.float()).item())
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(
                f"dtype {dtype!r} cannot run on device {self.name!r}: {exc}; "
                f"choices: {', '.join(DTYPES)}"
            ) from exc
        if not ok:
            raise ConfigError(f"dtype {dtype!r} gives non-finite matmul results on device {self.name!r}")


class CPUBackend(Backend):
    """The host CPU: synchronous, no events, no device-memory figures."""

    name = "cpu"
    availability_test = "True"

    @classmethod
    def is_available(cls) -> bool:
        return True


class CUDABackend(Backend):
    """An NVIDIA GPU through ``torch.cuda`` (the current device)."""

    name = "cuda"
    availability_test = "torch.cuda.is_available()"
    has_events = True
    has_device_memory = True
    keeps_peak = True

    @classmethod
    def is_available(cls) -> bool:
        return bool(torch.cuda.is_available())

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def new_event(self) -> Any:
        return torch.cuda.Event(enable_timing=True)

    def event_stream(self) -> Any:
        return torch.cuda.current_stream()

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def device_allocated(self) -> float:
        return float(torch.cuda.memory_allocated())

    def device_peak(self) -> float:
        return float(torch.cuda.max_memory_allocated())

    def device_driver(self) -> float:
        return float(torch.cuda.memory_reserved())

    def device_limit(self) -> float:
        return float(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()

    def check_dtype(self, dtype: str) -> None:
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"dtype {dtype!r} cannot run on device 'cuda': torch.cuda.is_bf16_supported() is False; "
                "choices here: float32, float16"
            )
        super().check_dtype(dtype)


class MPSBackend(Backend):
    """Apple's Metal backend through ``torch.mps``.

    Tested with fakes of ``torch.mps`` / ``torch.backends.mps`` only; not yet run on a Mac.
    """

    name = "mps"
    availability_test = "torch.backends.mps.is_available()"
    has_events = True
    has_device_memory = True

    @classmethod
    def is_available(cls) -> bool:
        return bool(torch.backends.mps.is_available())

    def synchronize(self) -> None:
        torch.mps.synchronize()

    def new_event(self) -> Any:
        return torch.mps.Event(enable_timing=True)

    def device_allocated(self) -> float:
        return float(torch.mps.current_allocated_memory())

    def device_driver(self) -> float:
        return float(torch.mps.driver_allocated_memory())

    def device_limit(self) -> float:
        return float(torch.mps.recommended_max_memory())

    def empty_cache(self) -> None:
        torch.mps.empty_cache()


_BACKENDS: dict[str, type[Backend]] = {"cpu": CPUBackend, "cuda": CUDABackend, "mps": MPSBackend}


def available_devices() -> list[str]:
    """Names of the backends that can run here, in :data:`DEVICES` order."""
    return [name for name in DEVICES if _BACKENDS[name].is_available()]


def get_backend(device: str) -> Backend:
    """The backend for ``device`` after checking it is available.

    Raises
    ------
    DeviceUnavailableError
        For an unknown name, or a backend that cannot run here.
    """
    cls = _BACKENDS.get(device) if isinstance(device, str) else None
    if cls is None:
        raise DeviceUnavailableError(
            f"unknown device {device!r}; choices: {', '.join(DEVICES)} "
            f"(available here: {', '.join(available_devices())})"
        )
    cls.check_available()
    return cls()


class EventTimer:
    """Timestamps on the device timeline, with a host-clock fallback.

    ``record()`` records a device event on the model's stream without waiting
    (cuda, mps) or reads the host clock (cpu, where work is synchronous so the
    host clock is exact). ``elapsed()`` synchronizes on the last event once and
    returns the seconds from the first mark to each mark.

    Parameters
    ----------
    backend
        The device backend.
    capacity
        Events to create up front (outside the timed region); more are created
        on demand.
    """

    def __init__(self, backend: Backend, capacity: int = 0) -> None:
        self.backend = backend
        self.uses_events = backend.has_events
        self._spare: list[Any] = [backend.new_event() for _ in range(capacity)] if self.uses_events else []
        self._spare.reverse()
        self._stream = backend.event_stream() if self.uses_events else None
        self._events: list[Any] = []
        self._host: list[float] = []

    def record(self) -> None:
        """Add one mark (no synchronisation)."""
        if self.uses_events:
            ev: Any = self._spare.pop() if self._spare else self.backend.new_event()
            if self._stream is None:
                ev.record()
            else:
                ev.record(self._stream)
            self._events.append(ev)
        else:
            self._host.append(now())

    def __len__(self) -> int:
        return len(self._events) if self.uses_events else len(self._host)

    def elapsed(self) -> list[float]:
        """Seconds from the first mark to each mark (first entry 0.0)."""
        if not self.uses_events:
            return [t - self._host[0] for t in self._host] if self._host else []
        if not self._events:
            return []
        self._events[-1].synchronize()
        first = self._events[0]
        return [0.0] + [first.elapsed_time(ev) / 1e3 for ev in self._events[1:]]
