"""analysis.regimes on seeded synthetic data: planted regimes are found, noise is not."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis.errors import InputError
from analysis.regimes import regimes, summary
from analysis.synthetic import Episode, Regime, make_dataset


def _truth(ds: xr.Dataset) -> np.ndarray:
    return ds["truth_anomalous"].any("trial").values


@pytest.fixture(scope="module")
def default_result() -> tuple[xr.Dataset, xr.Dataset]:
    ds = make_dataset(0, step_time=False)
    return ds, regimes(ds)


def test_default_regime_found(default_result):
    ds, r = default_result
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    seg = r.sel(cache=True).squeeze()
    j = int(np.flatnonzero(seg["segment_anomalous"].values)[0])
    assert seg["start"].values[j] == 96 and seg["end"].values[j] == 128
    assert seg["kind"].values[j] == "slow"
    assert seg["effect_lo"].values[j] < 5.0 * 1.03 and seg["effect_hi"].values[j] > 5.0 / 1.03
    assert seg["effect"].values[j] == pytest.approx(5.0, rel=0.05)
    assert seg["q"].values[j] < 0.001
    assert not seg["confounded"].values[j]
    # boundary intervals bracket the planted boundaries
    assert seg["start_lo"].values[j] <= 96 <= seg["start_hi"].values[j]
    assert seg["end_lo"].values[j] <= 128 <= seg["end_hi"].values[j]


def test_ratio_baseline_and_attrs(default_result):
    ds, r = default_result
    med = ds["latency"].median("trial")
    np.testing.assert_allclose((r["ratio"] * r["baseline"]).values, med.values, rtol=1e-9)
    normal = r["ratio"].where(~r["anomalous"])
    assert float(abs(np.log(normal)).max()) < np.log(1.2)
    assert r.attrs["method"] == "scan"
    assert set(np.unique(r["kind"].values)) <= {"normal", "slow", "fast", ""}
    assert r["anomalous"].dtype == bool and r["regime"].dtype.kind == "i"
    assert r["scaling"].sel(cache=True).item() == "linear"
    assert r["scaling"].sel(cache=False).item() == "quadratic"
    assert re.search(r"slow x(4\.9\d|5\.0\d) \[", summary(r)) and summary(r) == r.attrs["summary"]


def test_q_is_bh_of_p(default_result):
    _, r = default_result
    p = r["p"].values.ravel()
    q = r["q"].values.ravel()
    ok = np.isfinite(p)
    assert np.all(q[ok] >= p[ok] - 1e-12)
    assert np.all(np.isnan(q[~ok]))


def test_scan_finds_planted_regime():
    ds = make_dataset(3, caches=(True,), budgets=list(range(8, 168, 8)), step_time=False,
                      regimes=[Regime(48, 72, 3.0, cache=True)], noise_cv=0.08)
    r = regimes(ds)
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    assert r.attrs["method"] == "scan"


@pytest.mark.parametrize("option", [{"method": "binseg"}, {"penalty": 1.0}, {"n_boot": 50}])
def test_obsolete_options_warn_and_change_nothing(option):
    ds = make_dataset(3, caches=(True,), budgets=list(range(8, 168, 8)), step_time=False,
                      regimes=[Regime(48, 72, 3.0, cache=True)], noise_cv=0.08)
    with pytest.warns(FutureWarning, match=f"{next(iter(option))}=.* is deprecated and ignored"):
        r = regimes(ds, **option)
    xr.testing.assert_identical(r, regimes(ds))


def test_one_budget_spike_found():
    ds = make_dataset(4, caches=(True,), budgets=list(range(8, 168, 8)), step_time=False,
                      regimes=[Regime(80, 80, 2.0, cache=True)], noise_cv=0.1)
    r = regimes(ds)
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))


@pytest.mark.parametrize("where", [(120, 190), (140, 210), (100, 170)])
def test_zoomed_probe_keeps_anomaly_as_anomaly(where):
    """8 anomalous budgets of 12: the slow interval is still the anomaly (expected scaling, not majority)."""
    ds = make_dataset(5, caches=(True,), budgets=list(range(100, 220, 10)), step_time=False,
                      regimes=[Regime(where[0], where[1], 5.0, cache=True)])
    assert _truth(ds).sum() == 8
    r = regimes(ds)
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    assert set(r["kind"].values[r["segment_anomalous"].values]) == {"slow"}


def test_fast_regime():
    ds = make_dataset(6, caches=(True,), budgets=list(range(8, 168, 8)), step_time=False,
                      regimes=[Regime(64, 80, 0.4, cache=True)])
    r = regimes(ds, normal="majority")  # regimes either way
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    assert "fast" in set(r["kind"].values.ravel())
    # by default regimes are slowdowns: the dip is tested (and taken out of the noise), not reported, and its
    # mirror image through the smooth curve is not reported as slow either
    low = regimes(ds)
    assert not bool(low["anomalous"].any()), summary(low)
    assert float(low["p"].min()) < 0.05


def test_one_slow_run_and_one_slow_trial_are_noise():
    ds = make_dataset(7, regimes=(), run_state_prob=0.0, step_time=False)
    lat = ds["latency"].copy()
    lat[{"cache": 1, "budget": 5, "trial": 2}] *= 4.0  # one slow run
    lat[{"cache": 0, "trial": 3}] *= 2.0  # one trial slow at every budget
    ds["latency"] = lat
    r = regimes(ds)
    assert not r["anomalous"].any()


def test_null_data_not_flagged():
    flagged = 0
    for seed in range(8):
        ds = make_dataset(100 + seed, regimes=(), episodes=[Episode(0.4, 0.5, 1.8)], noise_cv=0.12,
                          run_state_prob=0.05, step_time=False)
        flagged += int(regimes(ds)["anomalous"].any(["budget"]).sum())
    assert flagged == 0


def test_sequential_episode_is_confounded():
    ds = make_dataset(2, regimes=(), episodes=[Episode(0.3, 0.45, 3.0)], order="sequential", step_time=False)
    r = regimes(ds)
    # the episode's step is found, but budget and time cannot be separated: flagged, not a regime
    conf = r["confounded"].values & r["clustered"].values
    assert conf.any() and not bool(r["segment_anomalous"].values[conf].any())
    assert r.attrs["sequential_share"] == 1.0
    text = summary(r)
    assert "cannot be separated" in text and "random order" in text


def test_random_episode_is_not_a_regime():
    ds = make_dataset(2, regimes=(), episodes=[Episode(0.3, 0.45, 3.0)], order="random", step_time=False)
    r = regimes(ds)
    assert not r["anomalous"].any()
    assert r.attrs["sequential_share"] == 0.0


def test_single_trial():
    ds = make_dataset(8, caches=(True,), trials=1, budgets=list(range(8, 208, 8)), step_time=False,
                      regimes=[Regime(96, 128, 3.0, cache=True)], run_state_prob=0.0)
    # in this draw of the random order the regime's 5 runs were executed 15th to 20th of 25 (span 6: p about
    # 0.003 under random order), so budget and time cannot be separated: found, and flagged, not reported
    timed = regimes(ds)
    assert not bool(timed["anomalous"].any()) and bool((timed["confounded"] & timed["clustered"]).any())
    assert "not reported as regimes" in summary(timed)
    untimed = ds.drop_vars(["order", "started_at"])
    r = regimes(untimed)
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    assert "Fewer than 3 trials" in summary(r)
    # without a trial dim at all (a published table of means)
    r2 = regimes(untimed.isel(trial=0, drop=True)[["latency"]])
    np.testing.assert_array_equal(r2["anomalous"].values, _truth(ds))


def test_nan_cells_and_failed_runs():
    ds = make_dataset(9, missing=0.15, step_time=False)
    lat = ds["latency"].copy()
    lat[{"cache": 1, "budget": 3}] = np.nan  # a whole budget without data
    ds["latency"] = lat
    r = regimes(ds)
    truth = _truth(ds)
    truth[..., 3] = r["anomalous"].values[..., 3]
    np.testing.assert_array_equal(r["anomalous"].values, truth)
    assert (r["regime"].values >= 0).all()


def test_extra_dims_are_independent_series():
    a = make_dataset(10, step_time=False)
    b = make_dataset(11, step_time=False, regimes=[Regime(32, 48, 4.0, cache=False)])
    both = xr.concat([a, b], dim=xr.DataArray(["a", "b"], dims="host", name="host"), coords="minimal", compat="override")
    r = regimes(both)
    assert r["anomalous"].dims[0] == "host"
    for host, single in (("a", a), ("b", b)):
        np.testing.assert_array_equal(r["anomalous"].sel(host=host).values, _truth(single))


def test_derived_variable_without_order():
    rng = np.random.default_rng(0)
    budgets = np.arange(16, 400, 16)
    speedup = 10.0 * np.exp(rng.normal(0, 0.05, (budgets.size, 4)))
    speedup[8:11] /= 5.0  # the KV speedup collapses inside an interval
    ds = xr.Dataset({"kv_speedup": (("budget", "trial"), speedup)}, coords={"budget": budgets})
    r = regimes(ds, "kv_speedup", scaling="constant", normal="highest")  # a drop is the anomaly
    assert r["anomalous"].values.tolist() == [8 <= i < 11 for i in range(budgets.size)]
    assert "fast" in r["kind"].values.tolist()
    assert r.attrs["time_check"].startswith("skipped")
    assert "Time confound not checked" in summary(r)


def test_scaling_auto_without_cache_chooses_by_fit():
    b = np.arange(10, 410, 20).astype(float)
    rng = np.random.default_rng(1)
    quad = (0.01 * b + 0.002 * b**2)[:, None] * np.exp(rng.normal(0, 0.03, (b.size, 3)))
    lin = (0.5 + 0.02 * b)[:, None] * np.exp(rng.normal(0, 0.03, (b.size, 3)))
    ds = xr.Dataset({"x": (("shape", "budget", "trial"), np.stack([lin, quad]))},
                    coords={"budget": b, "shape": ["lin", "quad"]})
    r = regimes(ds, "x")
    assert r["scaling"].values.tolist() == ["linear", "quadratic"]
    assert not r["anomalous"].any()


def test_seeded_and_deterministic(default_result):
    ds, r = default_result
    again = regimes(ds)
    xr.testing.assert_identical(r, again)


def test_dataarray_input_and_unsorted_budgets():
    ds = make_dataset(3, caches=(True,), step_time=False)
    shuffled = ds.isel(budget=np.random.default_rng(0).permutation(ds.sizes["budget"]))
    r = regimes(shuffled["latency"])
    assert r["budget"].values.tolist() == sorted(ds["budget"].values.tolist())
    np.testing.assert_array_equal(r["anomalous"].values, _truth(ds))
    assert r.attrs["time_check"].startswith("skipped")  # a bare array carries no order


def test_module_attribute_is_callable():
    ds = make_dataset(0, caches=(True,), step_time=False)
    assert analysis.regimes(ds)["anomalous"].any()
    assert analysis.regimes(ds, min_effect=10.0)["anomalous"].sum() == 0


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return make_dataset(0, caches=(True,), budgets=[16, 32, 48, 64], trials=2, step_time=False)


def test_missing_variable(small):
    with pytest.raises(InputError, match=r"variable 'nope' not in the dataset"):
        regimes(small, "nope")


def test_no_budget_dim(small):
    with pytest.raises(InputError, match=r"has no 'budget' dim"):
        regimes(small.isel(budget=0), "latency")


def test_too_few_budgets(small):
    with pytest.raises(InputError, match=r"at least 3 budgets.*has 2"):
        regimes(small.isel(budget=[0, 1]))


def test_all_nan(small):
    with pytest.raises(InputError, match=r"'latency' is all NaN"):
        regimes(small.assign(latency=small["latency"] * np.nan))


def test_non_positive(small):
    with pytest.raises(InputError, match=r"values <= 0"):
        regimes(small.assign(latency=small["latency"] - 1e3))


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"method": "magic"}, r"method must be one of \['pelt', 'binseg', 'dynp', 'kernel'\], got 'magic'"),
        ({"scaling": "cubic"}, r"scaling must be one of .*got 'cubic'"),
        ({"normal": "first"}, r"normal must be one of .*got 'first'"),
        ({"penalty": -1.0}, r"penalty must be None or a positive number, got -1.0"),
        ({"min_effect": -0.1}, r"min_effect must be a number >= 0, got -0.1"),
        ({"alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
        ({"n_boot": 2.5}, r"n_boot must be an integer >= 0, got 2.5"),
    ],
)
def test_bad_options(small, kw, msg):
    with pytest.raises(InputError, match=msg):
        regimes(small, **kw)


def test_dim_named_like_a_result_variable(small):
    with pytest.raises(InputError, match=r"dim 'kind' of 'latency' has the name of a result variable"):
        regimes(small.rename(model="kind"))


def test_not_a_dataset():
    with pytest.raises(InputError, match=r"needs an xarray.Dataset, got 'list'"):
        regimes([1, 2, 3])


def test_robust_fit_of_a_series_does_not_depend_on_its_block():
    """Each series converges on its own: fitting it alone or beside others gives the same baseline
    (so eager and dask runs with any chunking agree)."""
    from analysis.detect.baseline import robust_fit

    rng = np.random.default_rng(5)
    x = np.linspace(0.05, 1.0, 30)
    m = np.log(np.stack([1 + 3 * x, 0.2 + x + 2 * x**2, 1 + x]) * np.exp(rng.normal(0, 0.05, (3, 30))))
    m[1, 10:14] += 1.0  # a regime: more iterations for this row
    together, _ = robust_fit(m, x, 2, scale_floor=0.02)
    for i in range(3):
        alone, _ = robust_fit(m[i : i + 1], x, 2, scale_floor=0.02)
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-12)


def _time_setup(slow_neighbours: bool, sequential: bool):
    """20 series x 10 budgets x 5 trials; series 0, budget 4 is 2x slow in every trial."""
    from analysis.detect import confound

    rng = np.random.default_rng(0)
    S, nb, T = 20, 10, 5
    E = rng.normal(0, 0.03, (S, nb, T))
    E[0, 4] += np.log(2.0)
    n = S * nb * T
    order = np.arange(n) if sequential else rng.permutation(n)
    tkey = order.reshape(S, nb, T).astype(float)
    if slow_neighbours:  # a host episode around the segment's runs slows every run executed then
        seg_pos = tkey[0, 4]
        near = np.zeros((S, nb, T), dtype=bool)
        for p in seg_pos:
            near |= np.abs(tkey - p) <= 6
        E = np.where(near & ~((np.arange(S)[:, None, None] == 0) & (np.arange(nb)[None, :, None] == 4)),
                     E + np.log(2.0), E)
    normal = np.ones((S, nb, T), dtype=bool)
    normal[0, 4] = False
    tc = confound.prepare(tkey, E, normal)
    return confound.check_segment(tc, E, normal, 0, np.array([4]), np.log(2.0), alpha=0.05)


def test_time_check_keeps_a_budget_effect_in_random_order():
    clustered, p_time, survives = _time_setup(slow_neighbours=False, sequential=False)
    assert not clustered and survives and p_time < 1e-6


def test_time_check_explains_a_host_episode_in_random_order():
    clustered, _p_time, survives = _time_setup(slow_neighbours=True, sequential=False)
    assert not clustered and not survives


def test_time_check_flags_a_sequential_block_as_clustered():
    clustered, _, _ = _time_setup(slow_neighbours=False, sequential=True)
    assert clustered


def test_fit_that_leaves_out_the_first_budgets_never_dives_to_zero_there():
    """Extrapolating below the budgets it fits, the baseline is a curve that is >= 0 at budget 0 and
    non-decreasing, so at a smaller budget it keeps at least its proportional share (line through the
    origin); before, a steep line through budgets 80-256 was clipped to a thousandth at budget 16."""
    from analysis.detect.baseline import robust_fit

    b = np.arange(16, 257, 16, dtype=float)
    y = np.where(b >= 80, b - 60.0, 21.0 * (b - 60.0).clip(min=5.0))  # a regime over 16-64, steep above
    m = np.log(y)[None, :]
    x = b / b.max()
    mask = (b >= 80)[None, :]
    base, _ = robust_fit(m, x, 1, mask=mask, scale_floor=0.02)
    assert base[0, 0] >= 0.99 * base[0, 4] * b[0] / b[4]
    # non-decreasing, and within a factor 2 of the budgets it fits (a line >= 0 at budget 0 cannot follow
    # one that crosses zero at budget 60)
    assert np.all(np.diff(base[0]) >= 0)
    assert np.abs(np.log(base[0, 4:]) - m[0, 4:]).max() < np.log(2.0)
    # a fit over every budget keeps its intercept at the smallest budget
    full, _ = robust_fit(np.log(0.5 + 0.02 * b)[None, :], x, 1, scale_floor=0.02)
    np.testing.assert_allclose(full[0], 0.5 + 0.02 * b, rtol=1e-6)
