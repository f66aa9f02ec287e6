"""The measuring process of a sweep (the side of :mod:`collector.sweep` that runs models).

The sweep starts each worker as a fresh interpreter (``python -m
collector.worker``: no state inherited from the sweep, and the user's script
is never re-imported) and talks to it over its stdin/stdout pipes with
pickled messages, one request at a time (the worker's own stdout goes to
stderr, so a model printing cannot break the protocol):

``{"op": "init", "spec": SweepSpec dict}`` -> ``{"ok": True, "pid": int}``

``{"op": "load", "model", "device", "dtype"}``
    -> ``{"ok": True, "info": {n_params, weights, architecture}}``
``{"op": "warmup", "key": RunKey, "n": int, "seed": int}`` -> ``{"ok": True}``
``{"op": "run", "key": RunKey, "seed": int, "position": float}`` -> ``{"ok": True, "record": dict}``
``{"op": "exit"}``

A failure inside a request comes back as ``{"ok": False, "status": "error"|"oom",
"error": message}``; a worker that dies or hangs is the parent's business
(it kills it on timeout and records the run). The worker ignores SIGINT, so
Ctrl-C reaches only the sweep, which stops cleanly; it exits when the sweep's
end of the pipe closes, and within half a second of the sweep's death even
in the middle of a run (a thread watches the parent process id).

:class:`WorkerProcess` is the sweep's side of this protocol (start, request
with timeout and stop polling, kill).

Device ``sim`` runs :func:`collector.sim.simulate` (numpy only, no sleeping);
other devices run :func:`collector.measurement.measure` on a model loaded
once per worker.

Fault injection (tests only): the environment variable
``DECODE_REGIMES_FAULTS`` holds ``KIND@key=value,...;KIND@...`` entries; a
measured run whose coordinates match all of an entry's keys (model, device,
dtype, cache on/off, prompt_len, budget, trial) does KIND instead of running:
``raise`` (an exception), ``oom`` (a real allocation larger than the
machine's memory), ``timeout`` (sleeps for an hour) or ``crash`` (the
process kills itself with SIGSEGV).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from collector.journal import RunKey
from collector.record import RunRecord

__all__ = [
    "FAULTS_ENV",
    "FAULT_KINDS",
    "WorkerDied",
    "WorkerProcess",
    "WorkerStopped",
    "failure_status",
    "fault_for",
    "main",
    "parse_faults",
    "worker_main",
]

FAULTS_ENV = "DECODE_REGIMES_FAULTS"
FAULT_KINDS: tuple[str, ...] = ("raise", "oom", "timeout", "crash")


def parse_faults(text: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a ``DECODE_REGIMES_FAULTS`` value into ``[(kind, {key: value})]``."""
    from collector.errors import ConfigError

    faults = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        kind, _, cond = entry.partition("@")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"unknown fault {kind!r} in {FAULTS_ENV}; choices: {', '.join(FAULT_KINDS)}")
        match: dict[str, str] = {}
        for part in filter(None, cond.split(",")):
            k, sep, v = part.partition("=")
            if not sep or k not in RunKey._fields:
                raise ConfigError(f"bad fault condition {part!r} in {FAULTS_ENV}; use key=value with keys "
                                  f"{', '.join(RunKey._fields)}")
            match[k] = v
        faults.append((kind, match))
    return faults


def _as_text(field: str, value: Any) -> str:
    if field == "cache":
        return "on" if value else "off"
    return str(value)


def fault_for(key: RunKey, faults: list[tuple[str, dict[str, str]]]) -> str | None:
    """The fault kind planted for ``key``, or None."""
    for kind, match in faults:
        if all(_as_text(k, getattr(key, k)) == v for k, v in match.items()):
            return kind
    return None


def failure_status(exc: BaseException) -> str:
    """``oom`` for out-of-memory exceptions (MemoryError, torch's OutOfMemoryError...), else ``error``."""
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
        return "oom"
    return "error"


def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:2000] + " ..."


def _inject(kind: str) -> None:
    if kind == "raise":
        raise RuntimeError("fault injected by DECODE_REGIMES_FAULTS: raise")
    if kind == "oom":
        import numpy as np
        import psutil

        n = int(psutil.virtual_memory().total * 64)  # more bytes than the machine has
        try:  # also cap the address space, so the allocation fails even where memory is overcommitted
            import resource

            old = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (n // 2, old[1]))
        except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimits here
            old = None
        try:
            np.ones(n, dtype=np.uint8)  # raises MemoryError (numpy's _ArrayMemoryError)
        finally:
            if old is not None:
                resource.setrlimit(resource.RLIMIT_AS, old)
        raise RuntimeError("fault oom: the allocation unexpectedly succeeded")  # pragma: no cover
    if kind == "timeout":
        time.sleep(3600)
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)  # pragma: no cover - the signal ends the process


class _SimRunner:
    """Device ``sim``: the latency model of :mod:`collector.sim`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from collector.sim import LatencyModel

        self.spec = spec
        self.model = LatencyModel.from_dict(spec.get("sim") or {})

    def load(self, model: str, device: str, dtype: str) -> dict[str, Any]:
        return {"n_params": int(self.model.cost(model).n_params), "weights": "random", "architecture": "simulated"}

    def warmup(self, key: RunKey, n: int, seed: int) -> None:
        for i in range(n):
            self.run(key, seed + i + 1, 0.0)

    def run(self, key: RunKey, seed: int, position: float) -> RunRecord:
        from collector.sim import simulate

        rec = simulate(self.model, model=key.model, device=key.device, dtype=key.dtype, cache=key.cache,
                       prompt_len=key.prompt_len, budget=key.budget, position=position, seed=seed,
                       timing=self.spec["timing"])
        return dataclasses.replace(rec, engine=self.spec["engine"])


class _TorchRunner:
    """Devices cpu, cuda, mps: :func:`collector.measurement.measure` on models loaded once."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from collector import measurement

        self.m = measurement
        self.spec = spec
        self.loaded: dict[tuple[str, str, str], Any] = {}

    def _kwargs(self, key: RunKey, seed: int) -> dict[str, Any]:
        s = self.spec
        return dict(model=key.model, device=key.device, dtype=key.dtype, budget=key.budget, cache=key.cache,
                    prompt_len=key.prompt_len, engine=s["engine"], timing=s["timing"], weights=s["weights"],
                    seed=seed, memory=s["memory"], memory_interval=s["memory_interval"],
                    loaded=self.loaded[(key.model, key.device, key.dtype)])

    def load(self, model: str, device: str, dtype: str) -> dict[str, Any]:
        handle = self.m.load_model(model=model, device=device, dtype=dtype, weights=self.spec["weights"],
                                   seed=int(self.spec["seed"]))
        self.loaded[(model, device, dtype)] = handle
        return {"n_params": int(handle.n_params), "weights": str(handle.weights),
                "architecture": str(handle.architecture)}

    def warmup(self, key: RunKey, n: int, seed: int) -> None:
        self.m.warmup(n, **self._kwargs(key, seed))

    def run(self, key: RunKey, seed: int, position: float) -> RunRecord:
        return self.m.measure(**self._kwargs(key, seed))


def _handle(runners: dict[str, Any], spec: dict[str, Any], faults: list[tuple[str, dict[str, str]]],
            msg: dict[str, Any]) -> dict[str, Any]:
    op = msg["op"]
    device = msg["key"][1] if "key" in msg else msg["device"]
    kind = "sim" if device == "sim" else "torch"
    if kind not in runners:
        runners[kind] = _SimRunner(spec) if kind == "sim" else _TorchRunner(spec)
    runner = runners[kind]
    if op == "load":
        return {"ok": True, "info": runner.load(msg["model"], msg["device"], msg["dtype"])}
    key = RunKey(*msg["key"])
    if op == "warmup":
        runner.warmup(key, int(msg["n"]), int(msg["seed"]))
        return {"ok": True}
    if op == "run":
        planted = fault_for(key, faults)
        if planted is not None:
            _inject(planted)
        rec = runner.run(key, int(msg["seed"]), float(msg["position"]))
        return {"ok": True, "record": rec.to_dict()}
    raise ValueError(f"unknown worker request {op!r}")


def worker_main(conn_in: Any, conn_out: Any) -> None:
    """Answer requests from ``conn_in`` on ``conn_out`` until told to exit or the pipe closes.

    The first request is ``{"op": "init", "spec": SweepSpec dict}``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faults = parse_faults(os.environ.get(FAULTS_ENV, ""))
    runners: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    while True:
        try:
            msg = conn_in.recv()
        except (EOFError, OSError):
            return
        if msg.get("op") == "exit":
            return
        try:
            if msg.get("op") == "init":
                spec = dict(msg["spec"])
                reply: dict[str, Any] = {"ok": True, "pid": os.getpid()}
            else:
                reply = _handle(runners, spec, faults, msg)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the sweep as a status
            reply = {"ok": False, "status": failure_status(exc), "error": _message(exc)}
        try:
            conn_out.send(reply)
        except (EOFError, OSError):
            return


# --------------------------------------------------------------------------- the sweep's side
class WorkerDied(Exception):
    """The worker died or timed out during a request; ``status`` and ``error`` describe the run's failure."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class WorkerStopped(Exception):
    """The sweep asked to stop while waiting for the worker (which was killed)."""


class WorkerProcess:
    """The sweep's handle on one worker process (``python -m collector.worker``) and its pipes.

    :meth:`request` sends one request and waits for the reply, polling every
    0.1 s for ``should_stop``, the process's death and the ``timeout``.
    """

    def __init__(self, spec: dict[str, Any], number: int, group: Any) -> None:
        from multiprocessing.connection import Connection

        env = dict(os.environ)
        paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        self.proc = subprocess.Popen([sys.executable, "-m", "collector.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.number, self.group = number, group
        self.pid = int(self.proc.pid)
        self.loaded: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self.warmed: set[tuple[Any, ...]] = set()
        self.init = {"op": "init", "spec": spec}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, msg: dict[str, Any], timeout: float | None, should_stop: Callable[[], bool]) -> dict[str, Any]:
        if self.init is not None:
            init, self.init = self.init, None
            self.request(init, 120.0, should_stop)
        try:
            self._send.send(msg)
        except OSError:
            self.proc.wait(5)
            raise WorkerDied(self._death_status(), self._death()) from None
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            wait = min(0.1, max(0.0, deadline - time.monotonic()))
            if self._recv.poll(wait):
                try:
                    return dict(self._recv.recv())
                except (EOFError, OSError):
                    try:
                        self.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        self.kill()
                    raise WorkerDied(self._death_status(), self._death()) from None
            if should_stop():
                self.kill()
                raise WorkerStopped()
            if not self.alive():
                raise WorkerDied(self._death_status(), self._death())
            if time.monotonic() >= deadline:
                self.kill()
                raise WorkerDied("timeout", f"no result within the {timeout:g} s timeout; worker {self.number} killed")

    def _death_status(self) -> str:
        return "oom" if self.proc.returncode == -signal.SIGKILL else "error"

    def _death(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            why = " (the system's out-of-memory killer sends it)" if -code == signal.SIGKILL else ""
            return f"worker {self.number} (pid {self.pid}) died from signal {name}{why}"
        return f"worker {self.number} (pid {self.pid}) died with exit code {code!r}"

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
            pass
        for c in (self._send, self._recv):
            if not c.closed:
                c.close()

    def close(self) -> None:
        if self.alive() and self.init is None:
            try:
                self._send.send({"op": "exit"})
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """End this process as soon as the sweep that started it is gone (even in the middle of a run),
    so an orphaned worker never competes for the machine with the sweep's next processes."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    """Process entry point: requests on stdin; replies on what was stdout (stdout itself goes to stderr,
    so nothing a model prints can corrupt the protocol)."""
    from multiprocessing.connection import Connection

    _exit_with_parent(os.getppid())
    out_fd = os.dup(1)
    os.dup2(2, 1)
    worker_main(Connection(0, writable=False), Connection(out_fd, readable=False))


if __name__ == "__main__":
    main()
