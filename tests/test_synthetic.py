"""analysis.synthetic / collector.shared.sim: the simulated data are consistent and their truth is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from analysis import synthetic
from collector.dataset import schema
from collector.shared import sim
from collector.shared.errors import ConfigError
from collector.shared.sim import Episode, LatencyModel, Regime


def test_defaults_are_simulated_and_valid(small_ds: xr.Dataset) -> None:
    schema.validate(small_ds)
    assert small_ds.attrs["simulated"] == 1
    assert set(small_ds.device.values) == {"sim"}
    assert json.loads(small_ds.attrs["sim_model"])["regimes"]


def test_tokens_equal_budget_where_ok() -> None:
    ds = synthetic.make_dataset(seed=3, missing=0.1)
    ok = ds.status == 0
    assert 0 < int((~ok).sum()) < ok.size
    assert bool(((ds.tokens == ds.budget) | ~ok).all())
    assert bool(ds.latency.where(~ok).isnull().all())


def test_step_times_sum_to_decode_time() -> None:
    ds = synthetic.make_dataset(seed=4, budgets=[1, 2, 17, 64])
    decode = ds.step_time.isel(step=slice(1, None)).sum("step")
    np.testing.assert_allclose(decode.values, ds.decode_time.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ds.step_time.isel(step=0).values, ds.prefill_time.values, rtol=1e-6)
    # NaN past the budget, finite up to it
    st = ds.step_time.sel(budget=17)
    assert bool(st.isel(step=slice(0, 17)).notnull().all()) and bool(st.isel(step=slice(17, None)).isnull().all())


def test_truth_marks_exactly_the_planted_cells() -> None:
    regs = [Regime(start=48, end=80, factor=3.0, cache=True, model="gpt2"),
            Regime(start=120, end=136, factor=2.0, cache=False, onset="total")]
    ds = synthetic.make_dataset(seed=5, models=["gpt2", "opt-125m"], prompt_lens=[8, 40],
                                budgets=range(16, 161, 16), trials=3, regimes=regs)
    b = ds.budget
    expected = xr.zeros_like(ds.truth_anomalous)
    first = (ds.model == "gpt2") & ds.cache & (b >= 48) & (b <= 80)
    second = ~ds.cache & (b + ds.prompt_len >= 120) & (b <= 136)
    expected = (expected | first | second).transpose(*schema.SWEEP_DIMS)
    xr.testing.assert_equal(ds.truth_anomalous, expected)
    # and the planted cells are the slow ones: median ratio inside vs neighbours
    med = ds.latency.median("trial")
    inside = med.sel(model="gpt2", cache=True, budget=64).squeeze()
    around = med.sel(model="gpt2", cache=True, budget=[32, 96]).mean("budget").squeeze()
    assert float((inside / around).max()) > 2.0


def test_scaling_cache_on_linear_cache_off_quadratic() -> None:
    ds = synthetic.make_dataset(seed=6, regimes=(), noise_cv=0.0, step_cv=0.0, drift=0.0, run_state_prob=0.0,
                                budgets=[32, 64, 128, 256])
    on = ds.latency.sel(cache=True).squeeze().isel(trial=0).values
    off = ds.latency.sel(cache=False).squeeze().isel(trial=0).values
    assert on[3] / on[2] == pytest.approx(2.0, rel=0.15)          # about linear
    assert off[3] / off[2] > 2.5                                   # super-linear: quadratic term
    assert 5 < off[2] / on[2] < 20                                 # KV speedup in the published range


def test_run_states_and_episodes() -> None:
    lm = LatencyModel(run_state_prob=1.0, run_state_factor=2.0, noise_cv=0, step_cv=0, drift=0)
    base = LatencyModel(noise_cv=0, step_cv=0, drift=0)
    kw = dict(model="gpt2", prompt_len=8, budget=32)
    assert sim.simulate(lm, **kw).latency == pytest.approx(2 * sim.simulate(base, **kw).latency)
    ep = LatencyModel(episodes=[Episode(0.4, 0.6, 1.8)], noise_cv=0, step_cv=0, drift=0)
    assert sim.simulate(ep, position=0.5, **kw).latency == pytest.approx(1.8 * sim.simulate(ep, position=0.1, **kw).latency)


def test_sequential_episode_looks_like_a_budget_regime() -> None:
    """The case the analysis must call confounded: a sequential sweep with an episode over some budgets."""
    ds = synthetic.make_dataset(seed=7, regimes=(), caches=[True], episodes=[Episode(0.5, 0.7, 2.0)],
                                order="sequential", noise_cv=0.02, run_state_prob=0.0)
    med = ds.latency.median("trial").squeeze()
    ratio = (med / med.shift(budget=1)).values
    assert np.nanmax(ratio) > 1.7, "the episode must look like a step up on the budget axis"
    assert ds.attrs["run_order"] == "sequential"
    assert not ds.truth_anomalous.any()
    order = ds.order.squeeze()
    assert bool((order.diff("trial") == 1).all())  # trials of one budget back to back


def test_started_at_follows_order() -> None:
    ds = synthetic.make_dataset(seed=8)
    order = ds.order.values.ravel()
    t = ds.started_at.values.ravel()
    assert np.all(np.diff(t[np.argsort(order)]) > np.timedelta64(0, "ns"))


def test_from_step_and_memory_jump() -> None:
    lm = LatencyModel(regimes=[Regime(start=1, end=100, factor=4.0, from_step=10, mem_jump=1.5)],
                      noise_cv=0, step_cv=0, drift=0)
    rec = sim.simulate(lm, model="gpt2", prompt_len=8, budget=20, timing="step")
    st = np.array(rec.step_times)
    assert st[12] / st[8] == pytest.approx(4.0, rel=0.05)
    plain = sim.simulate(LatencyModel(noise_cv=0, step_cv=0, drift=0), model="gpt2", prompt_len=8, budget=20)
    assert rec.mem_device_peak == pytest.approx(1.5 * plain.mem_device_peak)


def test_latency_model_dict_roundtrip_and_errors() -> None:
    lm = LatencyModel(regimes=[Regime(start=1, end=5, factor=2.0)], episodes=[Episode(0.1, 0.2)])
    assert LatencyModel.from_dict(json.loads(json.dumps(lm.to_dict()))) == lm
    with pytest.raises(ConfigError, match="unknown sim setting 'noise'"):
        LatencyModel.from_dict({"noise": 1})
    with pytest.raises(ConfigError, match="phase must be 'decode' or 'prefill', got 'both'"):
        Regime(start=1, end=2, factor=2.0, phase="both")
    with pytest.raises(ConfigError, match="0 <= start < stop <= 1"):
        Episode(0.5, 0.2)
    with pytest.raises(ConfigError, match="sim knows devices"):
        sim.simulate(lm, model="gpt2", device="tpu", prompt_len=1, budget=1)
    with pytest.raises(ConfigError, match="budget must be >= 1, got 0"):
        sim.simulate(lm, model="gpt2", prompt_len=1, budget=0)
    with pytest.raises(ValueError, match="missing must be in"):
        synthetic.make_dataset(missing=1.5)
