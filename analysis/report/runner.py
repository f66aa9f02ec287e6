"""Running a report's steps: a small task graph, serially or on forked worker processes.

Each task is a module-level function with picklable arguments; the dataset
itself is not sent to the workers but inherited when they are forked (it is
put in :data:`SHARED` first). Results (analysis results, rendered figures)
come back pickled. Where ``fork`` is not available the tasks run serially.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from analysis.errors import AnalysisError

__all__ = ["SHARED", "Task", "default_workers", "run"]

#: Data the tasks read (the dataset), inherited by forked workers.
SHARED: dict[str, Any] = {}


@dataclass(frozen=True)
class Task:
    """``func(*args, **{dep: result of dep})``, run once every task named in ``deps`` is done."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    deps: tuple[str, ...] = field(default=())


def default_workers() -> int:
    """Worker processes used when not told: the CPUs this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return func(*args, **kwargs)
    except AnalysisError as exc:  # reported in the page, not raised
        return exc


def _no_notice(name: str) -> None:
    """The default ``on_done``: nothing."""


def _fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run(tasks: Sequence[Task], *, workers: int, on_done: Callable[[str], None] | None = None,
        known: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``tasks`` (earlier in the list = higher priority) and return ``{name: result}``.

    ``known`` holds results given in advance (their tasks are not run). A
    task whose function raises :class:`~analysis.errors.AnalysisError` gets
    the exception as its result; so does, without running, a task one of
    whose dependencies has such a result.
    """
    notify = on_done if on_done is not None else _no_notice
    results: dict[str, Any] = dict(known or {})
    pending = [t for t in tasks if t.name not in results]

    def ready() -> list[Task]:
        return [t for t in pending if all(d in results for d in t.deps)]

    def kwargs(t: Task) -> dict[str, Any]:
        return {d: results[d] for d in t.deps}

    def failed_dep(t: Task) -> Exception | None:
        return next((results[d] for d in t.deps if isinstance(results[d], Exception)), None)

    if workers <= 1 or len(pending) <= 1 or not _fork_available():
        while pending:
            t = ready()[0]
            pending.remove(t)
            exc = failed_dep(t)
            results[t.name] = exc if exc is not None else _call(t.func, t.args, kwargs(t))
            notify(t.name)
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        running: dict[Future[Any], str] = {}
        while pending or running:
            for t in ready():
                if len(running) >= workers:
                    break
                pending.remove(t)
                exc = failed_dep(t)
                if exc is not None:
                    results[t.name] = exc
                    notify(t.name)
                    continue
                running[pool.submit(_call, t.func, t.args, kwargs(t))] = t.name
            if not running and not pending:
                break
            if not running:
                raise RuntimeError(f"report tasks wait on each other: {[t.name for t in pending]!r}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                results[name] = fut.result()
                notify(name)
    return results
