"""Run a sweep: order, isolation, warm-up, timeouts, failures, journal and refinement.

Order. All cell x trial runs of the grid are put in a seeded random order
(:func:`collector.shared.sim.execution_order`), or in grid order with
``order="sequential"`` (warned about: a slow episode of the host is then
indistinguishable from a budget regime). Isolation then groups that sequence
by process, keeping the random order inside each group and ordering groups
by their first run: ``none`` one process for every run (fully interleaved);
``model`` one fresh process per loaded model (the model-load key:
model x device x dtype x attn, :data:`collector.shared.factors.LOAD_KEY`);
``cell`` one fresh process per cell (grid point), in which its warm-up and
its trials run back to back; ``run`` a fresh process for every run (its own
model load and warm-up).

Passes (``processes`` N > 1): the grid runs as N passes one after the other,
each in its own fresh worker processes (a fresh model load and warm-up), with
the runs of a pass in the seeded random order; trial ``t`` of every cell goes
to pass ``t % N`` (:func:`pass_of`), so the trials of each cell are spread over
the processes and process-local effects can be told from regimes. Each run
records its pass (``RunRecord.process``, the dataset's ``process``).

Processes. Runs are measured in worker processes (:mod:`collector.sweep.worker`),
never in the sweep's own process, so a run that crashes its process, hangs
past ``timeout`` (the worker is killed) or raises becomes a row with status
``error``, ``timeout`` or ``oom`` (an out-of-memory exception, or a worker
SIGKILLed while the kernel's out-of-memory killer struck), and the sweep goes
on with a fresh worker. A worker killed by a signal from outside (``kill``, a
signal to the process group) is not the run's failure: the run (or its
load and warm-up) is tried again in a fresh worker, and recorded as failed only
when that worker dies from a signal too (:func:`collector.sweep.failures.classify_exit`).
When the sweep itself is stopped (``should_stop``), the run in flight is not
recorded at all. Warm-up: before the first run of a cell in a process,
``warmup`` unrecorded runs of that cell.

Journal. Each finished run is committed to the journal before the next one
starts; a sweep resumed from the journal runs exactly the runs not in it
(with ``retry_failed``, also the failed ones: the new attempt replaces the
row, the earlier one moves to the journal's ``attempts`` table).

Refinement (``refine``): after the grid, rounds of :func:`collector.sweep.refine.next_budgets`
per series, each new budget with all its trials, until every boundary is
located or ``refine_max_runs`` (default: as many runs as the grid) is spent.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.shared.errors import ConfigError
from collector.shared.factors import FACTORS, RunKey, grid
from collector.shared.protocol import Failed, Init, Load, Loaded, Measured, Protocol, Run, Warmup
from collector.shared.record import RunRecord
from collector.shared.sim import execution_order
from collector.sweep import failures
from collector.sweep import refine as _refine
from collector.sweep.journal import Journal
from collector.sweep.spec import SweepSpec
from collector.sweep.worker import WorkerDied as _Died
from collector.sweep.worker import WorkerProcess as _Worker
from collector.sweep.worker import WorkerStopped as _Stopped
from collector.sweep.worker import planted_faults

__all__ = [
    "SequentialOrderWarning",
    "SweepEvent",
    "SweepResult",
    "grid_keys",
    "pass_of",
    "plan",
    "run_seed",
    "run_sweep",
]


class SequentialOrderWarning(UserWarning):
    """The sweep runs in grid order: host episodes can masquerade as budget regimes."""


@dataclass(frozen=True)
class SweepEvent:
    """What :func:`run_sweep` reports to its ``on_event`` callback.

    ``kind``: ``start`` (``done`` runs already in the journal of ``total``),
    ``run`` (``key`` finished with ``record``), ``refine`` (``total`` grew:
    ``message`` says why), ``retry`` (``key``'s worker was killed from outside;
    ``message`` says how: the run goes again in a fresh worker), ``end``.
    """

    kind: str
    done: int
    total: int
    key: RunKey | None = None
    record: RunRecord | None = None
    message: str = ""


@dataclass
class SweepResult:
    """Counts and times of one :func:`run_sweep` call.

    ``retried`` counts runs measured again because a signal from outside killed
    their worker. ``wall_time`` is the whole call; ``setup_time`` the part spent starting
    and stopping workers, loading models and warming up; ``measured_time`` the sum of the
    latencies of the ok runs measured in this call.
    """

    recorded: int = 0
    in_journal: int = 0
    failed: int = 0
    retried: int = 0
    interrupted: bool = False
    wall_time: float = 0.0
    setup_time: float = 0.0
    measured_time: float = 0.0
    refine_runs: int = 0
    boundaries: dict[tuple[Any, ...], list[_refine.Boundary]] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        """(wall time - setup time) / measured time: 1.0 would be no orchestration cost at all."""
        return (self.wall_time - self.setup_time) / self.measured_time if self.measured_time > 0 else math.nan


# --------------------------------------------------------------------------- planning
def grid_keys(spec: SweepSpec, budgets: Sequence[int] | None = None) -> list[RunKey]:
    """Every applicable run of the grid in C order over the sweep dims (:func:`collector.shared.factors.grid`)."""
    values = dict(spec.grid)
    if budgets is not None:
        values["budget"] = tuple(budgets)
    return list(grid(values, trials=spec.trials))


def pass_of(spec: SweepSpec, key: RunKey) -> int:
    """The pass (process replicate) that measures ``key``: its trial modulo ``spec.processes``.

    So every cell's trials are spread over the passes (trials 0, N, 2N... in pass 0; 1, N+1... in
    pass 1), and a resumed sweep puts each missing run in the pass it had.
    """
    return int(key.trial) % max(int(getattr(spec, "processes", 1)), 1)


def _group(spec: SweepSpec, key: RunKey) -> Any:
    """The process a run shares with others: its pass, and within the pass the isolation group."""
    if spec.isolation == "model":
        inner: Any = key.load_key
    elif spec.isolation == "cell":
        inner = key.cell
    elif spec.isolation == "run":
        inner = key
    else:
        inner = None
    return (pass_of(spec, key), inner)


def plan(spec: SweepSpec, keys: Sequence[RunKey] | None = None, *, seed: int | None = None) -> list[RunKey]:
    """The execution sequence of ``keys`` (default: the grid): ordered, then grouped by process.

    The passes (``spec.processes``) run one after the other, pass 0 first; inside a pass the
    runs keep the seeded order and are grouped by isolation (groups in the order of their first run).
    With one pass this is the order sweeps have always had.
    """
    keys = grid_keys(spec) if keys is None else list(keys)
    position = execution_order(len(keys), order=spec.order, seed=spec.seed if seed is None else seed)
    sequence = [keys[i] for i in np.argsort(position, kind="stable")]
    groups: dict[Any, list[RunKey]] = {}
    for k in sequence:
        groups.setdefault(_group(spec, k), []).append(k)
    ordered = sorted(groups, key=lambda g: g[0])  # stable: within a pass, groups by their first run
    return [k for g in ordered for k in groups[g]]


def run_seed(seed: int, key: RunKey) -> int:
    """Seed of one run (prompt ids, simulated noise): fixed by the sweep seed and the run's coordinates.

    Factors at their ``v1_value`` are left out of the hash, so a run that a
    schema-v1 sweep could have made keeps the seed it had then.
    """
    values = tuple(getattr(key, f.name) for f in FACTORS if f.v1_value is None or getattr(key, f.name) != f.v1_value)
    return (int(seed) * 1_000_003 + zlib.crc32(repr(values).encode())) % (2**31 - 1)


# --------------------------------------------------------------------------- the sweep
class _Runner:
    def __init__(self, spec: SweepSpec, journal: Journal, on_event: Callable[[SweepEvent], None] | None,
                 should_stop: Callable[[], bool] | None, retry_failed: bool = False) -> None:
        self.spec, self.journal = spec, journal
        http = {} if spec.http is None else {**spec.http.to_dict(), "timeout": spec.timeout}
        self.init = Init(Protocol.of(spec), spec.latency_model.to_dict() if spec.sim is not None else {},
                         planted_faults(), http)
        self.retry_failed = retry_failed
        self.on_event = on_event or (lambda e: None)
        self.should_stop = should_stop or (lambda: False)
        self.worker: _Worker | None = None
        self.result = SweepResult()
        self.done = journal.done(failed=not retry_failed)
        self.total = 0
        self.model_info = journal.model_info()
        self.limit = spec.refine_max_runs if spec.refine_max_runs is not None else spec.n_runs
        self.position_scale = spec.n_runs + (self.limit if spec.refine else 0)

    # -- one run -----------------------------------------------------------------------
    def _worker_for(self, key: RunKey) -> _Worker:
        group = _group(self.spec, key)
        w = self.worker
        t0 = time.perf_counter()
        if w is not None and (w.group != group or not w.alive()):
            w.close()
            w = self.worker = None
        if w is None:
            w = self.worker = _Worker(self.init, self.journal.next_worker(), group)
        self.result.setup_time += time.perf_counter() - t0
        return w

    def _failed(self, key: RunKey, status: str, error: str, started: Any) -> RunRecord:
        info = self.model_info.get(key.model, {})
        return RunRecord(**key.cell._asdict(), engine=self.spec.engine, timing=self.spec.timing, status=status,
                         error=error, started_at=started, n_params=int(info.get("n_params", -1)),
                         weights=str(info.get("weights", "pretrained" if self.spec.engine == "http" else "random")),
                         architecture=str(info.get("architecture", "")))

    def _measure(self, key: RunKey, planned: int) -> tuple[RunRecord, _Worker]:
        """Measure ``key`` in the current worker; once more in a fresh one if a signal from outside killed it."""
        repeated = False
        while True:
            w = self._worker_for(key)
            try:
                return self._attempt(w, key, planned, repeated), w
            except _Died as exc:  # killed from outside: not the run's failure (the first time)
                self.worker = None
                self.result.retried += 1
                repeated = True
                self.on_event(SweepEvent("retry", len(self.done), max(self.total, len(self.done)), key,
                                         message=f"{exc.error}; running it again in a fresh worker"))

    def _died(self, w: _Worker, exc: _Died, repeated: bool) -> str:
        """The status of a run whose worker died, after killing what is left of it; re-raises ``exc``
        when the death is an interruption (the run is to be tried again)."""
        w.kill()
        self.worker = None
        status = exc.status(repeated=repeated)
        if status is None:
            raise exc
        return status

    def _attempt(self, w: _Worker, key: RunKey, planned: int, repeated: bool) -> RunRecord:
        import datetime as _dt

        started = _dt.datetime.now(_dt.timezone.utc)
        timeout = self.spec.timeout
        seed = run_seed(self.spec.seed, key)
        lk = key.load_key
        t0 = time.perf_counter()
        try:
            if lk not in w.loaded:
                reply = w.request(Load(key, self.spec.seed), None if timeout is None else max(600.0, 10 * timeout),
                                  self.should_stop)
                if isinstance(reply, Loaded):
                    w.loaded[lk] = None
                    if key.model not in self.model_info:
                        self.model_info[key.model] = dict(reply.info)
                        self.journal.set_model_info(key.model, dict(reply.info))
                elif isinstance(reply, Failed):
                    w.loaded[lk] = (reply.status, "loading the model failed: " + reply.error)
                else:  # pragma: no cover - a protocol bug
                    w.loaded[lk] = (failures.ERROR, f"unexpected reply {type(reply).__name__!r} to Load")
            if w.loaded[lk] is not None:
                status, error = w.loaded[lk]  # type: ignore[misc]
                return self._failed(key, status, error, started)
            if self.spec.warmup and key.cell not in w.warmed:
                w.request(Warmup(key, self.spec.warmup, seed),
                          None if timeout is None else timeout * self.spec.warmup + 60, self.should_stop)
                w.warmed.add(key.cell)  # a failed warm-up is not raised: the measured run records its own status
        except _Died as exc:
            return self._failed(key, self._died(w, exc, repeated), "during load/warm-up: " + exc.error, started)
        finally:
            self.result.setup_time += time.perf_counter() - t0
        started = _dt.datetime.now(_dt.timezone.utc)
        try:
            reply = w.request(Run(key, seed, min(planned / max(self.position_scale, 1), 0.999999)), timeout,
                              self.should_stop)
        except _Died as exc:
            return self._failed(key, self._died(w, exc, repeated), exc.error, started)
        if isinstance(reply, Failed):
            return self._failed(key, reply.status, reply.error, started)
        if not isinstance(reply, Measured):  # pragma: no cover - a protocol bug
            return self._failed(key, failures.ERROR, f"unexpected reply {type(reply).__name__!r} to Run", started)
        rec = reply.record
        if rec.cell != key.cell:
            return self._failed(key, failures.ERROR, f"worker answered for {rec.cell!r}", started)
        return rec

    def execute(self, sequence: Iterable[tuple[int, RunKey]]) -> bool:
        """Run each (planned index, key) not yet done; False when stopped."""
        for planned, key in sequence:
            if key in self.done:
                continue
            if self.should_stop():
                return False
            try:
                rec, w = self._measure(key, planned)
            except _Stopped:
                self.worker = None
                return False
            rec = dataclasses.replace(rec, process=pass_of(self.spec, key))
            self.journal.add(key, rec, worker=w.number, pid=w.pid, planned=planned, replace_failed=self.retry_failed)
            self.done.add(key)
            self.result.recorded += 1
            if rec.ok:
                self.result.measured_time += rec.latency
            else:
                self.result.failed += 1
            if key.budget not in self.spec.budgets:
                self.result.refine_runs += 1
            self.on_event(SweepEvent("run", len(self.done), max(self.total, len(self.done)), key, rec))
        return True

    # -- refinement ------------------------------------------------------------------------
    def _samples(self) -> dict[tuple[Any, ...], dict[int, list[float]]]:
        out: dict[tuple[Any, ...], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in self.journal.rows():
            series = out[row.key.series]
            lst = series[row.key.budget]
            if row.record.ok:
                lst.append(row.record.latency)
        return out

    def refine(self) -> bool:
        spec = self.spec
        grid = set(spec.budgets)
        series_keys = {k.series for k in grid_keys(spec)}
        while True:
            refined_done = sum(1 for k in self.done if k.budget not in grid)
            # finish budgets a previous (interrupted) round started
            started = {(k.series, k.budget) for k in self.done if k.budget not in grid}
            keys = [RunKey.of(s, budget=b, trial=t) for s, b in sorted(started) for t in range(spec.trials)
                    if RunKey.of(s, budget=b, trial=t) not in self.done]
            if not keys:  # (a started budget was within the limit when planned: it is always finished)
                samples = self._samples()
                for s in sorted(series_keys):
                    measured = set(samples.get(s, {}))
                    for b in _refine.next_budgets(samples.get(s, {}), grid=grid, resolution=spec.refine or 1,
                                                  measured=measured):
                        keys.extend(RunKey.of(s, budget=b, trial=t) for t in range(spec.trials))
                room = self.limit - refined_done
                if len(keys) > room:  # whole budgets only (keys come in blocks of `trials`)
                    keys = keys[: max(room, 0) - max(room, 0) % spec.trials]
            if not keys:
                self._boundaries()
                return True
            self.total = len(self.done) + len(keys)
            self.on_event(SweepEvent("refine", len(self.done), self.total, message=f"refining: {len(keys)} more runs"))
            sequence = plan(spec, keys, seed=spec.seed + refined_done + 1)
            if not self.execute((spec.n_runs + refined_done + i, k) for i, k in enumerate(sequence)):
                return False

    def _boundaries(self) -> None:
        samples = self._samples()
        for s, data in samples.items():
            found = _refine.find_boundaries(data, grid=set(self.spec.budgets), resolution=self.spec.refine or 1)
            if found:
                self.result.boundaries[s] = found

    # -- all ---------------------------------------------------------------------------------
    def run(self, keys: Sequence[RunKey] | None = None) -> SweepResult:
        t0 = time.perf_counter()
        spec = self.spec
        sequence = plan(spec, keys)
        if keys is None:
            self.total = max(len(self.done), spec.n_runs + sum(1 for k in self.done if k.budget not in spec.budgets))
        else:
            self.total = len(self.done) + sum(1 for k in set(keys) if k not in self.done)
        self.on_event(SweepEvent("start", len(self.done), self.total))
        try:
            ok = self.execute(enumerate(sequence))
            if ok and spec.refine:
                ok = self.refine()
            self.result.interrupted = not ok
        finally:
            if self.worker is not None:
                t1 = time.perf_counter()
                self.worker.close()
                self.worker = None
                self.result.setup_time += time.perf_counter() - t1
            self.result.wall_time = time.perf_counter() - t0
            self.result.in_journal = self.journal.count()
        self.on_event(SweepEvent("end", len(self.done), max(self.total, len(self.done))))
        return self.result


def run_sweep(spec: SweepSpec, journal: Journal, *, on_event: Callable[[SweepEvent], None] | None = None,
              should_stop: Callable[[], bool] | None = None, retry_failed: bool = False,
              keys: Sequence[RunKey] | None = None) -> SweepResult:
    """Run (or continue) the sweep of ``spec``, recording into ``journal``.

    Runs already in the journal are skipped, so the same call resumes an
    interrupted sweep; with ``retry_failed`` the failed ones (error, oom,
    timeout) run again, and each earlier attempt is kept in the journal
    (:meth:`collector.sweep.journal.Journal.attempts`). ``should_stop`` is polled between runs and while
    waiting for one (every 0.1 s); when it returns True the run in flight is
    abandoned (its worker killed, nothing recorded) and the call returns with
    ``interrupted=True``. ``keys`` runs only those runs (in the seeded order of
    :func:`plan`; budgets off the grid allowed) instead of the grid: a caller that
    decides run by run how many trials a cell needs (``collector diagnose``).

    Warns
    -----
    SequentialOrderWarning
        When ``spec.order == "sequential"``.
    """
    if spec.order == "sequential":
        warnings.warn("runs go in grid order (--order sequential): a slow episode of the host will look "
                      "like a budget regime; prefer --order random", SequentialOrderWarning, stacklevel=2)
    if keys is not None and spec.refine:
        raise ConfigError(f"run_sweep runs either the given keys or the grid with refinement, got refine={spec.refine!r}"
                          " and keys")
    return _Runner(spec, journal, on_event, should_stop, retry_failed).run(keys)
