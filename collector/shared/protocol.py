"""The messages between a sweep and its worker processes (torch-free).

Requests (sweep -> worker): :class:`Init`, :class:`Load`, :class:`Warmup`,
:class:`Run`, :class:`Exit`. Replies (worker -> sweep): :class:`Ready`,
:class:`Loaded`, :class:`Done`, :class:`Measured` and :class:`Failed` (a
failure inside a request: ``status`` ``error`` or ``oom``). They travel
pickled over the worker's pipes, one request at a time.

:class:`Protocol` is the part of a sweep spec that says *how* a run is
measured (engine, timing, weights, memory); it travels with :class:`Init`
together with the latency model of device ``sim``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.shared.factors import RunKey
from collector.shared.record import RunRecord

__all__ = [
    "ENGINES",
    "TIMINGS",
    "ISOLATIONS",
    "ORDERS",
    "MEMORY_MODES",
    "WEIGHTS",
    "Protocol",
    "Init",
    "Load",
    "Warmup",
    "Run",
    "Exit",
    "Request",
    "Ready",
    "Loaded",
    "Done",
    "Measured",
    "Failed",
    "Reply",
]


#: Generation engines (``http``: requests to an OpenAI-compatible server, :mod:`collector.http`).
ENGINES: tuple[str, ...] = ("loop", "generate", "http")
#: Timing modes (``stream``: the arrival of every streamed token, engine ``http`` only).
TIMINGS: tuple[str, ...] = ("step", "events", "ends", "stream")
#: When a sweep starts a fresh worker process (within each pass of ``--processes``).
ISOLATIONS: tuple[str, ...] = ("none", "model", "cell", "run")
#: Execution orders of a sweep's runs.
ORDERS: tuple[str, ...] = ("random", "sequential")
#: Memory readings.
MEMORY_MODES: tuple[str, ...] = ("off", "endpoints", "sampled")
#: Weight choices of a request (a dataset records the resolved ``pretrained`` or ``random``).
WEIGHTS: tuple[str, ...] = ("auto", "pretrained", "random")


@dataclass(frozen=True)
class Protocol:
    """How runs are measured: generation engine, timing mode, weights, memory readings."""

    engine: str = "loop"
    timing: str = "ends"
    weights: str = "auto"
    memory: str = "endpoints"
    memory_interval: float = 0.005

    @classmethod
    def of(cls, settings: Any) -> "Protocol":
        """The protocol of a :class:`collector.sweep.spec.SweepSpec` (or any object / mapping with these names)."""
        get = settings.get if isinstance(settings, Mapping) else (lambda k, d: getattr(settings, k, d))
        return cls(engine=str(get("engine", "loop")), timing=str(get("timing", "ends")),
                   weights=str(get("weights", "auto")), memory=str(get("memory", "endpoints")),
                   memory_interval=float(get("memory_interval", 0.005)))


@dataclass(frozen=True)
class Init:
    """First request: the protocol, the latency model of device ``sim`` (a dict), the endpoint of engine
    ``http`` (:meth:`collector.http.target.HttpTarget.to_dict` plus the run ``timeout``; empty otherwise)
    and, in tests only, the planted faults (:func:`collector.sweep.worker.planted_faults`; empty in every
    normal run)."""

    protocol: Protocol
    sim: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    http: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """Load the model of ``key``'s load key (the key's other dims are ignored); ``seed`` seeds random weights."""

    key: RunKey
    seed: int = 0


@dataclass(frozen=True)
class Warmup:
    """Run ``n`` unrecorded generations of ``key``'s cell."""

    key: RunKey
    n: int
    seed: int


@dataclass(frozen=True)
class Run:
    """Measure ``key``; ``position`` is its place in the execution sequence as a fraction in [0, 1)."""

    key: RunKey
    seed: int
    position: float


@dataclass(frozen=True)
class Exit:
    """End the worker."""


Request = Init | Load | Warmup | Run | Exit


@dataclass(frozen=True)
class Ready:
    """Answer to :class:`Init`."""

    pid: int


@dataclass(frozen=True)
class Loaded:
    """Answer to :class:`Load`: the model's facts (n_params, weights, architecture)."""

    info: Mapping[str, Any]


@dataclass(frozen=True)
class Done:
    """Answer to :class:`Warmup`."""


@dataclass(frozen=True)
class Measured:
    """Answer to :class:`Run`."""

    record: RunRecord


@dataclass(frozen=True)
class Failed:
    """A request failed inside the worker: ``status`` (error, oom) and the message."""

    status: str
    error: str


Reply = Ready | Loaded | Done | Measured | Failed
