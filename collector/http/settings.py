"""The sweep settings of engine ``http``, checked up front (torch-free).

:func:`http_defaults` fills what an ``--engine http`` sweep means when the user
does not say (device ``http``, the cache on, timing ``stream``);
:func:`check_http` then checks the whole spec's settings together and returns
the :class:`~collector.http.target.HttpTarget`; :func:`check_reachable` asks the
endpoint before a sweep starts (``check_runnable``).

The factors a client cannot control are fixed, and said once in the dataset
(attr ``not_controlled``): the server keeps its own KV cache (``cache`` is on,
``cache_impl`` its default), picks its own attention kernels (``attn``
``default``) and runs its own dtype (``dtype`` is a label with one value), and
computes on its own device (``device`` is ``http``). Only a ``--server-cmd``
that passes ``{dtype}`` to the server makes ``dtype`` a factor the sweep varies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from collector.http.target import HTTP_KEYS, HttpTarget, parse_target
from collector.shared.errors import ConfigError, EndpointError

__all__ = ["DEVICE", "TIMINGS", "NOT_CONTROLLED", "NOT_CONTROLLED_BUT_DTYPE", "http_defaults", "check_http",
           "check_reachable", "split_settings"]

#: The device of an http sweep.
DEVICE = "http"
#: Timing modes of engine http.
TIMINGS: tuple[str, ...] = ("stream", "ends")
#: What the client cannot control, said once in the dataset (attr ``not_controlled``).
NOT_CONTROLLED = ("device, dtype, attn, cache and cache_impl are the server's own: device 'http' stands for whatever "
                  "the server computes on, the server keeps its own KV cache (cache on), attention kernels and dtype "
                  "(dtype is a label); these coordinates are placeholders with one value each")
#: The same where the server command passes ``{dtype}`` (dtype is then a real factor).
NOT_CONTROLLED_BUT_DTYPE = ("device, attn, cache and cache_impl are the server's own: device 'http' stands for "
                            "whatever the server computes on, the server keeps its own KV cache (cache on) and "
                            "attention kernels; these coordinates are placeholders with one value each (dtype is "
                            "passed to each server by --server-cmd)")
#: Placeholders of a server command that change within a series: they need a fresh server per cell.
_CELL_PLACEHOLDERS = ("budget", "prompt_len")
#: Placeholders of the model-load key: with several values they need a fresh server per model at least.
_MODEL_PLACEHOLDERS = ("model", "dtype", "attn", "device")


def split_settings(merged: Mapping[str, Any]) -> dict[str, Any]:
    """The ``http`` table of canonical settings: a TOML ``[http]`` table and the flat keys (flags) over it."""
    table = merged.get("http") or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"http must be a table of endpoint settings, got {table!r}")
    out = dict(table)
    for flat, name in HTTP_KEYS.items():
        if merged.get(flat) is not None:
            out[name] = merged[flat]
    return out


def http_defaults(merged: dict[str, Any]) -> None:
    """Fill the defaults of an ``engine = http`` sweep in canonical settings (in place): device http, the
    cache on, timing stream (each only where not given).

    Raises
    ------
    ConfigError
        No models given (there is no default model of a server).
    """
    if merged.get("engine") != "http":
        return
    if merged.get("models") is None:
        raise ConfigError("engine http needs --models: the names the server serves (GET {endpoint}/models lists "
                          "them), e.g. --models llama3.2:1b")
    merged.setdefault("devices", DEVICE)
    merged.setdefault("caches", "on")
    merged.setdefault("timing", "stream")


def _one(grid: Mapping[str, tuple[Any, ...]], name: str, flag: str, allowed: tuple[Any, ...] | None, why: str) -> None:
    values = tuple(grid[name])
    if len(values) != 1 or (allowed is not None and values[0] not in allowed):
        shown = [("on" if v else "off") if isinstance(v, bool) else v for v in values]
        raise ConfigError(f"{flag} {' '.join(map(str, shown))!r} cannot be swept with engine http: {why}")


def check_http(merged: Mapping[str, Any], grid: Mapping[str, tuple[Any, ...]], engine: str, timing: str,
               isolation: str) -> HttpTarget | None:
    """The endpoint of an ``engine = http`` sweep, its settings checked together; None for other engines.

    Raises
    ------
    ConfigError
        Endpoint settings without engine http (or the reverse), device ``http`` with another engine, a
        factor the server controls swept, a timing the engine has not, a server command whose placeholders
        change within a process.
    """
    table = split_settings(merged)
    devices = tuple(grid["device"])
    if engine != "http":
        if table:
            raise ConfigError(f"endpoint settings ({', '.join(sorted(table))}) need --engine http, got engine {engine!r}")
        if DEVICE in devices:
            raise ConfigError(f"device 'http' is measured through an endpoint: give --engine http --endpoint URL "
                              f"(got engine {engine!r})")
        if timing == "stream":
            raise ConfigError(f"timing 'stream' (the arrival of streamed tokens) is engine http's; engine {engine!r} "
                              "has step, events, ends")
        return None
    target = parse_target(table)
    if devices != (DEVICE,):
        raise ConfigError(f"devices {list(devices)!r} with engine http: the client sees only the endpoint, so the "
                          "device is 'http' (what the server computes on is its own business); leave --devices out")
    if timing not in TIMINGS:
        raise ConfigError(f"timing {timing!r} with engine http; choices: {', '.join(TIMINGS)} (stream: the arrival "
                          "of every token)")
    _one(grid, "cache", "--cache", (True,), "the server keeps its own KV cache; the client cannot turn it off "
         "(leave --cache out)")
    _one(grid, "cache_impl", "--cache-impl", ("dynamic",), "the server chooses its own KV cache")
    _one(grid, "attn", "--attn", ("default",), "the server chooses its own attention kernels")
    if "{dtype}" not in target.server_cmd:  # a server command that takes {dtype} makes it a real factor
        _one(grid, "dtype", "--dtypes", None, "the server runs its own dtype (one value, a label; several only "
             "with a --server-cmd that passes {dtype} to the server)")
    used = [p for p in _CELL_PLACEHOLDERS if "{" + p + "}" in target.server_cmd]
    if used and isolation not in ("cell", "run"):
        raise ConfigError(f"--server-cmd uses {', '.join('{' + p + '}' for p in used)}, which change within a "
                          f"series: give --isolation cell (a fresh server per configuration) or run; got "
                          f"{isolation!r}")
    varied = [p for p in _MODEL_PLACEHOLDERS if "{" + p + "}" in target.server_cmd and len(grid[p]) > 1]
    if varied and isolation == "none":
        raise ConfigError(f"--server-cmd uses {', '.join('{' + p + '}' for p in varied)}, which takes several values "
                          "while --isolation none runs them interleaved in one process: give --isolation model (a "
                          "fresh server per model), cell or run")
    return target


def check_reachable(target: HttpTarget) -> None:
    """Before a sweep: the key's environment variable is set, and (without ``--server-cmd``) the endpoint answers.

    Raises
    ------
    ConfigError
        The variable named by ``api_key_env`` is not set.
    EndpointError
        ``GET {endpoint}/models`` failed (refused, timed out, an HTTP error).
    """
    if target.api_key_env and not os.environ.get(target.api_key_env):
        raise ConfigError(f"environment variable {target.api_key_env!r} (--api-key-env) is not set; export the "
                          "server's API key in it")
    if target.server_cmd:
        return  # the sweep starts the server
    from collector.http.client import ready
    from collector.http.probe import auth_headers

    key = os.environ.get(target.api_key_env, "") if target.api_key_env else ""
    try:
        ready(target.url("models"), target.root + "/health", headers=auth_headers(key), timeout=10.0)
    except EndpointError as exc:
        raise EndpointError(f"endpoint {target.host} is not usable: {exc}; start the server first, or give "
                            "--server-cmd to have the sweep start it") from None
