"""measure() and warmup() on cpu with tiny-gpt2: phase split, step times, engines, failures, bad input."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import pytest
import torch

import collector
from collector.measuring import measurement
from collector.measuring.measurement import check_request, load_model, measure, warmup
from collector.measuring.models import LoadedModel
from collector.shared.errors import ConfigError, DeviceUnavailableError, UnknownModelError

MODEL = "tiny-gpt2"


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return load_model(model=MODEL)


@pytest.mark.parametrize("engine", ["loop", "generate"])
@pytest.mark.parametrize("timing", ["step", "events", "ends"])
@pytest.mark.parametrize("cache", [True, False])
def test_one_generation_is_split_and_counted(tiny, engine, timing, cache):
    budget = 9
    rec = measure(model=MODEL, budget=budget, prompt_len=5, cache=cache, engine=engine, timing=timing, loaded=tiny)
    assert rec.ok, rec.error
    assert rec.tokens == budget
    assert (rec.engine, rec.timing, rec.cache, rec.device, rec.dtype) == (engine, timing, cache, "cpu", "float32")
    assert rec.latency > 0 and 0 < rec.prefill_time < rec.latency
    assert rec.prefill_time + rec.decode_time == pytest.approx(rec.latency, rel=1e-12)
    if timing == "ends":
        assert rec.step_times == ()
    else:
        assert len(rec.step_times) == budget and min(rec.step_times) > 0
        assert rec.step_times[0] == pytest.approx(rec.prefill_time, rel=1e-9)
        assert sum(rec.step_times[1:]) == pytest.approx(rec.decode_time, rel=0.02)
    assert rec.n_params == tiny.n_params and rec.architecture == "GPT2LMHeadModel" and rec.weights == "random"
    assert rec.started_at.tzinfo is not None


def test_step_times_add_up_to_decode_time(tiny):
    rec = measure(model=MODEL, budget=24, prompt_len=8, timing="step", loaded=tiny)
    assert sum(rec.step_times[1:]) == pytest.approx(rec.decode_time, rel=0.02)
    assert sum(rec.step_times) == pytest.approx(rec.latency, rel=1e-9)


@pytest.mark.parametrize("cache", [True, False])
def test_loop_and_generate_produce_the_same_number_of_tokens(tiny, cache):
    recs = [measure(model=MODEL, budget=17, prompt_len=3, cache=cache, engine=e, loaded=tiny) for e in ("loop", "generate")]
    assert [r.tokens for r in recs] == [17, 17]


@pytest.mark.slow
def test_cache_off_is_slower_than_cache_on(tiny):
    # at 8 + 160 positions, re-running the whole sequence every step costs about twice
    # the cached decode on cpu even for this tiny model; interleaved, median of 3
    on, off = [], []
    for _ in range(3):
        on.append(measure(model=MODEL, budget=160, prompt_len=8, cache=True, loaded=tiny).decode_time)
        off.append(measure(model=MODEL, budget=160, prompt_len=8, cache=False, loaded=tiny).decode_time)
    assert statistics.median(off) > 1.1 * statistics.median(on)


def test_measure_loads_the_model_itself():
    rec = measure(model=MODEL, budget=2, prompt_len=2)
    assert rec.ok and rec.tokens == 2 and rec.n_params > 0


def test_public_names_resolve():
    assert collector.measure is measure and collector.warmup is warmup
    assert isinstance(collector.measure(model=MODEL, budget=1, prompt_len=1), collector.RunRecord)


def test_memory_modes(tiny):
    off = measure(model=MODEL, budget=3, memory="off", loaded=tiny)
    assert math.isnan(off.mem_rss_peak) and math.isnan(off.swap_used)
    for mode in ("endpoints", "sampled"):
        rec = measure(model=MODEL, budget=3, memory=mode, memory_interval=0.001, loaded=tiny)
        assert rec.mem_rss_peak > 0 and rec.mem_sys_available_min > 0 and rec.swap_used >= 0
        assert math.isnan(rec.mem_device_peak) and math.isnan(rec.mem_device_driver)  # cpu has none


def test_warmup_runs_n_unrecorded_generations(tiny, monkeypatch):
    calls = []
    real = measurement.measure

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(measurement, "measure", counting)
    loaded = warmup(3, model=MODEL, budget=2, prompt_len=2, loaded=tiny)
    assert loaded is tiny and len(calls) == 3 and all(c["loaded"] is tiny for c in calls)
    fresh = warmup(0, model=MODEL, budget=2)
    assert isinstance(fresh, LoadedModel) and fresh.spec.name == MODEL


def test_warmup_rejects_negative_n():
    with pytest.raises(ConfigError, match=r"n must be an integer >= 0, got -1"):
        warmup(-1, model=MODEL, budget=2)


# --------------------------------------------------------------------------- failures become records
def _broken_forward(exc: BaseException):
    def forward(*args, **kwargs):
        raise exc

    return forward


@pytest.mark.parametrize(
    ("exc", "status", "text"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom", "CUDA out of memory"),
        (RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"), "oom", "MPS backend out of memory"),
        (ValueError("shapes do not match"), "error", "ValueError: shapes do not match"),
    ],
)
def test_exception_inside_becomes_a_record(monkeypatch, exc, status, text):
    loaded = load_model(model=MODEL)
    monkeypatch.setattr(loaded.module, "forward", _broken_forward(exc))
    rec = measure(model=MODEL, budget=4, loaded=loaded, engine="loop")
    assert rec.status == status and text in rec.error
    assert math.isnan(rec.latency) and math.isnan(rec.prefill_time) and rec.step_times == ()


def test_wrong_token_count_is_an_error(tiny, monkeypatch):
    def short(module, ids, budget, cache, cache_impl, clock):
        clock.start()
        for _ in range(budget - 1):
            clock.mark()
        clock.stop()
        return budget - 1

    monkeypatch.setitem(measurement._ENGINES, "loop", short)
    rec = measure(model=MODEL, budget=5, loaded=tiny)
    assert rec.status == "error" and "produced 4 new tokens, expected budget=5" in rec.error


def test_failed_load_becomes_a_record(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("out of memory while loading")

    monkeypatch.setattr(measurement, "build_model", oom)
    rec = measure(model=MODEL, budget=2)
    assert rec.status == "oom" and "while loading" in rec.error


# --------------------------------------------------------------------------- bad input, before loading
@pytest.fixture
def no_loading(monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was validated")

    monkeypatch.setattr(measurement, "build_model", must_not_load)


BAD = [
    (dict(model="no-such-model-xyz"), UnknownModelError, r"unknown model 'no-such-model-xyz'.*presets: tiny-gpt2"),
    (dict(device="tpu"), DeviceUnavailableError, r"unknown device 'tpu'; choices: cpu, cuda, mps"),
    (dict(budget=0), ConfigError, r"budget must be an integer >= 1, got 0"),
    (dict(budget=2.5), ConfigError, r"budget must be an integer >= 1, got 2\.5"),
    (dict(budget=True), ConfigError, r"budget must be an integer >= 1, got True"),
    (dict(prompt_len=0), ConfigError, r"prompt_len must be an integer >= 1, got 0"),
    (dict(prompt_len=500, budget=13), ConfigError,
     r"prompt_len \+ budget = 500 \+ 13 = 513 exceeds the 512 positions of model 'tiny-gpt2'"),
    (dict(dtype="float64"), ConfigError, r"unknown dtype 'float64'; choices: float32, float16, bfloat16"),
    (dict(engine="vllm"), ConfigError, r"unknown engine 'vllm'; choices: loop, generate"),
    (dict(timing="cuda_graph"), ConfigError, r"unknown timing 'cuda_graph'; choices: step, events, ends"),
    (dict(cache="yes"), ConfigError, r"cache must be True or False, got 'yes'"),
    (dict(weights="real"), ConfigError, r"unknown weights 'real'; choices: auto, pretrained, random"),
    (dict(weights="pretrained"), UnknownModelError, r"'tiny-gpt2' cannot be met"),
    (dict(memory="always"), ConfigError, r"unknown memory mode 'always'"),
    (dict(memory_interval=-1.0), ConfigError, r"memory_interval must be a positive number of seconds, got -1\.0"),
    (dict(seed=-3), ConfigError, r"seed must be an integer >= 0, got -3"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD)
def test_bad_input_is_refused_before_loading(no_loading, change, error, match):
    kwargs = dict(model=MODEL, budget=4) | change
    with pytest.raises(error, match=match):
        check_request(**kwargs)
    with pytest.raises(error, match=match):
        measure(**kwargs)


def test_unavailable_device_is_refused_before_loading(no_loading, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match=r"device 'mps' is not available: .*; choices here: cpu"):
        measure(model=MODEL, device="mps", budget=4)


def test_check_request_returns_the_resolved_request():
    req = check_request(model="gpt2-large", budget=100, prompt_len=24)  # nothing is built
    assert req.spec.max_positions == 1024 and req.backend.name == "cpu" and req.budget == 100


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(model="gpt2"), r"loaded model is \{'model': 'tiny-gpt2', .* but the run asks for \{'model': 'gpt2'"),
        (dict(dtype="float16"), r"but the run asks for \{'model': 'tiny-gpt2', 'device': 'cpu', 'dtype': 'float16'"),
        (dict(attn="eager"), r"but the run asks for \{.*'attn': 'eager'\}"),
        (dict(cache=False, cache_impl="static"), r"not applicable: cache_impl='static' needs cache=True"),
        (dict(weights="pretrained"), r"weights='pretrained' but the loaded model has 'random' weights"),
        (dict(budget=600), r"exceeds the 512 positions"),
        (dict(loaded="tiny"), r"loaded must be a LoadedModel"),
    ],
)
def test_loaded_model_must_match_the_request(tiny, change, match):
    kwargs = dict(model=MODEL, budget=4, loaded=tiny) | change
    with pytest.raises(ConfigError, match=match):
        measure(**kwargs)


def test_started_at_is_recent_utc(tiny):
    before = dt.datetime.now(dt.timezone.utc)
    rec = measure(model=MODEL, budget=2, loaded=tiny)
    assert before <= rec.started_at <= dt.datetime.now(dt.timezone.utc)
