"""What an ``engine = http`` sweep adds to its dataset: the origin attrs and the server's own figures.

:func:`annotate` is called by :func:`collector.dataset.export.to_dataset` for a sweep
whose spec has an endpoint. Attrs (:data:`HTTP_ATTRS`): the endpoint's host
part only (never a path, a query or a key), the API, that requests were
streamed, the server's software and version as it reported them, the server
command template, how prompts were sized, what the client cannot control, and
``protocol`` (the server software and version and the endpoint's host among
them, which keeps datasets of different servers or protocols apart when they
are combined). Variables (:data:`HTTP_VARIABLES`, over the sweep dims): the
start-up time of the run's server and the server's ``usage`` and timing fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from collector.dataset import schema
from collector.http.settings import NOT_CONTROLLED, NOT_CONTROLLED_BUT_DTYPE
from collector.sweep.spec import SweepSpec

__all__ = ["HTTP_ATTRS", "HTTP_VARIABLES", "annotate", "http_attrs"]

#: Global attrs of an http dataset: name -> what it holds.
HTTP_ATTRS: dict[str, str] = {
    "endpoint": "scheme, host and port of the OpenAI-compatible endpoint (never a path, query or key)",
    "api": "completions (/v1/completions) or chat (/v1/chat/completions)",
    "streaming": "1: every request was streamed (server-sent events), the client timing each chunk",
    "server_software": "the server as it names itself (/v1/models owned_by, version routes, Server header)",
    "server_version": "the server's version where a route tells it (vLLM /version, Ollama /api/version, "
                      "llama.cpp /props build_info), else empty",
    "server_header": "the Server header of its answers (empty when absent)",
    "server_cmd": "the --server-cmd template that started a fresh server per configuration (empty: none)",
    "prompt_tokenizer": "how prompts were sized: the server's /tokenize, or approximate (one common word per "
                        "token; server_prompt_tokens holds the server's count)",
    "not_controlled": "the factors the client cannot control (their coordinates are placeholders)",
}

#: Data variables of an http dataset: name -> (dtype, units, long_name, fill).
HTTP_VARIABLES: dict[str, tuple[str, str, str, Any]] = {
    "server_start_time": ("float64", "s", "seconds the run's server (--server-cmd) took from its start to answering "
                          "GET /v1/models (NaN: no server started by the sweep)", np.nan),
    "server_prompt_tokens": ("int32", "1", "prompt tokens the server counted (usage.prompt_tokens; -1: not sent)", -1),
    "server_completion_tokens": ("int32", "1", "tokens the server says it generated (usage.completion_tokens; -1: "
                                 "not sent)", -1),
    "server_prefill_time": ("float64", "s", "the server's own prompt processing time (llama.cpp timings.prompt_ms; "
                            "NaN: not sent)", np.nan),
    "server_decode_time": ("float64", "s", "the server's own generation time (llama.cpp timings.predicted_ms; NaN: "
                           "not sent)", np.nan),
}


def _first(model_info: Mapping[str, Mapping[str, Any]], key: str) -> str:
    values = [str(info.get(key, "")) for info in model_info.values() if info.get(key)]
    return ", ".join(dict.fromkeys(values))


def http_attrs(spec: SweepSpec, model_info: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The attrs of :data:`HTTP_ATTRS` and ``protocol`` for the sweep ``spec`` (``model_info``: what each
    model's server said, as the journal keeps it)."""
    target = spec.http
    if target is None:
        raise ValueError("http_attrs needs a spec with engine 'http'")
    fresh = f"; a fresh server per configuration (--server-cmd, isolation {spec.isolation})" if target.server_cmd else ""
    software = _first(model_info, "server_software") or "unknown"
    version = _first(model_info, "server_version")
    server = f"{software} {version}".strip() if version and version not in software else software
    return {
        "endpoint": target.host,
        "api": target.api,
        "streaming": 1,
        "server_software": software,
        "server_version": version,
        "server_header": _first(model_info, "server_header"),
        "server_cmd": target.server_cmd,
        "prompt_tokenizer": _first(model_info, "tokenizer") or "approximate (words)",
        "not_controlled": NOT_CONTROLLED_BUT_DTYPE if "{dtype}" in target.server_cmd else NOT_CONTROLLED,
        # the server and its endpoint are part of the origin: files of two servers are never one origin
        "protocol": f"OpenAI-compatible HTTP to {server} at {target.host}, streamed "
                    f"/v1/{'chat/' if target.api == 'chat' else ''}completions, timed by the client{fresh}",
    }


def annotate(ds: xr.Dataset, spec: SweepSpec, rows: Iterable[Any],
             model_info: Mapping[str, Mapping[str, Any]]) -> xr.Dataset:
    """Add the http attrs and variables to the dataset of an http sweep (in place; also returned).

    ``rows`` are the journal's rows (:class:`collector.sweep.journal.JournalRow`); a row's cell must be in ``ds``.
    """
    ds.attrs.update(http_attrs(spec, model_info))
    index = {d: {v: i for i, v in enumerate(ds[d].values.tolist())} for d in schema.SWEEP_DIMS}
    shape = tuple(ds.sizes[d] for d in schema.SWEEP_DIMS)
    arrays = {name: np.full(shape, fill, dtype=dtype) for name, (dtype, _, _, fill) in HTTP_VARIABLES.items()}
    for r in rows:
        idx = tuple(index[d][getattr(r.key, d)] for d in schema.SWEEP_DIMS)
        for name in HTTP_VARIABLES:
            arrays[name][idx] = getattr(r.record, name)
    for name, (_, units, long_name, _) in HTTP_VARIABLES.items():
        ds[name] = (schema.SWEEP_DIMS, arrays[name], {"units": units, "long_name": long_name})
    return ds
