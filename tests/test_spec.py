"""Sweep spec: parsing, defaults, TOML, validation before anything runs."""

from __future__ import annotations

import pytest

from collector.shared.errors import ConfigError, DeviceUnavailableError, UnknownModelError
from collector.sweep.spec import (
    SweepSpec,
    build_spec,
    check_runnable,
    parse_budgets,
    parse_cache,
    parse_ints,
    read_toml,
)


@pytest.mark.parametrize("value, expected", [
    ("8:64:8", (8, 16, 24, 32, 40, 48, 56, 64)),
    ("1:5", (1, 2, 3, 4, 5)),
    ("8:20:8", (8, 16)),
    ("32,8,16,8", (8, 16, 32)),
    (["1,2", "8:16:4"], (1, 2, 8, 12, 16)),
    ([4, 2], (2, 4)),
    (7, (7,)),
])
def test_parse_budgets(value, expected):
    assert parse_budgets(value) == expected


@pytest.mark.parametrize("value, match", [
    ("8:4", "stop 4 < start 8"),
    ("8:64:0", "step >= 1, got 0"),
    ("1:2:3:4", "start:stop or start:stop:step"),
    ("a:8", "budgets must be integers, got 'a'"),
    ("0,4", "budgets must be >= 1, got 0"),
    ("", "at least one value"),
    ([True], "integers, got True"),
    ("1:2000000", "more than 100000 values"),
    ("2000000", "budgets must be <= 1000000"),
    ({"a": 1}, "list or a comma-separated string"),
])
def test_parse_budgets_errors(value, match):
    with pytest.raises(ConfigError, match=match):
        parse_budgets(value)


@pytest.mark.parametrize("value, expected", [("on", (True,)), ("off", (False,)), ("both", (True, False)),
                                             (True, (True,)), ([False, "on"], (False, True))])
def test_parse_cache(value, expected):
    assert parse_cache(value) == expected


def test_parse_cache_error():
    with pytest.raises(ConfigError, match="unknown cache 'maybe'; choices: on, off, both"):
        parse_cache("maybe")


def test_parse_ints_minimum():
    with pytest.raises(ConfigError, match="prompt_lens must be >= 1, got 0"):
        parse_ints("0", "prompt_lens")


def test_defaults_give_the_quick_sweep():
    spec = build_spec({})
    assert spec.models == ("distilgpt2",) and len(spec.devices) == 1 and spec.devices[0] in ("cpu", "cuda", "mps")
    assert spec.caches == (True, False) and len(spec.budgets) == 12 and spec.trials == 3
    assert spec.order == "random" and spec.isolation == "none" and spec.timeout is None and spec.refine is None


def test_flags_win_over_base_and_aliases():
    spec = build_spec({"trials": "5", "cache": "on"}, base={"models": "gpt2", "devices": "sim", "trials": 2,
                                                            "prompt_len": [4, 8]})
    assert spec.trials == 5 and spec.caches == (True,) and spec.prompt_lens == (4, 8)


def test_roundtrip_and_replace():
    spec = build_spec({"models": "gpt2,distilgpt2", "devices": "sim", "budgets": "8:32:8", "timeout": "2.5",
                       "refine": 2, "sim": {"noise_cv": 0.01}}, defaults=False)
    again = SweepSpec.from_dict(spec.to_dict())
    assert again == spec and again.to_json() == spec.to_json()
    assert spec.n_runs == 2 * 1 * 1 * 2 * 1 * 4 * 3 and spec.simulated
    assert spec.replace(trials=1).trials == 1
    assert spec.timeout == 2.5 and spec.refine == 2


@pytest.mark.parametrize("settings, match", [
    ({"colour": "red"}, "unknown sweep setting 'colour'"),
    ({"engine": "jit"}, "unknown engine 'jit'; choices: loop, generate"),
    ({"timing": "often"}, "unknown timing 'often'; choices: step, events, ends"),
    ({"isolation": "vm"}, "unknown isolation 'vm'; choices: none, model, cell"),
    ({"order": "shuffled"}, "unknown order 'shuffled'; choices: random, sequential"),
    ({"memory": "all"}, "unknown memory 'all'"),
    ({"weights": "fake"}, "unknown weights 'fake'"),
    ({"dtypes": "float64"}, "unknown dtype 'float64'"),
    ({"devices": "tpu"}, "unknown device 'tpu'"),
    ({"trials": 0}, "trials must be an integer >= 1, got 0"),
    ({"warmup": -1}, "warmup must be an integer >= 0, got -1"),
    ({"timeout": "soon"}, "timeout must be a number of seconds"),
    ({"timeout": -3}, "timeout must be a positive number"),
    ({"memory_interval": 0}, "memory_interval must be a positive number"),
    ({"refine": 0.5}, "refine must be integers"),
    ({"sim": {"regimes": [{"start": 1}]}}, "bad sim setting"),
    ({"sim": {"nosie": 1}}, "unknown sim setting 'nosie'"),
    ({"output": ""}, "output must be a file path"),
])
def test_build_spec_errors(settings, match):
    base = {"models": "gpt2", "devices": "sim"}
    with pytest.raises(ConfigError, match=match):
        build_spec(settings, base=base)


def test_missing_models_without_defaults():
    with pytest.raises(ConfigError, match="'models' is missing"):
        build_spec({"devices": "sim"}, defaults=False)
    with pytest.raises(ConfigError, match="'devices' is missing"):
        build_spec({"models": "gpt2"}, defaults=False)


def test_read_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('title = "t"\n[sweep]\nmodels = ["gpt2"]\nbudgets = "8:16:8"\n[sim]\nnoise_cv = 0.2\n')
    settings = read_toml(p)
    assert settings == {"title": "t", "models": ["gpt2"], "budgets": "8:16:8", "sim": {"noise_cv": 0.2}}
    spec = build_spec({"devices": "sim"}, base=settings)
    assert spec.budgets == (8, 16) and spec.sim is not None and spec.sim.noise_cv == 0.2 and spec.title == "t"


@pytest.mark.parametrize("text, match", [("models = [", "is not valid TOML"), ("sweep = 3", "must be a table"),
                                         ("sim = 3", "must be a table")])
def test_read_toml_errors(tmp_path, text, match):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_toml(p)


def test_read_toml_missing(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        read_toml(tmp_path / "nope.toml")


def test_check_runnable_sim_needs_known_models():
    check_runnable(build_spec({"models": "gpt2", "devices": "sim"}))
    with pytest.raises(UnknownModelError, match="unknown model 'llama' for device 'sim'"):
        check_runnable(build_spec({"models": "llama", "devices": "sim"}))
    costs = {"costs": {"llama": {"n_params": 1000}}}
    check_runnable(build_spec({"models": "llama", "devices": "sim", "sim": costs}))


def test_check_runnable_real_devices():
    from collector.measuring.environment import available_devices

    check_runnable(build_spec({"models": "tiny-gpt2", "devices": "cpu", "budgets": "8"}))
    with pytest.raises(UnknownModelError, match="unknown model 'not/a-model-here'"):
        check_runnable(build_spec({"models": "not/a-model-here", "devices": "cpu"}))
    with pytest.raises(ConfigError, match="exceeds the 512 positions"):
        check_runnable(build_spec({"models": "tiny-gpt2", "devices": "cpu", "budgets": "600"}))
    missing = [d for d in ("cuda", "mps") if d not in available_devices()]
    if missing:
        with pytest.raises(DeviceUnavailableError, match=f"device {missing[0]!r} is not available"):
            check_runnable(build_spec({"models": "tiny-gpt2", "devices": missing[0]}))
    with pytest.raises(ConfigError, match=r"a \[sim\] table was given but no device is 'sim'"):
        check_runnable(build_spec({"models": "tiny-gpt2", "devices": "cpu", "sim": {"noise_cv": 0.1}}))
