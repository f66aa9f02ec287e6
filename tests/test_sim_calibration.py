"""collector.shared.sim noise presets fitted to the real corpus: they load, match the JSON, and the sim draws them."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from analysis import synthetic
from collector.shared import sim
from collector.shared.errors import ConfigError
from collector.shared.sim import LatencyModel

NOISE = ("noise_cv", "step_cv", "drift", "run_state_prob", "run_state_factor")


def _json() -> dict:
    return json.loads(resources.files("collector.shared").joinpath("sim_calibration.json").read_text(encoding="utf-8"))


def test_presets_are_the_values_in_the_json() -> None:
    presets = sim.noise_presets()
    assert "cuda" in presets and "all" in presets
    assert presets == {k: {n: float(v) for n, v in p.items()} for k, p in _json()["presets"].items()}
    for name, values in presets.items():
        assert set(values) <= set(NOISE)
        assert values["noise_cv"] > 0 and 0 <= values["run_state_prob"] <= 0.5 and values["drift"] >= 0
        lm = LatencyModel.calibrated(name)
        assert {n: getattr(lm, n) for n in values} == values
        assert lm.regimes == () and lm.episodes == ()


def test_calibrated_keeps_changes_and_refuses_unknown_names() -> None:
    lm = LatencyModel.calibrated("cuda", regimes=[sim.Regime(32, 48, 2.0)], drift=0.1)
    assert len(lm.regimes) == 1 and lm.drift == 0.1
    assert lm.noise_cv == sim.noise_presets()["cuda"]["noise_cv"]
    with pytest.raises(ConfigError, match="'h100'"):
        LatencyModel.calibrated("h100")
    with pytest.raises(ConfigError, match="'h100'"):
        synthetic.make_dataset(noise="h100")
    # a copy: changing it changes nothing
    sim.noise_presets()["cuda"]["noise_cv"] = 99.0
    assert sim.noise_presets()["cuda"]["noise_cv"] != 99.0


@pytest.mark.parametrize("name", ["cuda", "all"])
def test_simulated_run_noise_matches_the_preset(name: str) -> None:
    preset = sim.noise_presets()[name]
    grid = dict(models=("gpt2", "opt-125m", "distilgpt2"), caches=(False, True), budgets=range(16, 257, 16),
                trials=8, regimes=(), step_time=False)
    ds = synthetic.make_dataset(seed=21, noise=name, **grid)
    assert ds.attrs["simulated"] == 1
    assert {n: json.loads(ds.attrs["sim_model"])[n] for n in preset} == preset
    # the same sweep without noise: the smooth curve each run was multiplied around
    flat = synthetic.make_dataset(seed=21, noise_cv=0.0, step_cv=0.0, drift=0.0, run_state_prob=0.0, **grid)
    q = ds.order / ds.order.size  # the run's place in the execution sequence (the sim's drift position)
    r = (np.log(ds.latency / flat.latency.median("trial")) - np.log1p(preset["drift"] * q)).values.ravel()
    state = ds.truth_run_state.values.ravel()
    # run-level state: share of runs and their factor
    assert state.mean() == pytest.approx(preset["run_state_prob"], abs=0.04)
    if preset["run_state_prob"] > 0:
        gap = np.median(r[state]) - np.median(r[~state])
        assert np.exp(gap) == pytest.approx(preset["run_state_factor"], rel=0.05)
    # normal runs: log-normal with CV noise_cv (the step noise averages out over the steps of a run)
    sd = np.std(r[~state], ddof=1)
    cv = np.sqrt(np.expm1(sd**2))
    assert cv == pytest.approx(preset["noise_cv"], rel=0.12)
