"""The devices and dtypes, declared once (torch-free, numpy-free).

Adding a device means one :class:`Device` row here and, for a real one, a
backend class in :mod:`collector.measuring.devices` (``tests/test_hardware.py`` checks
that every real device has one). Everything else derives from the tables:

* :data:`collector.shared.factors.FACTORS`: the ``device`` and ``dtype`` choices and help;
* :data:`collector.measuring.devices.DEVICES` / :data:`~collector.measuring.devices.DTYPES` (the torch backends);
* :func:`collector.measuring.environment.best_device` (:data:`PREFERENCE`);
* :data:`collector.shared.sim.DEVICE_SPEED` and the simulator's dtype speeds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Device",
    "Dtype",
    "DEVICE_TABLE",
    "DTYPE_TABLE",
    "DEVICES",
    "REAL_DEVICES",
    "DTYPES",
    "PREFERENCE",
]


@dataclass(frozen=True)
class Device:
    """One device a sweep can name.

    Attributes
    ----------
    name
        The ``device`` value (dataset coordinate, ``--devices`` choice).
    real
        Measured through a torch backend (:mod:`collector.measuring.devices`); False for ``sim`` and for
        ``http`` (an OpenAI-compatible server, engine ``http``: what it computes on is its own business).
    preference
        Rank for the default device of a quick sweep (0 first), None where never chosen by default.
    sim_speed
        Relative speed in the simulator (multiplies every simulated time).
    """

    name: str
    real: bool
    preference: int | None
    sim_speed: float


@dataclass(frozen=True)
class Dtype:
    """One compute dtype (a ``torch`` attribute of the same name).

    Attributes
    ----------
    name
        The ``dtype`` value.
    sim_speed
        Relative speed in the simulator.
    """

    name: str
    sim_speed: float


DEVICE_TABLE: tuple[Device, ...] = (
    Device("cpu", real=True, preference=2, sim_speed=3.0),
    Device("cuda", real=True, preference=1, sim_speed=0.35),
    Device("mps", real=True, preference=0, sim_speed=1.0),
    Device("sim", real=False, preference=None, sim_speed=1.0),
    Device("http", real=False, preference=None, sim_speed=1.0),
)

DTYPE_TABLE: tuple[Dtype, ...] = (
    Dtype("float32", sim_speed=1.0),
    Dtype("float16", sim_speed=0.7),
    Dtype("bfloat16", sim_speed=0.7),
)

#: Every device name a sweep accepts, ``sim`` included.
DEVICES: tuple[str, ...] = tuple(d.name for d in DEVICE_TABLE)
#: The devices measured through torch (``sim`` is handled by collector.shared.sim).
REAL_DEVICES: tuple[str, ...] = tuple(d.name for d in DEVICE_TABLE if d.real)
#: Compute dtype names.
DTYPES: tuple[str, ...] = tuple(t.name for t in DTYPE_TABLE)
#: Default device of a quick sweep: the first of these available here (the last is always available).
PREFERENCE: tuple[str, ...] = tuple(
    d.name for d in sorted((d for d in DEVICE_TABLE if d.preference is not None), key=lambda d: d.preference or 0)
)
