"""One streamed request to an OpenAI-compatible endpoint, timed by the client (stdlib only).

:func:`stream` sends one ``POST`` (``/completions`` or ``/chat/completions``
with ``"stream": true``) on a fresh connection and reads the server-sent
events as they arrive, taking a ``time.perf_counter`` reading when each chunk
that carries text arrives. What it returns (:class:`Streamed`) is what the
client saw: the time to the first token, every later arrival, the end of the
stream, the ``finish_reason``, and the server's own ``usage`` and ``timings``
fields where it sends them.

Every way a request can go wrong becomes :class:`collector.shared.errors.EndpointError`
with one line that says what happened (status ``timeout`` when the server sent
nothing for ``timeout`` seconds, else ``error``): a refused connection, an
HTTP error status, a body that is not an event stream, an event that is not
JSON or not a completion chunk, an ``error`` object in the stream, a
connection closed before the stream ended. :func:`get_json` is the small GET
used to ask a server about itself.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.shared.errors import EndpointError

__all__ = ["Streamed", "stream", "get_json", "post_json", "chunk_text", "get_status", "ready"]

_MAX_QUOTE = 120


@dataclass(frozen=True)
class Streamed:
    """What the client saw of one streamed generation (seconds from the moment the request was sent).

    Attributes
    ----------
    arrivals
        Arrival time of each chunk that carried text (the first is the time to first token).
    end
        When the stream ended (``[DONE]``, or the connection closed after a ``finish_reason``).
    finish_reason
        The last ``finish_reason`` sent ("" when none).
    usage
        The server's ``usage`` object (``prompt_tokens``, ``completion_tokens``), empty when not sent.
    timings
        The server's own timing fields (llama.cpp's ``timings``: ``prompt_ms``, ``predicted_ms``...), empty
        when not sent.
    server
        The ``Server`` response header ("" when absent).
    """

    arrivals: tuple[float, ...]
    end: float
    finish_reason: str = ""
    usage: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, Any] = field(default_factory=dict)
    server: str = ""

    @property
    def chunks(self) -> int:
        """Chunks that carried text."""
        return len(self.arrivals)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "...")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    u = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    path = u.path or "/"
    return cls(u.hostname or "", u.port, timeout=timeout), path


def _where(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}{u.path}"


def _open(url: str, method: str, body: bytes | None, headers: Mapping[str, str],
          timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn, path = _connection(url, timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        return conn, conn.getresponse()
    except ConnectionRefusedError:
        conn.close()
        raise EndpointError(f"connection refused by {_where(url)} (is the server running?)") from None
    except (socket.timeout, TimeoutError):
        conn.close()
        raise EndpointError(f"no answer from {_where(url)} within {timeout:g} s", "timeout") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise EndpointError(f"request to {_where(url)} failed: {type(exc).__name__}: {exc}") from None


def _error_text(raw: str) -> str:
    """The message of an error body: OpenAI's ``error.message``, FastAPI's ``detail``, else the text itself."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(body, dict):
        err = body.get("error", body.get("detail"))
        if isinstance(err, dict) and err.get("message") is not None:
            return str(err["message"])
        if err is not None:
            return err if isinstance(err, str) else json.dumps(err)
    return raw


def _http_error(url: str, resp: http.client.HTTPResponse) -> EndpointError:
    try:
        text = _error_text(resp.read(2000).decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException):
        text = ""
    return EndpointError(f"HTTP {resp.status} {resp.reason} from {_where(url)}" + (f": {_quote(text)}" if text else ""))


def get_json(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[Any, str]:
    """GET ``url`` and return its JSON body and the ``Server`` header.

    Raises
    ------
    EndpointError
        Refused, timed out, an HTTP error status, or a body that is not JSON.
    """
    conn, resp = _open(url, "GET", None, headers or {}, timeout)
    try:
        if resp.status != 200:
            raise _http_error(url, resp)
        raw = resp.read()
        try:
            return json.loads(raw), str(resp.getheader("Server") or "")
        except ValueError:
            raise EndpointError(f"{_where(url)} did not answer JSON: {_quote(raw.decode('utf-8', 'replace'))}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise EndpointError(f"reading {_where(url)} failed: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def get_status(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url`` and return its HTTP status and ``Server`` header, whatever the body.

    Raises
    ------
    EndpointError
        Refused, timed out, or the connection broke.
    """
    conn, resp = _open(url, "GET", None, headers or {}, timeout)
    try:
        resp.read(4096)
        return int(resp.status), str(resp.getheader("Server") or "")
    except (OSError, http.client.HTTPException) as exc:
        raise EndpointError(f"reading {_where(url)} failed: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def ready(models_url: str, health_url: str, *, headers: Mapping[str, str] | None = None,
          timeout: float = 5.0) -> str:
    """Whether a server is ready: ``GET {endpoint}/models`` answers 200, or (a server without that route, such as
    LitServe's ``OpenAISpec``: 404 / 405) ``GET {root}/health`` answers 200. Returns the route that answered.

    Raises
    ------
    EndpointError
        Neither answered 200 (the first's error, or the health route's status), or the server is not there.
    """
    try:
        get_json(models_url, headers=headers, timeout=timeout)
        return models_url
    except EndpointError as exc:
        if not str(exc).startswith(("HTTP 404", "HTTP 405")):
            raise
        first = str(exc)
    status, _ = get_status(health_url, headers=headers, timeout=timeout)
    if status != 200:
        raise EndpointError(f"{first}; and {_where(health_url)} answered HTTP {status} (not ready)")
    return health_url


def post_json(url: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None,
              timeout: float = 5.0) -> Any:
    """POST ``body`` as JSON to ``url`` and return the JSON answer (no stream); :class:`EndpointError` otherwise."""
    conn, resp = _open(url, "POST", json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})},
                       timeout)
    try:
        if resp.status != 200:
            raise _http_error(url, resp)
        try:
            return json.loads(resp.read())
        except ValueError:
            raise EndpointError(f"{_where(url)} did not answer JSON") from None
    except (OSError, http.client.HTTPException) as exc:
        raise EndpointError(f"reading {_where(url)} failed: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def chunk_text(chunk: Any, n: int) -> tuple[str | None, str | None]:
    """The text and ``finish_reason`` of one completion chunk (``choices[0].text`` or ``.delta.content``).

    Raises
    ------
    EndpointError
        The chunk is not a completion chunk, or it carries an ``error`` object (``n``: its place in the stream).
    """
    if not isinstance(chunk, dict):
        raise EndpointError(f"malformed stream: event {n} is {_quote(json.dumps(chunk))}, not a JSON object")
    if "error" in chunk:
        err = chunk["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise EndpointError(f"the server sent an error in the stream at event {n}: {_quote(str(msg))}")
    choices = chunk.get("choices")
    if choices is None and "usage" in chunk:
        return None, None
    if not isinstance(choices, list):
        raise EndpointError(f"malformed stream: event {n} has no 'choices' list: {_quote(json.dumps(chunk))}")
    if not choices:
        return None, None
    c = choices[0]
    if not isinstance(c, dict):
        raise EndpointError(f"malformed stream: event {n} has choice {_quote(json.dumps(c))}")
    text = c.get("text")
    if text is None and isinstance(c.get("delta"), dict):
        text = c["delta"].get("content")
    if text is not None and not isinstance(text, str):
        raise EndpointError(f"malformed stream: event {n} has text {_quote(json.dumps(text))}, not a string")
    reason = c.get("finish_reason")
    return text, (str(reason) if reason else None)


class _Reader:
    """The events of one response, with the arrival time of each chunk that carries text."""

    def __init__(self, resp: http.client.HTTPResponse, t0: float, url: str, timeout: float) -> None:
        self.resp, self.t0, self.url, self.timeout = resp, t0, url, timeout
        self.arrivals: list[float] = []
        self.finish = ""
        self.usage: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self.events = 0

    def _line(self) -> bytes:
        try:
            return self.resp.readline()
        except (socket.timeout, TimeoutError):
            raise EndpointError(f"no data from {_where(self.url)} for {self.timeout:g} s after "
                                f"{len(self.arrivals)} tokens", "timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointError(f"the connection broke after {len(self.arrivals)} tokens "
                                f"({type(exc).__name__}: {exc})") from None

    def read(self) -> float:
        """Read to the end of the stream; the end time (seconds from the request)."""
        while True:
            raw = self._line()
            if not raw:
                if self.finish:  # closed after the last chunk, without [DONE]: the generation is whole
                    return time.perf_counter() - self.t0
                raise EndpointError(f"malformed stream: the connection closed after {len(self.arrivals)} tokens "
                                    "without [DONE] or a finish_reason")
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith(":") or not line.startswith("data:"):
                continue  # blank separators, comments, event: / id: / retry: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return time.perf_counter() - self.t0
            self.events += 1
            try:
                chunk = json.loads(data)
            except ValueError:
                raise EndpointError(f"malformed stream: event {self.events} is not JSON: {_quote(data)}") from None
            text, reason = chunk_text(chunk, self.events)
            if text:
                self.arrivals.append(time.perf_counter() - self.t0)
            if reason:
                self.finish = reason
            if isinstance(chunk.get("usage"), dict):
                self.usage = dict(chunk["usage"])
            if isinstance(chunk.get("timings"), dict):
                self.timings = dict(chunk["timings"])


def stream(url: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None,
           timeout: float = 600.0) -> Streamed:
    """Send one streamed request and read it to the end.

    Parameters
    ----------
    url
        The route (``{endpoint}/completions`` or ``{endpoint}/chat/completions``).
    body
        The JSON body (``"stream": true`` in it).
    headers
        Extra headers (``Authorization``).
    timeout
        Seconds the server may stay silent (connecting, or between two lines of the stream).

    Raises
    ------
    EndpointError
        With status ``timeout`` or ``error`` and one line saying what went wrong.
    """
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream", **(headers or {})}
    t0 = time.perf_counter()
    conn, resp = _open(url, "POST", data, hdrs, timeout)
    try:
        if resp.status != 200:
            raise _http_error(url, resp)
        ctype = str(resp.getheader("Content-Type") or "")
        if "event-stream" not in ctype:
            text = resp.read(600).decode("utf-8", "replace")
            raise EndpointError(f"malformed stream: {_where(url)} answered {ctype or 'no content type'!r}, not "
                                f"text/event-stream: {_quote(text)}")
        reader = _Reader(resp, t0, url, timeout)
        end = reader.read()
        return Streamed(arrivals=tuple(reader.arrivals), end=end, finish_reason=reader.finish, usage=reader.usage,
                        timings=reader.timings, server=str(resp.getheader("Server") or ""))
    finally:
        conn.close()
