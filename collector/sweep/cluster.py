"""A sweep's runs on dask.distributed workers (``python -m collector run --scheduler ADDRESS`` or ``--cluster local``).

The client (the sweep's own process) plans the runs as :func:`collector.sweep.runner.plan` does, and
submits one task per run, in that order (task priority), each asking for one unit of the worker
resource named after its device (``cpu``, ``cuda``, ``mps``): a worker started with
``--resources cuda=1`` runs one measuring task at a time, so runs never share a device. On the worker
the task measures the run with the sweep's own machinery (:class:`collector.sweep.runner._Runner`
and its worker process, kept from task to task: model load, warm-up, isolation and passes as in a
local sweep, per dask worker). Every record comes back to the client and is committed to the one
SQLite journal there as it arrives; a run already in the journal is never recorded again. A task
whose dask worker died is submitted again (at most :data:`MAX_TRIES` times); one that still fails
stays pending, and ``python -m collector resume`` runs it (locally) as it runs any missing run.

Each dask worker numbers its own measuring processes; the client maps (host, dask worker process,
number) to a journal-wide worker number. Refinement (``--refine``) is not done on a cluster.

Hosts become origins. Each task also says which host measured the run and that host's environment
(:func:`collector.measuring.environment.collect` run there, once per dask worker process: platform, processor,
gpu_name, versions, cpu_count, ...). The journal keeps, per run, its host and, per host, its environment;
:func:`collector.dataset.export.to_dataset` writes a sweep whose runs come from several hosts as one dataset with
an ``origin`` per host (label: the host name; each origin's environment as its coordinates), the
combined format ``python -m collector merge`` writes, so ``analysis.compare_backends`` and
``analysis.compare`` work across the hosts; a sweep of one host is one origin, as a local sweep.
A host is named by ``DECODE_REGIMES_HOST`` where its worker runs, else by its network name
(``platform.node()``): set it where hostnames are random or equal (containers), or to keep two workers
of one host apart (one per GPU).

Starting workers on a fleet (one per device)::

    dask scheduler                                         # on the client host: tcp://HOST:8786
    dask worker tcp://HOST:8786 --nworkers 1 --nthreads 1 --resources mps=1        # on each Mac
    CUDA_VISIBLE_DEVICES=0 dask worker tcp://HOST:8786 --nthreads 1 --resources cuda=1   # one per GPU
    DECODE_REGIMES_HOST=node7-gpu1 CUDA_VISIBLE_DEVICES=1 dask worker ...   # that GPU as its own origin
    python -m collector run --scheduler tcp://HOST:8786 --devices mps ...
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from collector.measuring.environment import collect, host_name
from collector.shared.errors import ConfigError
from collector.shared.factors import RunKey
from collector.sweep.journal import Journal
from collector.sweep.runner import SweepEvent, SweepResult, pass_of, plan
from collector.sweep.spec import SweepSpec
from collector.sweep.worker import planted_faults

__all__ = ["MAX_TRIES", "connect", "disconnect", "host_environment", "measure_task", "run_on_cluster"]

#: Submissions of one run before it is left pending (a task whose worker died is submitted again).
MAX_TRIES = 3

_RUNNERS: dict[str, Any] = {}
_HOSTS: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}


class _Book:
    """What a runner on a dask worker needs of a journal, in memory: nothing done, worker numbers, model facts."""

    def __init__(self) -> None:
        self.workers = 0
        self.models: dict[str, dict[str, Any]] = {}

    def done(self, *, failed: bool = True) -> set[RunKey]:
        return set()

    def model_info(self) -> dict[str, dict[str, Any]]:
        return dict(self.models)

    def next_worker(self) -> int:
        self.workers += 1
        return self.workers - 1

    def set_model_info(self, name: str, info: dict[str, Any]) -> None:
        self.models[name] = dict(info)


def host_environment(devices: Sequence[str]) -> dict[str, Any]:
    """This host's environment for a sweep on ``devices``, as a local sweep records it
    (:func:`collector.measuring.environment.collect`, ``host`` honouring ``DECODE_REGIMES_HOST``); gathered once per
    host name and devices in this process."""
    key = (host_name(), tuple(devices))
    if key not in _HOSTS:
        _HOSTS[key] = collect(devices)
    return dict(_HOSTS[key])


def _worker_devices(devices: Sequence[str], device: str) -> list[str]:
    """The sweep's ``devices`` this dask worker offers as resources (``[device]`` where it cannot tell)."""
    try:
        from distributed import get_worker

        offered = dict(get_worker().state.total_resources)
    except (ImportError, ValueError, AttributeError):  # not in a dask worker (ValueError: "No worker found")
        offered = {}
    return [d for d in devices if offered.get(d, 0) >= 1] or [device]


def measure_task(spec_json: str, faults: Any, key: tuple[Any, ...], planned: int) -> dict[str, Any]:
    """Measure one run on this dask worker (in its measuring process, kept between tasks).

    Returns
    -------
    dict
        ``record``, who ran it (``worker``: the measuring process's number on this dask worker, ``pid``,
        ``dask_pid``, ``host``: :func:`collector.measuring.environment.host_name`), ``environment`` (this host's,
        :func:`host_environment`) and ``model_info``.
    """
    from collector.sweep.runner import _Runner

    runner = _RUNNERS.get(spec_json)
    if runner is None:
        for old in _RUNNERS.values():
            if old.worker is not None:
                old.worker.close()
        _RUNNERS.clear()
        runner = _Runner(SweepSpec.from_dict(json.loads(spec_json)), _Book(), None, None)  # type: ignore[arg-type]
        runner.init = dataclasses.replace(runner.init, faults=tuple(faults))
        _RUNNERS[spec_json] = runner
    run_key = RunKey(*key)
    record, worker = runner._measure(run_key, planned)
    environment = host_environment(_worker_devices(runner.spec.devices, run_key.device))
    return {"record": record, "worker": int(worker.number), "pid": int(worker.pid), "host": environment["host"],
            "environment": environment, "dask_pid": os.getpid(),
            "model_info": dict(runner.model_info.get(run_key.model, {}))}


def connect(scheduler: str | None = None, *, local_workers: int = 0, resources: dict[str, float] | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or of a new ``LocalCluster`` of ``local_workers``
    processes, one thread each, every one offering ``resources`` (default ``{"cpu": 1}``).

    Raises
    ------
    ConfigError
        The scheduler cannot be reached (naming the address).
    """
    import distributed

    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=max(local_workers, 1), threads_per_worker=1, processes=True,
                                           dashboard_address=None, resources=resources or {"cpu": 1},
                                           silence_logs=40)
        return distributed.Client(cluster)
    try:
        return distributed.Client(scheduler, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"cannot reach the dask scheduler {scheduler!r}: {exc}") from None


def disconnect(client: Any, *, local: bool) -> None:
    """Close ``client`` and, when it came from :func:`connect` without a scheduler (``local``), its cluster."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if local and cluster is not None:
        cluster.close()


def _check_resources(client: Any, spec: SweepSpec) -> None:
    offered: set[str] = set()
    for info in client.scheduler_info().get("workers", {}).values():
        offered |= {k for k, v in (info.get("resources") or {}).items() if v >= 1}
    missing = [d for d in spec.devices if d not in offered]
    if missing:
        raise ConfigError(f"no dask worker offers resource {missing[0]!r} (offered: {sorted(offered) or 'none'}); "
                          f"start one with 'dask worker ADDRESS --nthreads 1 --resources {missing[0]}=1'")


def run_on_cluster(spec: SweepSpec, journal: Journal, client: Any, *,
                   on_event: Callable[[SweepEvent], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Run (or continue) the sweep of ``spec`` on the workers of dask ``client``, recording into ``journal``.

    Raises
    ------
    ConfigError
        ``spec`` asks for refinement, or no worker offers a device's resource (before anything runs).
    """
    from distributed import as_completed

    if spec.refine:
        raise ConfigError(f"refine={spec.refine!r} is not done on a dask cluster; run the grid there and refine "
                          "locally (python -m collector resume), or drop --refine")
    _check_resources(client, spec)
    emit = on_event or (lambda e: None)
    stop = should_stop or (lambda: False)
    t0 = time.perf_counter()
    result = SweepResult()
    done = journal.done(failed=True)
    spec_json = spec.to_json()
    faults = planted_faults()
    models = journal.model_info()
    hosts = journal.hosts()
    numbers: dict[tuple[Any, ...], int] = {}
    todo = [(i, k) for i, k in enumerate(plan(spec)) if k not in done]
    total = len(done) + len(todo)
    emit(SweepEvent("start", len(done), total))
    tries: dict[RunKey, int] = {}
    futures: dict[Any, tuple[int, RunKey]] = {}

    def submit(planned: int, key: RunKey) -> Any:
        tries[key] = tries.get(key, 0) + 1
        fut = client.submit(measure_task, spec_json, faults, tuple(key), planned, resources={key.device: 1},
                            priority=-planned, pure=False, key=f"decode-regimes-run-{planned}-{tries[key]}")
        futures[fut] = (planned, key)
        return fut

    pending = as_completed([submit(i, k) for i, k in todo])
    for fut in pending:
        planned, key = futures.pop(fut)
        if stop():
            result.interrupted = True
            break
        try:
            out = fut.result()
        except Exception:  # noqa: BLE001 - a lost worker (KilledWorker), a cancelled task: submit it again
            if tries[key] < MAX_TRIES:
                result.retried += 1
                pending.add(submit(planned, key))
            continue
        if key in done:
            continue
        rec = dataclasses.replace(out["record"], process=pass_of(spec, key))
        host = str(out["host"])
        if host not in hosts:
            hosts[host] = dict(out["environment"])
            journal.set_host(host, hosts[host])
        who = (host, out["dask_pid"], out["worker"])
        if who not in numbers:
            numbers[who] = journal.next_worker()
        if key.model not in models and out["model_info"]:
            models[key.model] = out["model_info"]
            journal.set_model_info(key.model, out["model_info"])
        journal.add(key, rec, worker=numbers[who], pid=out["pid"], planned=planned, host=host)
        done.add(key)
        result.recorded += 1
        if rec.ok:
            result.measured_time += rec.latency
        else:
            result.failed += 1
        emit(SweepEvent("run", len(done), total, key, rec))
    if futures:
        client.cancel(list(futures))
    result.wall_time = time.perf_counter() - t0
    result.in_journal = journal.count()
    result.interrupted = result.interrupted or len(done) < total
    emit(SweepEvent("end", len(done), total))
    return result
