"""What a server says about itself: software, version, the models it serves, a tokenizer (stdlib only).

:func:`describe` asks ``GET {endpoint}/models`` (OpenAI: each model's
``owned_by``, e.g. ``vllm``, ``llamacpp``; a server without the route, such as
LitServe's ``OpenAISpec``, must answer ``GET /health``) and the ``Server``
header, then LitServe's ``/info`` and the version routes the common servers
have (vLLM ``/version``, Ollama ``/api/version``, llama.cpp ``/props``), each
answer optional.
:func:`tokenizer` finds a ``/tokenize`` route (llama.cpp: ``content``; vLLM:
``model`` + ``prompt``) and returns a text -> token count function, or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from collector.http.client import get_json, get_status, post_json, ready
from collector.http.target import HttpTarget
from collector.shared.errors import EndpointError

__all__ = ["describe", "tokenizer", "auth_headers"]

_GENERIC_OWNERS = {"", "openai", "system", "user", "organization", "organization-owner", "organization_owner", "library",
                   "me"}


def auth_headers(key: str) -> dict[str, str]:
    """``Authorization: Bearer KEY`` (empty without a key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def describe(target: HttpTarget, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's ``server_software``, ``server_version``, ``server_header`` and ``served_models``.

    Raises
    ------
    EndpointError
        ``GET {endpoint}/models`` failed (the server is not there, or not OpenAI-compatible).
    """
    try:
        models, header = get_json(target.url("models"), headers=headers, timeout=10.0)
    except EndpointError as exc:  # a server without the route (LitServe's OpenAISpec): its health route answers
        if not str(exc).startswith(("HTTP 404", "HTTP 405")):
            raise
        ready(target.url("models"), target.root + "/health", headers=headers, timeout=10.0)
        models, header = {}, get_status(target.root + "/health", headers=headers, timeout=3.0)[1]
    owners, ids = [], []
    for m in (models.get("data") if isinstance(models, dict) else None) or []:
        if isinstance(m, dict):
            ids.append(str(m.get("id", "")))
            owners.append(str(m.get("owned_by", "")))
    software = next((o for o in owners if o.lower() not in _GENERIC_OWNERS), "")
    version = ""
    if not software:  # LitServe: /info describes its workers (it reports no version)
        try:
            info, _ = get_json(target.root + "/info", headers=headers, timeout=3.0)
        except EndpointError:
            info = None
        if isinstance(info, dict) and isinstance(info.get("server"), dict) and "workers_per_device" in info["server"]:
            software = "litserve"
    for route, key in (("version", "version"), ("api/version", "version"), ("props", "build_info")):
        try:
            answer, _ = get_json(target.root + "/" + route, headers=headers, timeout=3.0)
        except EndpointError:
            continue
        if isinstance(answer, dict) and answer.get(key):
            version = str(answer[key])
            if route == "api/version" and not software:
                software = "ollama"
            if route == "props" and not software:
                software = "llama.cpp"
            break
    return {"server_software": software or header.split("/")[0] or "unknown", "server_version": version,
            "server_header": header, "served_models": ",".join(i for i in ids if i)[:500]}


def tokenizer(target: HttpTarget, model: str,
              headers: Mapping[str, str] | None = None) -> Callable[[str], int] | None:
    """A function text -> number of tokens through the server's ``/tokenize`` route, or None where it has none."""
    url = target.root + "/tokenize"
    for body_of in (lambda t: {"content": t, "add_special": False},
                    lambda t: {"model": model, "prompt": t, "add_special_tokens": False}):
        try:
            answer = post_json(url, body_of("hello world"), headers=headers, timeout=3.0)
        except EndpointError:
            continue
        if _count(answer) is not None:
            def count(text: str, body_of: Callable[[str], dict[str, Any]] = body_of) -> int:
                n = _count(post_json(url, body_of(text), headers=headers, timeout=10.0))
                if n is None:
                    raise EndpointError(f"{url} stopped answering a token list")
                return n
            return count
    return None


def _count(answer: Any) -> int | None:
    if isinstance(answer, dict):
        if isinstance(answer.get("count"), int):
            return int(answer["count"])
        if isinstance(answer.get("tokens"), list):
            return len(answer["tokens"])
    return None
