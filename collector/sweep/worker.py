"""The measuring process of a sweep (the side of :mod:`collector.sweep.runner` that runs models).

The sweep starts each worker as a fresh interpreter (``python -m
collector.sweep.worker``: no state inherited from the sweep, and the user's script
is never re-imported) and talks to it over its stdin/stdout pipes with the
pickled message dataclasses of :mod:`collector.shared.protocol`, one request at a
time (the worker's own stdout goes to stderr, so a model printing cannot
break the protocol): ``Init`` -> ``Ready``; ``Load`` -> ``Loaded``;
``Warmup`` -> ``Done``; ``Run`` -> ``Measured``; ``Exit``.

A failure inside a request comes back as ``Failed(status, error)`` (status
classified by :mod:`collector.sweep.failures`); a worker that dies or hangs is the parent's business
(it kills it on timeout and records the run, or runs it again when the worker
was killed from outside). The worker ignores SIGINT, so Ctrl-C reaches only
the sweep, which stops cleanly; it exits when the sweep's end of the pipe
closes, and within half a second of the sweep's death even in the middle of a
run: on Linux the kernel kills it with the sweep (``PR_SET_PDEATHSIG``),
elsewhere a thread checks the parent process id every 0.1 s.

:class:`WorkerProcess` is the sweep's side of this protocol (start, request
with timeout and stop polling, kill).

Device ``sim`` runs :func:`collector.shared.sim.simulate` (numpy only, no sleeping);
device ``http`` sends requests to a server (:class:`collector.http.engine.HttpRunner`);
other devices run :func:`collector.measuring.measurement.measure` on a model loaded
once per worker.

Fault injection (tests only): the environment variable
``DECODE_REGIMES_FAULTS`` holds ``KIND@key=value,...;KIND@...`` entries; a
measured run whose coordinates match all of an entry's keys (model, device,
or any other sweep dim: cache as on/off) does KIND instead of running:
``raise`` (an exception), ``oom`` (a real allocation larger than the
machine's memory), ``timeout`` (sleeps for an hour), ``crash`` (the
process kills itself with SIGSEGV), ``slow`` (sleeps 0.5 s, then measures),
``slow-warmup`` (each warm-up of the cell sleeps 0.5 s first) or ``slow-decode``
(a planted regime on a real device: the run is measured, each decode-step
forward of the model sleeping as long as it took, so decode steps take twice
as long; the prefill does not). An integer key also takes a range,
``budget=150..250`` (both ends included). The variable is read only by a sweep
process in which code called :func:`enable_fault_injection` (the test suite's
``conftest.py`` does); the faults then travel to the workers inside
:class:`~collector.shared.protocol.Init`. Workers never read the environment for
faults, so no environment and no flag can plant one in a normal run.
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

from collector.shared.factors import BY_NAME, SWEEP_DIMS, RunKey
from collector.shared.protocol import (
    Done,
    Exit,
    Failed,
    Init,
    Load,
    Loaded,
    Measured,
    Protocol,
    Ready,
    Reply,
    Request,
    Run,
    Warmup,
)
from collector.shared.record import RunRecord
from collector.sweep import failures

__all__ = [
    "FAULTS_ENV",
    "FAULT_KINDS",
    "enable_fault_injection",
    "planted_faults",
    "WorkerDied",
    "WorkerProcess",
    "WorkerStopped",
    "failure_status",
    "fault_for",
    "host_state",
    "main",
    "parse_faults",
    "worker_main",
]

FAULTS_ENV = "DECODE_REGIMES_FAULTS"
FAULT_KINDS: tuple[str, ...] = ("raise", "oom", "timeout", "crash", "slow", "slow-warmup", "slow-decode")
#: Seconds between two checks of the parent process id (where the kernel cannot kill the worker with its parent).
PARENT_POLL = 0.1

_fault_injection = False


def enable_fault_injection() -> None:
    """Let this process's sweeps honour ``DECODE_REGIMES_FAULTS`` (a test hook; nothing in a normal run calls it)."""
    global _fault_injection
    _fault_injection = True


def planted_faults() -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """The faults a sweep started here sends its workers: those of ``DECODE_REGIMES_FAULTS`` once
    :func:`enable_fault_injection` was called, else none (the variable is ignored)."""
    if not _fault_injection:
        return ()
    return tuple((kind, tuple(match.items())) for kind, match in parse_faults(os.environ.get(FAULTS_ENV, "")))


def parse_faults(text: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a ``DECODE_REGIMES_FAULTS`` value into ``[(kind, {key: value})]``."""
    from collector.shared.errors import ConfigError

    faults = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        kind, _, cond = entry.partition("@")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"unknown fault {kind!r} in {FAULTS_ENV}; choices: {', '.join(FAULT_KINDS)}")
        match: dict[str, str] = {}
        for part in filter(None, cond.split(",")):
            k, sep, v = part.partition("=")
            if not sep or k not in SWEEP_DIMS:
                raise ConfigError(f"bad fault condition {part!r} in {FAULTS_ENV}; use key=value with keys "
                                  f"{', '.join(SWEEP_DIMS)}")
            if ".." in v and (BY_NAME[k].kind != "int" or not all(x.strip().isdigit() for x in v.split("..", 1))):
                raise ConfigError(f"bad fault condition {part!r} in {FAULTS_ENV}; a range needs an integer key "
                                  "and two integers, e.g. budget=150..250")
            match[k] = v
        faults.append((kind, match))
    return faults


def _as_text(field: str, value: Any) -> str:
    if BY_NAME[field].kind == "bool":
        return "on" if value else "off"
    return str(value)


def _matches(field: str, value: Any, want: str) -> bool:
    if ".." in want:
        lo, hi = want.split("..", 1)
        return int(lo) <= int(value) <= int(hi)
    return _as_text(field, value) == want


def fault_for(key: RunKey, faults: Any) -> str | None:
    """The fault kind planted for ``key`` (``faults``: pairs of kind and conditions, a mapping or pairs), or None."""
    for kind, match in faults:
        if all(_matches(k, getattr(key, k), v) for k, v in dict(match).items()):
            return kind
    return None


class _SlowDecode:
    """While entered, every forward of ``module`` after its first (the prefill) sleeps as long as it took."""

    def __init__(self, module: Any) -> None:
        self.module, self.calls = module, 0

    def __enter__(self) -> None:
        forward = self.module.forward

        def slow(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = forward(*args, **kwargs)
            self.calls += 1
            if self.calls > 1:
                time.sleep(time.perf_counter() - t0)
            return out

        self.module.forward = slow

    def __exit__(self, *exc: object) -> None:
        del self.module.forward  # the class's forward again


#: Kept for callers of the old name; the classification lives in :mod:`collector.sweep.failures`.
failure_status = failures.classify_exception


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
    if kind in ("slow", "slow-warmup"):
        time.sleep(0.5)


class _SimRunner:
    """Device ``sim``: the latency model of :mod:`collector.shared.sim`. attn and cache_impl change no cost; a regime
    restricted to one of them, or to a sweep seed (a process-local regime), acts only on runs that match."""

    def __init__(self, init: Init) -> None:
        from collector.shared.sim import LatencyModel

        self.protocol = init.protocol
        self.model = LatencyModel.from_dict(init.sim)
        self.seed: int | None = None

    def load(self, msg: Load) -> dict[str, Any]:
        self.seed = int(msg.seed)
        return {"n_params": int(self.model.cost(msg.key.model).n_params), "weights": "random",
                "architecture": "simulated"}

    def warmup(self, msg: Warmup) -> None:
        for i in range(msg.n):
            self.run(Run(msg.key, msg.seed + i + 1, 0.0))

    def run(self, msg: Run) -> RunRecord:
        from collector.shared.sim import simulate

        k = msg.key
        model = self.model.restricted(attn=k.attn, cache_impl=k.cache_impl, seed=self.seed)
        rec = simulate(model, model=k.model, device=k.device, dtype=k.dtype, cache=k.cache,
                       prompt_len=k.prompt_len, budget=k.budget, position=msg.position, seed=msg.seed,
                       timing=self.protocol.timing)
        return dataclasses.replace(rec, **k.cell._asdict(), engine=self.protocol.engine)


class _TorchRunner:
    """Devices cpu, cuda, mps: :func:`collector.measuring.measurement.measure_request` on models loaded once per load key."""

    def __init__(self, init: Init) -> None:
        from collector.measuring import measurement

        self.m = measurement
        self.protocol = init.protocol
        self.loaded: dict[tuple[Any, ...], Any] = {}

    def _request(self, key: RunKey, seed: int) -> Any:
        return self.m.Request.for_model(self.loaded[key.load_key], key.cell, self.protocol, seed)

    def load(self, msg: Load) -> dict[str, Any]:
        k = msg.key
        handle = self.m.load_model(model=k.model, device=k.device, dtype=k.dtype, attn=k.attn,
                                   weights=self.protocol.weights, seed=msg.seed)
        self.loaded[k.load_key] = handle
        return {"n_params": int(handle.n_params), "weights": str(handle.weights),
                "architecture": str(handle.architecture)}

    def warmup(self, msg: Warmup) -> None:
        loaded = self.loaded[msg.key.load_key]
        for i in range(msg.n):
            self.m.measure_request(self._request(msg.key, msg.seed), loaded)

    def run(self, msg: Run, slow_decode: bool = False) -> RunRecord:
        loaded = self.loaded[msg.key.load_key]
        if slow_decode:
            with _SlowDecode(loaded.module):
                return self.m.measure_request(self._request(msg.key, msg.seed), loaded)
        return self.m.measure_request(self._request(msg.key, msg.seed), loaded)


def host_state() -> dict[str, Any]:
    """What the host is doing as a run starts: ``load_avg`` (1-minute load average), ``cpu_freq`` (MHz,
    current CPU frequency by psutil) and ``torch_threads`` (``torch.get_num_threads()`` when torch is
    loaded in this process); NaN / -1 where this platform does not tell."""
    out: dict[str, Any] = {"load_avg": math.nan, "cpu_freq": math.nan, "torch_threads": -1}
    try:
        out["load_avg"] = float(os.getloadavg()[0])
    except (AttributeError, OSError):  # pragma: no cover - not on this platform
        pass
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq is not None and freq.current and math.isfinite(freq.current):
            out["cpu_freq"] = float(freq.current)
    except (ImportError, OSError, RuntimeError, NotImplementedError, AttributeError):  # pragma: no cover
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out["torch_threads"] = int(torch.get_num_threads())
        except (AttributeError, RuntimeError):  # pragma: no cover
            pass
    return out


def _handle(runners: dict[str, Any], init: Init, msg: Request) -> Reply:
    if isinstance(msg, Init | Exit):  # pragma: no cover - handled by worker_main
        raise TypeError(f"unexpected worker request {type(msg).__name__!r}")
    kind = msg.key.device if msg.key.device in ("sim", "http") else "torch"
    if kind not in runners:
        if kind == "http":
            from collector.http.engine import HttpRunner

            runners[kind] = HttpRunner(init)
        else:
            runners[kind] = _SimRunner(init) if kind == "sim" else _TorchRunner(init)
    runner = runners[kind]
    if isinstance(msg, Load):
        return Loaded(runner.load(msg))
    planted = fault_for(msg.key, init.faults) if isinstance(msg, Warmup | Run) else None
    if isinstance(msg, Warmup):
        if planted == "slow-warmup":
            _inject(planted)
        runner.warmup(msg)
        return Done()
    if isinstance(msg, Run):
        host = host_state()
        if planted == "slow-decode" and isinstance(runner, _TorchRunner):
            return Measured(dataclasses.replace(runner.run(msg, slow_decode=True), **host))
        if planted is not None and planted not in ("slow-warmup", "slow-decode"):
            _inject(planted)
        return Measured(dataclasses.replace(runner.run(msg), **host))
    raise TypeError(f"unknown worker request {type(msg).__name__!r}")


def worker_main(conn_in: Any, conn_out: Any) -> None:
    """Answer requests from ``conn_in`` on ``conn_out`` until told to exit or the pipe closes.

    The first request is an :class:`~collector.shared.protocol.Init`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runners: dict[str, Any] = {}
    init = Init(Protocol())
    try:
        _serve(conn_in, conn_out, runners, init)
    finally:  # a server started for engine http stops with its worker (collector.http.server)
        for runner in runners.values():
            if hasattr(runner, "close"):
                runner.close()


def _serve(conn_in: Any, conn_out: Any, runners: dict[str, Any], init: Init) -> None:
    while True:
        try:
            msg = conn_in.recv()
        except (EOFError, OSError):
            return
        if isinstance(msg, Exit):
            return
        reply: Reply
        try:
            if isinstance(msg, Init):
                init = msg
                reply = Ready(os.getpid())
            else:
                reply = _handle(runners, init, msg)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the sweep as a status
            reply = Failed(failures.classify_exception(exc), failures.message(exc))
        try:
            conn_out.send(reply)
        except (EOFError, OSError):
            return


# --------------------------------------------------------------------------- the sweep's side
class WorkerDied(Exception):
    """The worker died or timed out during a request.

    ``error`` says how; :meth:`status` classifies it (:func:`collector.sweep.failures.classify_exit`):
    ``timeout`` when the sweep killed it past the limit, None when it was killed from outside and the
    run is not to blame (the first time).
    """

    def __init__(self, error: str, *, returncode: int | None = None, oom_killed: bool | None = None,
                 timed_out: bool = False) -> None:
        super().__init__(error)
        self.error, self.returncode, self.oom_killed, self.timed_out = error, returncode, oom_killed, timed_out

    def status(self, *, repeated: bool) -> str | None:
        """The run's status, or None (an interruption: run it again) for a first death by a signal."""
        if self.timed_out:
            return failures.TIMEOUT
        return failures.classify_exit(self.returncode, oom_killed=self.oom_killed, repeated=repeated)


_STOP_SIGNALS = frozenset(int(getattr(signal, n)) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class WorkerStopped(Exception):
    """The sweep asked to stop while waiting for the worker (which was killed)."""


class WorkerProcess:
    """The sweep's handle on one worker process (``python -m collector.sweep.worker``) and its pipes.

    :meth:`request` sends one request and waits for the reply, polling every
    0.1 s for ``should_stop``, the process's death and the ``timeout``.
    """

    def __init__(self, init: Init, number: int, group: Any) -> None:
        from multiprocessing.connection import Connection

        env = dict(os.environ)
        paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        self.proc = subprocess.Popen([sys.executable, "-m", "collector.sweep.worker", str(os.getpid())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.number, self.group = number, group
        self.pid = int(self.proc.pid)
        self.loaded: dict[tuple[Any, ...], tuple[str, str] | None] = {}
        self.warmed: set[tuple[Any, ...]] = set()
        self.init: Init | None = init

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, msg: Request, timeout: float | None, should_stop: Callable[[], bool]) -> Reply:
        if self.init is not None:
            init, self.init = self.init, None
            self.request(init, 120.0, should_stop)
        oom_before = failures.oom_kills()
        try:
            self._send.send(msg)
        except OSError:
            raise self._died(oom_before, should_stop) from None
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            wait = min(0.1, max(0.0, deadline - time.monotonic()))
            if self._recv.poll(wait):
                try:
                    reply: Reply = self._recv.recv()
                    return reply
                except (EOFError, OSError):
                    raise self._died(oom_before, should_stop) from None
            if should_stop():
                self.kill()
                raise WorkerStopped()
            if not self.alive():
                raise self._died(oom_before, should_stop)
            if time.monotonic() >= deadline:
                self.kill()
                raise WorkerDied(f"no result within the {timeout:g} s timeout; worker {self.number} killed",
                                 timed_out=True)

    def _died(self, oom_before: int | None, should_stop: Callable[[], bool]) -> Exception:
        """What to raise for a worker found dead: :class:`WorkerStopped` when the sweep itself is stopping
        (a signal to the whole process group reaches the worker too), else :class:`WorkerDied`."""
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
        code = self.proc.returncode
        if code is not None and -code in _STOP_SIGNALS:
            time.sleep(0.05)  # the same signal may be on its way to the sweep: let its handler run first
        if should_stop():
            self.kill()
            return WorkerStopped()
        oom_after = failures.oom_kills()
        oom = None if oom_before is None or oom_after is None else oom_after > oom_before
        return WorkerDied(self._death(), returncode=code, oom_killed=oom)

    def _death(self) -> str:
        return failures.describe_exit(self.proc.returncode, f"worker {self.number} (pid {self.pid})")

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
                self._send.send(Exit())
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


def _kill_with_parent() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return False


def _exit_with_parent(parent: int, interval: float = PARENT_POLL) -> None:
    """End this process as soon as the sweep that started it is gone (even in the middle of a run),
    so an orphaned worker never competes for the machine with the sweep's next processes.

    On Linux the kernel kills it at once; everywhere a thread also checks the parent process id every
    ``interval`` seconds."""
    import threading

    _kill_with_parent()
    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    """Process entry point: requests on stdin; replies on what was stdout (stdout itself goes to stderr,
    so nothing a model prints can corrupt the protocol). The first argument, when given, is the sweep's
    process id."""
    from multiprocessing.connection import Connection

    parent = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else os.getppid()
    _exit_with_parent(parent)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    worker_main(Connection(0, writable=False), Connection(out_fd, readable=False))


if __name__ == "__main__":
    main()
