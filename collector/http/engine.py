"""Engine ``http``: one run is one streamed request to an OpenAI-compatible server (the worker's side).

:class:`HttpRunner` answers the worker's ``Load`` / ``Warmup`` / ``Run``
requests for device ``http`` (:mod:`collector.sweep.worker`), like the torch
runner does for cpu, cuda and mps:

* ``Load``: with ``--server-cmd``, start the configuration's server (a fresh
  one whenever the filled-in command changes, and in every fresh worker, so
  ``--isolation`` chooses how often) and time its start-up; then ask the
  server who it is (:func:`collector.http.probe.describe`) and whether it
  has a tokenizer.
* ``Run``: build a prompt of ``prompt_len`` tokens (:mod:`collector.http.prompt`),
  send it with ``max_tokens = budget``, greedy, with stopping disabled where
  the server honours it (``ignore_eos``, ``min_tokens``), and time the stream
  (:func:`collector.http.client.stream`).

What a record holds (all client-side, seconds from sending the request):
``prefill_time`` the time to first token (connection, queueing, prefill, the
first token and its trip back); ``latency`` the end of the stream;
``decode_time`` their difference; with ``timing=stream`` ``step_time`` step 0
the time to first token and step k the gap between the arrivals of tokens
k-1 and k (the steps sum to the last token's arrival; ``latency`` adds the
wait for the end of the stream). Step times are left out of a run whose
chunks did not carry one token each (a server that batches tokens into a
chunk), never guessed. ``tokens`` is the server's ``usage.completion_tokens``
(else the chunks counted). A run that produced fewer tokens than the budget
(the server does not honour ``ignore_eos``) has status ``truncated``: its
times and ``tokens`` are kept, measured for the tokens it produced, and the
analysis leaves it out of the comparison along the budget axis; more
tokens than the budget is an ``error``.

A strict server that answers 400 / 422 naming one of the fields beyond the
OpenAI API (:data:`EXTRA_FIELDS`: ``ignore_eos``, ``min_tokens``,
``stream_options``) gets the request again without them, and so do the
worker's later requests.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from collector.http.client import Streamed, stream
from collector.http.probe import auth_headers, describe, tokenizer
from collector.http.prompt import fit
from collector.http.server import ServerProcess
from collector.http.target import HttpTarget, parse_target
from collector.shared.errors import ConfigError, EndpointError
from collector.shared.protocol import Init, Load, Run, Warmup
from collector.shared.record import RunRecord

__all__ = ["HttpRunner", "request_body", "record_of", "DEFAULT_CLIENT_TIMEOUT", "EXTRA_FIELDS"]

#: Seconds a server may stay silent during a request when the sweep has no ``--timeout``.
DEFAULT_CLIENT_TIMEOUT = 600.0
#: Seconds to wait for the previous server of a configuration to free the port.
PORT_FREE_WAIT = 30.0
_NAN = math.nan


#: Fields beyond the OpenAI API that a strict server may refuse (dropped after a 400 / 422 naming one).
EXTRA_FIELDS: tuple[str, ...] = ("ignore_eos", "min_tokens", "stream_options")


def request_body(target: HttpTarget, model: str, prompt: str, budget: int, seed: int,
                 extras: bool = True) -> dict[str, Any]:
    """The JSON body of one run: greedy, ``max_tokens = budget``, streamed; with ``extras`` also the usage in
    the stream and stopping disabled (:data:`EXTRA_FIELDS`)."""
    body: dict[str, Any] = {"model": model, "max_tokens": int(budget), "temperature": 0.0, "seed": int(seed),
                            "stream": True}
    if extras:
        body.update(stream_options={"include_usage": True}, ignore_eos=True, min_tokens=int(budget))
    if target.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else -1


def _seconds(timings: Mapping[str, Any], key: str) -> float:
    v = timings.get(key)
    return float(v) / 1000.0 if isinstance(v, (int, float)) and not isinstance(v, bool) else _NAN


def record_of(base: RunRecord, s: Streamed, budget: int, timing: str) -> RunRecord:
    """The record of one finished stream ``s`` (``base``: the run's factors and facts)."""
    usage = s.usage
    completion = _int(usage.get("completion_tokens"))
    tokens = completion if completion >= 0 else s.chunks
    rec = dataclasses.replace(base, tokens=tokens, server_prompt_tokens=_int(usage.get("prompt_tokens")),
                              server_completion_tokens=completion,
                              server_prefill_time=_seconds(s.timings, "prompt_ms"),
                              server_decode_time=_seconds(s.timings, "predicted_ms"))
    why = f"finish_reason {s.finish_reason!r}" if s.finish_reason else "no finish_reason"
    if tokens > budget:
        return rec.failed("error", f"more tokens than the budget: {tokens} of {budget} ({why}); the server does "
                                   "not honour max_tokens")
    if not s.arrivals:
        return rec.failed("error", f"malformed stream: usage says {tokens} tokens but no chunk carried text")
    steps: tuple[float, ...] = ()
    if timing == "stream" and s.chunks == tokens:
        steps = (s.arrivals[0], *(b - a for a, b in zip(s.arrivals, s.arrivals[1:])))
    rec = dataclasses.replace(rec, latency=s.end, prefill_time=s.arrivals[0], decode_time=s.end - s.arrivals[0],
                              step_times=steps)
    if tokens < budget:  # measured, but for fewer tokens than the budget: kept, as status truncated
        return dataclasses.replace(rec, status="truncated", error=(
            f"truncated generation: {tokens} of {budget} tokens ({why}); the server stopped early: it does not "
            "honour ignore_eos / min_tokens (times kept for the tokens produced)"))
    return rec


def _wait_port_free(host: str, port: int, wait: float) -> None:
    """Wait until nothing accepts connections on ``host:port`` (the previous server has gone)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.1)
    raise EndpointError(f"port {port} of {host} is still taken {wait:g} s after the previous server was stopped; "
                        "something else listens there")


def _memory() -> tuple[float, float]:
    try:
        import psutil

        return float(psutil.virtual_memory().available), float(psutil.swap_memory().used)
    except (ImportError, OSError, RuntimeError):  # pragma: no cover - psutil is a dependency
        return _NAN, _NAN


class HttpRunner:
    """Device ``http`` in a sweep's worker: requests to the endpoint of ``init.http``."""

    def __init__(self, init: Init) -> None:
        if not init.http:
            raise ConfigError("device 'http' needs engine 'http' and an endpoint (--engine http --endpoint URL)")
        settings = dict(init.http)
        run_timeout = settings.pop("timeout", None)
        self.target = parse_target(settings)
        self.timing = init.protocol.timing
        self.timeout = float(run_timeout) if run_timeout else DEFAULT_CLIENT_TIMEOUT
        key = os.environ.get(self.target.api_key_env, "") if self.target.api_key_env else ""
        self.headers = auth_headers(key)
        self.server: ServerProcess | None = None
        self.info: dict[str, dict[str, str]] = {}
        self.counters: dict[str, Callable[[str], int] | None] = {}
        self.url = self.target.url("chat/completions" if self.target.api == "chat" else "completions")
        self.extras = True  # until the server refuses a field beyond the OpenAI API

    def _serve(self, values: Mapping[str, Any]) -> None:
        command = self.target.server_command(values)
        if self.server is not None and self.server.command == command and self.server.alive():
            return
        self.close()
        _wait_port_free(self.target.hostname, self.target.port, PORT_FREE_WAIT)
        self.server = ServerProcess(command, self.target.url("models"), self.headers, self.target.root + "/health")
        self.server.start(self.target.ready_timeout)

    def load(self, msg: Load) -> dict[str, Any]:
        k = msg.key
        if self.target.server_cmd:
            self._serve(k.cell._asdict())
        info = describe(self.target, self.headers)
        self.info[k.model] = info
        self.counters[k.model] = tokenizer(self.target, k.model, self.headers)
        return {"n_params": -1, "weights": "pretrained", "architecture": info["server_software"], **info,
                "tokenizer": "server /tokenize" if self.counters[k.model] is not None else "approximate (words)"}

    def warmup(self, msg: Warmup) -> None:
        for i in range(msg.n):
            self.run(Run(msg.key, msg.seed + i + 1, 0.0))

    def run(self, msg: Run) -> RunRecord:
        k = msg.key
        info = self.info.get(k.model, {})
        start = self.server.start_time if self.server is not None else _NAN
        base = RunRecord(**k.cell._asdict(), engine="http", timing=self.timing, n_params=-1, weights="pretrained",
                         architecture=info.get("server_software", ""), server_start_time=start,
                         started_at=_dt.datetime.now(_dt.timezone.utc))
        avail0, _ = _memory()
        try:
            prompt, _ = fit(k.prompt_len, msg.seed, self.counters.get(k.model))
            s = self._send(k.model, prompt, k.budget, msg.seed)
        except EndpointError as exc:
            return base.failed(exc.status, str(exc))
        avail1, swap = _memory()
        rec = dataclasses.replace(base, mem_sys_available_min=min(avail0, avail1), swap_used=swap)
        return record_of(rec, s, k.budget, self.timing)

    def _send(self, model: str, prompt: str, budget: int, seed: int) -> Streamed:
        """One request; once more without :data:`EXTRA_FIELDS` (and from then on) when the server refuses one."""
        try:
            return stream(self.url, request_body(self.target, model, prompt, budget, seed, self.extras),
                          headers=self.headers, timeout=self.timeout)
        except EndpointError as exc:
            text = str(exc)
            refused = text.startswith(("HTTP 400", "HTTP 422")) and any(f in text for f in EXTRA_FIELDS)
            if not (self.extras and refused):
                raise
            self.extras = False
            return stream(self.url, request_body(self.target, model, prompt, budget, seed, False),
                          headers=self.headers, timeout=self.timeout)

    def close(self) -> None:
        """Stop the server this runner started, if any."""
        if self.server is not None:
            self.server.stop()
            self.server = None
