"""Where an ``--engine http`` sweep sends its requests, checked up front (torch-free, stdlib only).

An :class:`HttpTarget` is the ``http`` part of a sweep spec: the endpoint's
base URL (``http://host:port/v1``), which API (``completions`` or ``chat``),
the *name* of the environment variable that holds the API key (never the key),
an optional server command template started fresh per configuration, and how
long such a server may take to become ready. It is immutable and JSON-able.

A URL with a user name, a password, a query or a fragment is refused: keys go
in an environment variable (``--api-key-env``), so that neither the journal,
the dataset's ``sweep`` and ``command`` attrs nor a log ever hold one. The
dataset records only :attr:`HttpTarget.host` (scheme, host and port).
"""

from __future__ import annotations

import string
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collector.shared.errors import ConfigError

__all__ = [
    "APIS",
    "HTTP_KEYS",
    "PLACEHOLDERS",
    "DEFAULT_READY_TIMEOUT",
    "HttpTarget",
    "parse_target",
]

#: The OpenAI-compatible APIs a run can use.
APIS: tuple[str, ...] = ("completions", "chat")
#: Placeholders a ``--server-cmd`` template may use (the run's factors and the endpoint's host and port).
PLACEHOLDERS: tuple[str, ...] = ("model", "dtype", "attn", "cache", "cache_impl", "prompt_len", "budget", "device",
                                 "host", "port")
#: Seconds a server started by ``--server-cmd`` may take to answer ``GET /v1/models``.
DEFAULT_READY_TIMEOUT = 300.0
#: Flat sweep settings (flags, TOML keys) that make up the ``http`` table, by the table's field names.
HTTP_KEYS: dict[str, str] = {"endpoint": "endpoint", "api": "api", "api_key_env": "api_key_env",
                             "server_cmd": "server_cmd", "server_ready_timeout": "ready_timeout"}


@dataclass(frozen=True)
class HttpTarget:
    """An OpenAI-compatible endpoint and how to reach it.

    Attributes
    ----------
    endpoint
        Base URL of the API, up to and including ``/v1`` (``http://127.0.0.1:8080/v1``); requests go to
        ``{endpoint}/completions`` or ``{endpoint}/chat/completions``.
    api
        ``completions`` (the prompt as text) or ``chat`` (the prompt as one user message; the server's
        chat template adds tokens).
    api_key_env
        Name of the environment variable that holds the API key (sent as ``Authorization: Bearer``), or "".
    server_cmd
        Shell command template that starts a fresh server (placeholders :data:`PLACEHOLDERS`), or "".
    ready_timeout
        Seconds such a server may take to answer ``GET {endpoint}/models``.
    """

    endpoint: str
    api: str = "completions"
    api_key_env: str = ""
    server_cmd: str = ""
    ready_timeout: float = DEFAULT_READY_TIMEOUT

    @property
    def host(self) -> str:
        """Scheme, host and port of the endpoint (``http://127.0.0.1:8080``): all a dataset records of it."""
        u = urllib.parse.urlsplit(self.endpoint)
        return f"{u.scheme}://{u.netloc}"

    @property
    def hostname(self) -> str:
        """The endpoint's host name or address."""
        return urllib.parse.urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        """The endpoint's port (80 / 443 by scheme when the URL names none)."""
        u = urllib.parse.urlsplit(self.endpoint)
        return int(u.port or (443 if u.scheme == "https" else 80))

    @property
    def root(self) -> str:
        """The endpoint without its trailing ``/v1`` (where servers put ``/tokenize``, ``/version``, ``/props``)."""
        base = self.endpoint.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def url(self, path: str) -> str:
        """``{endpoint}/{path}``."""
        return self.endpoint.rstrip("/") + "/" + path.lstrip("/")

    def server_command(self, values: Mapping[str, Any]) -> str:
        """The server command of one configuration: the template with ``values`` (factor values) filled in.

        Booleans are written ``on`` / ``off``; ``host`` and ``port`` come from the endpoint.
        """
        filled = {k: ("on" if v else "off") if isinstance(v, bool) else v for k, v in values.items()}
        filled.update(host=self.hostname, port=self.port)
        return self.server_cmd.format_map({k: filled.get(k, "") for k in PLACEHOLDERS})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: :func:`parse_target`)."""
        return {"endpoint": self.endpoint, "api": self.api, "api_key_env": self.api_key_env,
                "server_cmd": self.server_cmd, "ready_timeout": self.ready_timeout}


def _endpoint(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"endpoint must be a URL such as 'http://127.0.0.1:8080/v1', got {value!r}")
    text = value.strip()
    try:
        u = urllib.parse.urlsplit(text)
        port = u.port
    except ValueError as exc:
        raise ConfigError(f"endpoint {value!r} is not a URL ({exc}); e.g. 'http://127.0.0.1:8080/v1'") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"endpoint {value!r} must start with http:// or https:// and name a host, e.g. "
                          "'http://127.0.0.1:8080/v1'")
    if u.username is not None or u.password is not None:
        raise ConfigError(f"endpoint {u.scheme + '://' + (u.hostname or '') + '/...'!r} holds a user name or password; "
                          "put the key in an environment variable and name it with --api-key-env (a dataset must "
                          "never hold a key)")
    if u.query or u.fragment:
        raise ConfigError(f"endpoint {u.scheme + '://' + u.netloc + u.path!r} has a query or fragment ('?...' / '#...'); "
                          "give the base URL only (a key goes in an environment variable: --api-key-env)")
    if port == 0:
        raise ConfigError(f"endpoint {value!r} has port 0; give the server's port")
    path = u.path.rstrip("/")
    if path.endswith("/completions"):
        raise ConfigError(f"endpoint {value!r} names the completions route; give the base URL up to /v1 "
                          f"(e.g. {u.scheme + '://' + u.netloc + '/v1'!r}): --api picks the route")
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path or "/v1", "", ""))


def _template(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"server_cmd must be a shell command template, got {value!r}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"server_cmd {value!r} is not a valid template ({exc}); write a literal brace as "
                          "'{{' or '}}'") from None
    for f in fields:
        if f not in PLACEHOLDERS:
            raise ConfigError(f"server_cmd placeholder {'{' + f + '}'!r} is unknown; choices: "
                              + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    return value


def parse_target(value: Mapping[str, Any]) -> HttpTarget:
    """An :class:`HttpTarget` from a mapping of its fields (a TOML ``[http]`` table, flags, a stored spec).

    Raises
    ------
    ConfigError
        Quoting the bad value and saying what is expected.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(f"http must be a table of endpoint settings, got {value!r}")
    known = ("endpoint", "api", "api_key_env", "server_cmd", "ready_timeout")
    for k in value:
        if k not in known:
            raise ConfigError(f"unknown http setting {k!r}; choices: {', '.join(known)}")
    if "endpoint" not in value:
        raise ConfigError("engine 'http' needs an endpoint: --endpoint URL (e.g. http://127.0.0.1:8080/v1)")
    api = value.get("api") or "completions"
    if api not in APIS:
        raise ConfigError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    key_env = value.get("api_key_env") or ""
    if not isinstance(key_env, str) or (key_env and not key_env.replace("_", "a").isalnum()):
        raise ConfigError(f"api_key_env must name an environment variable (letters, digits, _), got {key_env!r}; "
                          "give the variable's name, not the key")
    ready = value.get("ready_timeout", DEFAULT_READY_TIMEOUT)
    try:
        ready_s = float(ready)
    except (TypeError, ValueError):
        raise ConfigError(f"server_ready_timeout must be a number of seconds, got {ready!r}") from None
    if not ready_s > 0 or ready_s == float("inf"):
        raise ConfigError(f"server_ready_timeout must be a positive number of seconds, got {ready!r}")
    return HttpTarget(endpoint=_endpoint(value["endpoint"]), api=str(api), api_key_env=key_env,
                      server_cmd=_template(value.get("server_cmd")), ready_timeout=ready_s)
