"""collector.http.client against small in-process servers speaking the ways real ones do: HTTP/1.1 chunked
events (uvicorn, llama.cpp), a stream that closes after its finish_reason without [DONE], and the ways a
stream goes wrong (each one line)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collector.http.client import get_json, stream
from collector.shared.errors import EndpointError

Writer = Callable[[BaseHTTPRequestHandler], None]


def _event(text: str | None, finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({"choices": [{"text": text or "", "finish_reason": finish}]}).encode() + b"\n\n"


@pytest.fixture
def serve() -> Iterator[Callable[[Writer], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(write: Writer) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                write(self)

            do_GET = do_POST

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}/v1/completions"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _chunked(events: list[bytes], gap: float = 0.0, end: bool = True) -> Writer:
    def write(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for e in events:
            time.sleep(gap)
            h.wfile.write(f"{len(e):x}\r\n".encode() + e + b"\r\n")
            h.wfile.flush()
        if end:
            h.wfile.write(b"0\r\n\r\n")
        h.close_connection = True

    return write


def test_chunked_events_are_timed_as_they_arrive(serve: Callable[[Writer], str]) -> None:
    events = [_event(f" t{i}") for i in range(4)] + [_event(None, "length"), b"data: [DONE]\n\n"]
    s = stream(serve(_chunked(events, gap=0.05)), {"stream": True}, timeout=5)
    assert s.chunks == 4 and s.finish_reason == "length"
    gaps = [b - a for a, b in zip(s.arrivals, s.arrivals[1:])]
    assert all(0.04 < g < 0.5 for g in gaps) and s.arrivals[0] > 0.04  # each event timed on its own arrival
    assert s.end >= s.arrivals[-1]


def test_a_stream_that_closes_after_its_finish_reason_is_whole(serve: Callable[[Writer], str]) -> None:
    s = stream(serve(_chunked([_event(" a"), _event(" b", "length")])), {"stream": True}, timeout=5)
    assert s.chunks == 2 and s.finish_reason == "length"


def test_a_stream_cut_before_its_end_is_malformed(serve: Callable[[Writer], str]) -> None:
    with pytest.raises(EndpointError, match="closed after 2 tokens without \\[DONE\\] or a finish_reason"):
        stream(serve(_chunked([_event(" a"), _event(" b")])), {"stream": True}, timeout=5)


def test_an_answer_that_is_not_a_stream_is_malformed(serve: Callable[[Writer], str]) -> None:
    def write(h: BaseHTTPRequestHandler) -> None:
        body = b'{"choices": [{"text": "whole"}]}'
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with pytest.raises(EndpointError, match="answered 'application/json', not text/event-stream"):
        stream(serve(write), {"stream": True}, timeout=5)


def test_an_http_error_quotes_the_start_of_its_body(serve: Callable[[Writer], str]) -> None:
    def write(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"error": {"message": "model 'x' not found\nsecond line"}}).encode()
        h.send_response(404)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    url = serve(write)
    with pytest.raises(EndpointError) as info:
        stream(url, {"stream": True}, timeout=5)
    assert str(info.value) == f"HTTP 404 Not Found from {url}: \"model 'x' not found second line\""
    assert "\n" not in str(info.value) and info.value.status == "error"
    with pytest.raises(EndpointError, match="HTTP 404"):
        get_json(url)


def test_a_silent_server_is_a_timeout(serve: Callable[[Writer], str]) -> None:
    with pytest.raises(EndpointError) as info:
        stream(serve(_chunked([_event(" a"), _event(" b")], gap=1.0, end=False)), {"stream": True}, timeout=0.3)
    assert info.value.status == "timeout" and "for 0.3 s after 0 tokens" in str(info.value)
