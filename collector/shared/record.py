"""The immutable record of one measured (or simulated) generation. Torch-free."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from collector.shared.factors import BY_NAME, CELL_DIMS, Cell

__all__ = ["RunRecord", "RUN_STATUSES"]

#: Statuses a finished run can have (schema's ``not_run`` is for cells never run). ``truncated``: it finished but
#: produced fewer tokens than its budget (a server that stops at an end-of-sequence token); its times are kept.
RUN_STATUSES: tuple[str, ...] = ("ok", "error", "oom", "timeout", "truncated")

_NAN = float("nan")


@dataclass(frozen=True)
class RunRecord:
    """One generation of exactly ``budget`` new tokens, and what was measured.

    Times are seconds, memory figures bytes (NaN where the backend has no such
    figure). Timing fields are NaN unless ``status`` is ``"ok"`` or ``"truncated"`` (a
    run that stopped before its budget: its times are those of its ``tokens``). ``step_times``
    holds one entry per produced token when per-step timing was on
    (index 0: prefill, which yields the first token; k: k-th decode step),
    and is empty otherwise. The cell's factors are fields named as the
    sweep dims (:data:`collector.shared.factors.CELL_DIMS`); :attr:`cell` gathers them.

    Where it ran: ``process`` is the pass (process replicate, ``--processes``)
    that measured it, -1 unknown (set by the sweep, not by the worker);
    ``load_avg`` (1-minute system load average), ``cpu_freq`` (MHz, current
    frequency of the CPU) and ``torch_threads`` (``torch.get_num_threads()``)
    are read by the worker as the run starts: NaN / -1 where not readable.

    Engine ``http`` (:mod:`collector.http`) adds what the server said:
    ``server_start_time`` (seconds a ``--server-cmd`` server took to become
    ready), ``server_prompt_tokens`` / ``server_completion_tokens`` (its
    ``usage``) and ``server_prefill_time`` / ``server_decode_time`` (its own
    timing fields, llama.cpp's ``timings``): NaN / -1 where not sent.
    """

    model: str
    device: str
    dtype: str
    cache: bool
    prompt_len: int
    budget: int
    attn: str = BY_NAME["attn"].default[0]  # type: ignore[index]
    cache_impl: str = BY_NAME["cache_impl"].default[0]  # type: ignore[index]
    engine: str = "loop"
    timing: str = "ends"
    status: str = "ok"
    error: str = ""
    latency: float = _NAN
    prefill_time: float = _NAN
    decode_time: float = _NAN
    step_times: tuple[float, ...] = ()
    tokens: int = 0
    mem_device_peak: float = _NAN
    mem_device_driver: float = _NAN
    mem_rss_peak: float = _NAN
    mem_sys_available_min: float = _NAN
    swap_used: float = _NAN
    started_at: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))
    n_params: int = -1
    weights: str = "random"
    architecture: str = ""
    process: int = -1
    load_avg: float = _NAN
    cpu_freq: float = _NAN
    torch_threads: int = -1
    server_start_time: float = _NAN
    server_prompt_tokens: int = -1
    server_completion_tokens: int = -1
    server_prefill_time: float = _NAN
    server_decode_time: float = _NAN

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {list(RUN_STATUSES)}, got {self.status!r}")
        object.__setattr__(self, "step_times", tuple(float(x) for x in self.step_times))

    @property
    def cell(self) -> Cell:
        """The run's grid point (its factor values)."""
        return Cell(**{d: getattr(self, d) for d in CELL_DIMS})

    @property
    def ok(self) -> bool:
        """True when the run finished and produced exactly ``budget`` tokens."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``started_at`` as ISO 8601, NaN kept as float)."""
        d = dataclasses.asdict(self)
        d["step_times"] = list(self.step_times)
        d["started_at"] = self.started_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        """Inverse of :meth:`to_dict` (``None`` numbers become NaN)."""
        d = dict(d)
        started = d.get("started_at")
        if isinstance(started, str):
            d["started_at"] = _dt.datetime.fromisoformat(started)
        for k, v in list(d.items()):
            if v is None and k not in ("started_at",):
                d[k] = _NAN
        for name in CELL_DIMS:  # a record stored before a factor existed ran its v1 value
            if name not in d and BY_NAME[name].v1_value is not None:
                d[name] = BY_NAME[name].v1_value
        d["step_times"] = tuple(d.get("step_times") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def failed(self, status: str, error: str) -> "RunRecord":
        """A copy marked as failed: timing NaN, step times dropped."""
        return dataclasses.replace(
            self, status=status, error=error, latency=_NAN, prefill_time=_NAN, decode_time=_NAN, step_times=()
        )


