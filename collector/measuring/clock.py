"""The clock of one generation: where time is read for each timing mode (``step``, ``events``, ``ends``).

:class:`Clock` takes the marks that :mod:`collector.measuring.measurement`'s module
docstring describes; :class:`Marker` is the ``StoppingCriteria`` that takes
a mark each time ``generate`` has appended a token.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteria

from collector.measuring.devices import Backend, EventTimer, now

__all__ = ["Clock", "Marker"]

_NAN = float("nan")


class Clock:
    """The marks of one generation for one timing mode (see the module docstring)."""

    def __init__(self, backend: Backend, timing: str, budget: int) -> None:
        self.backend = backend
        self.timing = timing
        self.count = 0
        self._host: list[float] = []
        self._events = EventTimer(backend, capacity=budget + 1) if timing == "events" else None
        self.t0 = self.t_first = self.t_end = _NAN

    def start(self) -> None:
        self.backend.synchronize()
        self.t0 = now()
        if self._events is not None:
            self._events.record()

    def mark(self) -> None:
        self.count += 1
        if self.timing == "step":
            self.backend.synchronize()
            self._host.append(now())
        elif self.timing == "events":
            self._events.record()  # type: ignore[union-attr]
        elif self.count == 1:  # ends: the prefill boundary only
            self.backend.synchronize()
            self.t_first = now()

    def stop(self) -> None:
        self.backend.synchronize()
        self.t_end = now()

    def result(self) -> tuple[float, float, tuple[float, ...]]:
        """(latency, prefill_time, step_times)."""
        latency = self.t_end - self.t0
        if self.count == 0:
            return latency, _NAN, ()
        if self.timing == "step":
            marks = [self.t0, *self._host[:-1], self.t_end]
            steps = tuple(b - a for a, b in zip(marks[:-1], marks[1:]))
            return latency, steps[0], steps
        if self.timing == "events":
            elapsed = self._events.elapsed()  # type: ignore[union-attr]
            steps = tuple(b - a for a, b in zip(elapsed[:-1], elapsed[1:]))
            return latency, steps[0], steps
        return latency, self.t_first - self.t0, ()


class Marker(StoppingCriteria):
    """Never stops; takes a clock mark each time generate has appended a token."""

    def __init__(self, clock: Clock, batch: int, device: torch.device) -> None:
        self.clock = clock
        self._false = torch.zeros((batch,), dtype=torch.bool, device=device)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.clock.mark()
        return self._false  # type: ignore[return-value]
