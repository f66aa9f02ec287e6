"""Engine http settings checked up front (no server needed): the endpoint URL, what the server controls,
the server command's placeholders; and the stream parser's one-line errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.http.client import Streamed, chunk_text
from collector.http.engine import record_of, request_body
from collector.http.prompt import fit, words
from collector.http.target import parse_target
from collector.shared.errors import ConfigError, EndpointError
from collector.shared.record import RunRecord
from collector.sweep.spec import SweepSpec, build_spec

URL = "http://127.0.0.1:8080/v1"


def test_an_http_spec_fixes_what_the_server_controls_and_round_trips() -> None:
    spec = build_spec({"engine": "http", "endpoint": URL + "/", "models": "m"})
    assert spec.devices == ("http",) and spec.caches == (True,) and spec.timing == "stream"
    assert spec.http is not None and spec.http.endpoint == URL and spec.http.host == "http://127.0.0.1:8080"
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert "http" not in build_spec({"models": "gpt2", "devices": "sim"}).to_dict()  # other engines unchanged


@pytest.mark.parametrize(("settings", "message"), [
    ({"endpoint": "http://user:pw@127.0.0.1:8080/v1"}, "holds a user name or password"),
    ({"endpoint": "http://127.0.0.1:8080/v1?key=abc"}, "has a query or fragment"),
    ({"endpoint": "ftp://127.0.0.1/v1"}, "must start with http:// or https://"),
    ({"endpoint": URL + "/completions"}, "names the completions route"),
    ({"endpoint": URL, "caches": "both"}, "--cache 'on off' cannot be swept with engine http"),
    ({"endpoint": URL, "devices": "cpu"}, "the device is 'http'"),
    ({"endpoint": URL, "timing": "step"}, "timing 'step' with engine http"),
    ({"endpoint": URL, "server_cmd": "serve --x {nope}"}, "placeholder '{nope}' is unknown"),
    ({"endpoint": URL, "server_cmd": "serve --max {budget}"}, "give --isolation cell"),
    ({"endpoint": URL, "api_key_env": "sk-abc 123"}, "must name an environment variable"),
    ({"endpoint": URL, "models": "a,b", "server_cmd": "serve {model}"}, "give --isolation model"),
    ({"endpoint": URL, "api": "embeddings"}, "api must be one of completions, chat"),
])
def test_bad_http_settings_are_refused_naming_the_value(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_spec({"engine": "http", "models": "m", **settings})
    assert message in str(info.value)
    assert "pw" not in str(info.value) and "key=abc" not in str(info.value)  # a secret in the URL is not echoed


def test_endpoint_settings_need_the_engine_and_the_engine_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="need --engine http"):
        build_spec({"models": "gpt2", "devices": "sim", "endpoint": URL})
    with pytest.raises(ConfigError, match="engine http needs --models"):
        build_spec({"engine": "http", "endpoint": URL})
    with pytest.raises(ConfigError, match="needs an endpoint"):
        build_spec({"engine": "http", "models": "m"})
    with pytest.raises(ConfigError, match="timing 'stream'"):
        build_spec({"models": "gpt2", "devices": "sim", "timing": "stream"})
    with pytest.raises(ConfigError, match="give --engine http"):
        build_spec({"models": "gpt2", "devices": "http"})


def test_the_cli_says_it_in_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--engine", "http", "--endpoint", URL, "--models", "m", "--cache", "off"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "KV cache" in err


def test_dtypes_are_swept_only_through_a_server_command_that_takes_them() -> None:
    with pytest.raises(ConfigError, match="several only with a --server-cmd that passes"):
        build_spec({"engine": "http", "models": "m", "endpoint": URL, "dtypes": "float16,bfloat16"})
    spec = build_spec({"engine": "http", "models": "m", "endpoint": URL, "dtypes": "float16,bfloat16",
                       "server_cmd": "vllm serve {model} --port {port} --dtype {dtype}", "isolation": "model"})
    assert spec.dtypes == ("float16", "bfloat16")


def test_the_server_command_is_filled_per_configuration() -> None:
    t = parse_target({"endpoint": URL, "server_cmd": "llama-server -m {model} --port {port} --host {host} {cache}"})
    assert t.server_command({"model": "q.gguf", "cache": True}) == "llama-server -m q.gguf --port 8080 --host 127.0.0.1 on"


def test_the_request_disables_stopping_and_streams_usage() -> None:
    t = parse_target({"endpoint": URL, "api": "chat"})
    body = request_body(t, "m", "a b", 16, 7)
    assert body["max_tokens"] == body["min_tokens"] == 16 and body["ignore_eos"] is True and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "a b"}] and body["temperature"] == 0.0
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("chunk", "message"), [
    ([1, 2], "is '[1, 2]', not a JSON object"),
    ({"error": {"message": "model not loaded"}}, "sent an error in the stream at event 3: 'model not loaded'"),
    ({"object": "x"}, "has no 'choices' list"),
    ({"choices": [{"text": 5}]}, "has text '5', not a string"),
])
def test_a_malformed_chunk_is_one_line(chunk: object, message: str) -> None:
    with pytest.raises(EndpointError) as info:
        chunk_text(chunk, 3)
    assert message in str(info.value) and "\n" not in str(info.value) and info.value.status == "error"


def test_chunks_of_both_apis_and_usage_only_chunks() -> None:
    assert chunk_text({"choices": [{"text": " a", "finish_reason": None}]}, 1) == (" a", None)
    assert chunk_text({"choices": [{"delta": {"content": "b"}, "finish_reason": "length"}]}, 1) == ("b", "length")
    assert chunk_text({"choices": [], "usage": {"completion_tokens": 3}}, 1) == (None, None)


def _base() -> RunRecord:
    return RunRecord(model="m", device="http", dtype="float32", cache=True, prompt_len=8, budget=3, engine="http",
                     timing="stream")


def test_a_record_from_the_arrivals() -> None:
    s = Streamed(arrivals=(0.05, 0.06, 0.08), end=0.081, finish_reason="length",
                 usage={"prompt_tokens": 8, "completion_tokens": 3}, timings={"prompt_ms": 20.0, "predicted_ms": 25.0})
    rec = record_of(_base(), s, 3, "stream")
    assert rec.ok and rec.tokens == 3 and rec.prefill_time == 0.05 and rec.latency == 0.081
    assert rec.step_times == pytest.approx((0.05, 0.01, 0.02))
    assert rec.server_prefill_time == pytest.approx(0.02) and rec.server_decode_time == pytest.approx(0.025)
    # a server that sends two tokens in one chunk: the count from usage, no step times guessed
    two = dataclasses.replace(s, arrivals=(0.05, 0.08))
    rec2 = record_of(_base(), two, 3, "stream")
    assert rec2.ok and rec2.step_times == () and rec2.tokens == 3
    assert record_of(_base(), s, 3, "ends").step_times == ()


def test_a_generation_that_stops_early_keeps_its_times_as_truncated() -> None:
    s = Streamed(arrivals=(0.05, 0.06), end=0.07, finish_reason="stop", usage={"completion_tokens": 2})
    rec = record_of(_base(), s, 3, "stream")
    assert rec.status == "truncated" and not rec.ok and rec.tokens == 2
    assert rec.latency == 0.07 and rec.prefill_time == 0.05 and rec.step_times == pytest.approx((0.05, 0.01))
    assert rec.error.startswith("truncated generation: 2 of 3 tokens (finish_reason 'stop')")
    assert RunRecord.from_dict(rec.to_dict()) == rec  # the journal keeps it as it is
    more = record_of(_base(), dataclasses.replace(s, usage={"completion_tokens": 4}), 3, "stream")
    assert more.status == "error" and "more tokens than the budget: 4 of 3" in more.error and np.isnan(more.latency)


def test_prompts_are_seeded_and_fitted_to_the_server_count() -> None:
    assert words(5, 1) == words(5, 1) != words(5, 2) and len(words(5, 1).split()) == 5
    text, n = fit(10, 0, lambda t: len(t.split()) + 2)  # a tokenizer that adds two special tokens
    assert n == 10 and len(text.split()) == 8
    assert fit(4, 0, None)[1] == -1


def test_a_toml_http_table_and_flags_over_it(tmp_path: Path) -> None:
    from collector.sweep.spec import read_toml

    (tmp_path / "s.toml").write_text('engine = "http"\nmodels = ["m"]\n[http]\nendpoint = "http://10.0.0.2:8000/v1"\n'
                                     'api = "chat"\nserver_cmd = "vllm serve {model} --port {port}"\n')
    spec = build_spec({"api": "completions"}, base=read_toml(tmp_path / "s.toml"))
    assert spec.http is not None and spec.http.api == "completions" and spec.http.port == 8000
    assert spec.http.server_command({"model": "m"}) == "vllm serve m --port 8000"
    (tmp_path / "bad.toml").write_text('engine = "http"\nmodels = ["m"]\n[http]\nendpoint = "http://h/v1"\nkey = "sk"\n')
    with pytest.raises(ConfigError, match="unknown http setting 'key'"):
        build_spec({}, base=read_toml(tmp_path / "bad.toml"))
