"""A small real OpenAI-compatible server for the tests of engine http (stdlib http.server + transformers).

``python tests/http_server.py --port PORT [--regime LO:HI:FACTOR] [--step-sleep S] [--malformed B]
[--truncate B:N] [--hang B] [--model NAME] [--api-key KEY] [--threads N]`` serves the tiny random-weight
preset (``tiny-gpt2``) on 127.0.0.1 (``--threads``: torch threads, default 1):

* ``GET /v1/models`` (owned_by ``decode-regimes-test``), ``GET /version``, ``POST /tokenize``
  (llama.cpp style: ``content`` -> ``tokens``; one token per whitespace-separated word);
* ``POST /v1/completions`` and ``/v1/chat/completions`` with ``"stream": true``: greedy decoding of exactly
  ``max_tokens`` tokens through the model with its KV cache, one server-sent event per token, then a
  ``finish_reason`` chunk, a ``usage`` chunk and ``[DONE]``.

Every decode step also sleeps ``--step-sleep`` seconds, ``FACTOR`` times that for budgets (``max_tokens``) in
``LO..HI``: a planted regime. ``--malformed B``: a request of budget B gets a stream that breaks (an event
that is not JSON) after two tokens. ``--truncate B:N`` (or ``LO:HI:N``, or ``LO:HI:N:SHARE``; repeatable): a
request of budget B (in ``LO..HI``) stops after N tokens (``finish_reason`` ``stop``), as a server that ignores
``ignore_eos`` does at an end-of-sequence token; with ``SHARE`` only that share of the requests does, chosen by
a hash of the prompt (each run draws its own prompt). ``--hang B``: a request of budget B stops
sending for a minute after two tokens. ``--strict``: a request with ``ignore_eos``,
``min_tokens`` or ``stream_options`` is answered 400, as OpenAI's own API does. ``--api-key KEY``: a POST
without ``Authorization: Bearer KEY`` is answered 401. ``--no-models-route``: ``GET /v1/models`` is answered 404
and ``GET /health`` 200, as LitServe's ``OpenAISpec`` does.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from collector.measuring.measurement import load_model  # noqa: E402


class _Model:
    def __init__(self, name: str) -> None:
        self.loaded = load_model(model="tiny-gpt2", device="cpu", seed=0)
        self.module = self.loaded.module
        self.vocab = int(self.module.config.vocab_size)
        self.name = name
        self.lock = threading.Lock()

    def ids(self, text: str) -> list[int]:
        return [zlib.crc32(w.encode()) % self.vocab for w in text.split()]


class _Handler(BaseHTTPRequestHandler):
    server_version = "decode-regimes-test/1.0"
    model: _Model
    opts: argparse.Namespace

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.opts.no_models_route and self.path == "/health":  # as LitServe's OpenAISpec: /health, no /v1/models
            self._json({"status": "ok"})
        elif self.path == "/v1/models" and not self.opts.no_models_route:
            self._json({"object": "list", "data": [{"id": self.model.name, "object": "model",
                                                    "owned_by": "decode-regimes-test"}]})
        elif self.path == "/version":
            self._json({"version": "1.0-test"})
        else:
            self._json({"error": {"message": f"no route {self.path}"}}, 404)

    def do_POST(self) -> None:
        if self.opts.api_key and self.headers.get("Authorization") != f"Bearer {self.opts.api_key}":
            self._json({"error": {"message": "invalid API key"}}, 401)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.opts.strict and any(k in body for k in ("ignore_eos", "min_tokens", "stream_options")):
            self._json({"error": {"message": "Unrecognized request argument supplied: ignore_eos"}}, 400)
            return
        if self.path == "/tokenize":
            self._json({"tokens": self.model.ids(str(body.get("content", "")))})
        elif self.path in ("/v1/completions", "/v1/chat/completions"):
            self._generate(body, chat=self.path.endswith("chat/completions"))
        else:
            self._json({"error": {"message": f"no route {self.path}"}}, 404)

    def _event(self, obj: Any) -> None:
        self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

    def _chunk(self, text: str | None, finish: str | None, chat: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["delta"] = {"content": text} if text is not None else {}
        else:
            choice["text"] = text or ""
        return {"id": "cmpl-test", "object": "text_completion", "model": self.model.name, "choices": [choice]}

    def _generate(self, body: dict[str, Any], chat: bool) -> None:
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        budget = int(body["max_tokens"])
        opts = self.opts
        lo, hi, factor = opts.regime
        sleep = opts.step_sleep * (factor if lo <= budget <= hi else 1.0)
        stop_at = budget
        for t_lo, t_hi, t_n, share in opts.truncate:
            if t_lo <= budget <= t_hi and zlib.crc32(prompt.encode()) % 1000 < share * 1000:
                stop_at = min(stop_at, t_n)
        ids = torch.tensor([self.model.ids(prompt) or [0]])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with self.model.lock, torch.inference_mode():
            out = self.model.module(input_ids=ids, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            for i in range(stop_at):
                if i > 0:
                    out = self.model.module(input_ids=tok, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
                    time.sleep(sleep)
                if opts.hang == budget and i == 2:
                    time.sleep(60)
                if opts.malformed == budget and i == 2:
                    self._event(b"{this is not json")
                    return
                self._event(self._chunk(f" t{int(tok)}", None, chat))
        self._event(self._chunk(None, "length" if stop_at == budget else "stop", chat))
        self._event({"id": "cmpl-test", "choices": [], "usage": {"prompt_tokens": int(ids.shape[1]),
                     "completion_tokens": stop_at, "total_tokens": int(ids.shape[1]) + stop_at}})
        self._event(b"[DONE]")


def _truncate(text: str) -> tuple[int, int, int, float]:
    parts = text.split(":")
    if len(parts) == 2:
        return int(parts[0]), int(parts[0]), int(parts[1]), 1.0
    return int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3]) if len(parts) > 3 else 1.0


def _regime(text: str) -> tuple[int, int, float]:
    a, b, c = text.split(":")
    return int(a), int(b), float(c)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model", default="tiny-gpt2")
    p.add_argument("--regime", type=_regime, default=(0, -1, 1.0))
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--malformed", type=int, default=-1)
    p.add_argument("--truncate", type=_truncate, action="append", default=[])
    p.add_argument("--hang", type=int, default=-1)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the model (default: 1)")
    p.add_argument("--api-key", default="")
    p.add_argument("--strict", action="store_true", help="answer 400 to fields beyond the OpenAI API")
    p.add_argument("--no-models-route", action="store_true", help="404 on /v1/models, 200 on /health (as LitServe)")
    opts = p.parse_args()
    torch.set_num_threads(max(1, opts.threads))
    _Handler.model = _Model(opts.model)
    _Handler.opts = opts
    ThreadingHTTPServer.allow_reuse_address = True
    with ThreadingHTTPServer((opts.host, opts.port), _Handler) as httpd:
        httpd.serve_forever()


if __name__ == "__main__":
    main()
