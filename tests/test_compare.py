"""analysis.compare: a planted 1.1x everywhere plus a regime in one file is reported; null data reports no change."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import xarray as xr

from analysis import compare
from analysis.compare import fails
from analysis.errors import InputError
from analysis.synthetic import Regime, make_dataset


def _cmp(a, b, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(a, b, **kw)


def _series(res, cache):
    """One series of a compare result (the other series dims have one value each)."""
    one = res.sel(cache=cache)
    return one.isel({d: 0 for d in one.dims if d not in ("budget", "change")})


def _scaled(ds, factor):
    return ds.assign({v: ds[v] * factor for v in ("latency", "prefill_time", "decode_time", "step_time") if v in ds})


@pytest.fixture(scope="module")
def with_regime():
    return make_dataset(seed=0, step_time=False)


@pytest.fixture(scope="module")
def null_a():
    return make_dataset(seed=10, regimes=(), step_time=False)


@pytest.fixture(scope="module")
def null_b():
    return make_dataset(seed=11, regimes=(), step_time=False)


def test_planted_ratio_and_vanished_regime(with_regime, null_b):
    # two simulated sweeps (different seeds) differ by a few % with no change: declared as the sweep-to-sweep sd
    res = _cmp(with_regime, _scaled(null_b, 1.1), labels=("before.nc", "after.nc"), sweep_sd=0.02)
    assert bool(res["series_changed"].all()) and bool(res["slower"].all())
    ratio = res["series_ratio"].values.ravel()
    np.testing.assert_allclose(ratio, 1.1, rtol=0.03)
    assert (res["series_ratio_lo"].values < 1.1).all() and (res["series_ratio_hi"].values > 1.1).all()
    assert (res["series_q"].values < 0.05).all()
    on = _series(res, True)
    kinds = [k for k in on["change_kind"].values.tolist() if k]
    assert kinds == ["vanished"] and bool(on["change_confirmed"][0])
    assert str(on["change_source"][0].values) == "regimes" and float(on["change_q"][0]) < 0.05
    assert float(on["a_start"][0]) == 96 and float(on["a_end"][0]) == 128 and np.isnan(float(on["b_start"][0]))
    np.testing.assert_allclose(float(on["change_ratio"][0]), 1.0 / 5.0, rtol=0.15)
    verdict = str(on["verdict"].values)
    assert re.match(r"cache on: regime 96-128 \(x[45]\.\d\d\) vanished \(B/A there x0\.\d\d of elsewhere, "
                    r"q=[0-9.e-]+\); elsewhere 1\.(0[89]|1[0-2])x", verdict), verdict
    assert "q=" in verdict
    off = str(_series(res, False)["verdict"].values)
    assert re.match(r"cache off: B/A 1\.(0[5-9]|1[0-4])x \[1\.\d\d, 1\.\d\d\], q=", off), off
    # the regime budgets are excluded from the series ratio but have their own cell ratios (~1.1/5)
    cells = on["ratio"].sel(budget=[96, 112, 128]).values
    np.testing.assert_allclose(cells, 1.1 / 5.0, rtol=0.1)
    assert "after.nc vs before.nc" in res.attrs["summary"]


def test_appeared_regime(null_a, with_regime):
    res = _cmp(null_a, with_regime)
    on = _series(res, True)
    assert [k for k in on["change_kind"].values.tolist() if k] == ["appeared"]
    assert re.search(r"regime 96-128 \(x[45]\.\d\d\) appeared \(B/A there x[45]\.\d\d of elsewhere, q=",
                     str(on["verdict"].values))
    assert bool(on["slower"]) and not bool(_series(res, False)["series_changed"])
    assert "appeared" not in str(_series(res, False)["verdict"].values)


def test_moved_regime(with_regime):
    moved = make_dataset(seed=5, step_time=False, regimes=(Regime(start=128, end=192, factor=5.0, cache=True),))
    res = _cmp(with_regime, moved)
    on = _series(res, True)
    assert [k for k in on["change_kind"].values.tolist() if k] == ["moved"]
    assert "regime 96-128 moved to 128-192" in str(on["verdict"].values)


def test_null_data_reports_no_change(null_a, null_b):
    res = _cmp(null_a, null_b)
    assert not bool(res["series_changed"].any())
    assert not bool(res["cell_changed"].any())
    assert all(v.split(": ", 1)[1].startswith("no change") for v in res["verdict"].values.ravel().tolist())
    assert (np.abs(np.log(res["series_ratio"].values)) < 0.03).all()
    assert "0 changed" in res.attrs["summary"]


def test_identical_files_ratio_exactly_one(with_regime):
    res = _cmp(with_regime, with_regime)
    np.testing.assert_array_equal(res["ratio"].values, 1.0)
    assert not bool(res["series_changed"].any())
    assert [k for k in _series(res, True)["change_kind"].values.tolist() if k] == ["persists"]


def test_different_hosts_trials_and_budgets(null_a):
    b = make_dataset(seed=12, regimes=(), step_time=False, trials=3, budgets=tuple(range(64, 321, 16)))
    b.attrs.update(platform="another host", gpu_name="other")
    res = _cmp(null_a, _scaled(b, 1.1))
    assert res["budget"].values.tolist() == list(range(64, 257, 16))
    assert int(res["n_a"].max()) == 5 and int(res["n_b"].max()) == 3
    np.testing.assert_allclose(res["series_ratio"].values, 1.1, rtol=0.04)
    assert res.attrs["n_shared_cells"] == 2 * 13


def test_single_trial(null_a, null_b):
    res = _cmp(null_a.isel(trial=[0]), _scaled(null_b.isel(trial=[0]), 1.1))
    assert np.isfinite(res["series_ratio_lo"].values).all()
    np.testing.assert_allclose(res["series_ratio"].values, 1.1, rtol=0.05)


def test_length_one_extra_dim_is_dropped(null_a, null_b):
    b = null_b.expand_dims(host=["box-b"])
    res = _cmp(null_a, b)
    assert "host" not in res.dims


def test_bad_inputs(null_a, null_b):
    with pytest.raises(InputError, match="share no cell with data: model"):
        _cmp(null_a, make_dataset(seed=1, models=("opt-125m",), regimes=(), step_time=False))
    with pytest.raises(InputError, match="has dim 'host' \\(2 values\\) that the other lacks"):
        _cmp(null_a, null_b.expand_dims(host=["box-a", "box-b"]))
    with pytest.raises(InputError, match="alpha must be in \\(0, 1\\), got 2"):
        _cmp(null_a, null_b, alpha=2)
    with pytest.raises(InputError, match="level must be in \\(0, 1\\), got 95"):
        _cmp(null_a, null_b, level=95)
    with pytest.raises(InputError, match="lacks variable 'nope'"):
        _cmp(null_a, null_b, var="nope")
    with pytest.raises(InputError, match="'B' is a 'str'"):
        _cmp(null_a, "b.nc")
    with pytest.raises(InputError, match="labels must be two names"):
        _cmp(null_a, null_b, labels=("a",))
    neg = null_b.copy()
    neg["latency"] = -neg["latency"]
    with pytest.raises(InputError, match="has values <= 0"):
        _cmp(null_a, neg)


# ----------------------------------------------------------------------------- noise warning, fails, CLI
def _noisier(ds, sd, seed=0):
    """``ds`` with extra per-run noise of ``sd`` (log units): every timing of a run scaled alike."""
    f = np.exp(np.random.default_rng(seed).normal(0.0, sd, ds["latency"].shape))
    f = xr.DataArray(f, dims=ds["latency"].dims, coords=ds["latency"].coords)
    return ds.assign({v: ds[v] * f for v in ("latency", "prefill_time", "decode_time") if v in ds})


def test_noise_warning_names_the_noisier_file_and_the_likely_cause(null_b):
    res = _cmp(null_b, _noisier(null_b, 0.3), labels=("quiet.nc", "loaded.nc"))
    assert bool(res["noise_warning"].all())
    assert (res["noise_b"].values > 2 * res["noise_a"].values).all()
    warning = res.attrs["warning"]
    assert "loaded.nc is" in warning and "noisier than quiet.nc" in warning and "loaded host" in warning
    assert warning in res.attrs["summary"]
    assert all("noisy: per-run noise A" in v for v in res["verdict"].values.ravel().tolist())
    quiet = _cmp(null_b, _noisier(null_b, 0.01))
    assert quiet.attrs["warning"] == "" and not bool(quiet["noise_warning"].any())
    assert (np.abs(quiet["noise_a"].values - 0.05) < 0.01).all()  # the simulator's per-run noise


def test_a_slow_run_state_counts_in_the_noise(null_a, null_b):
    # the simulator puts a few runs in a slow state (x1.75); the pooled sd counts them in full, and says so
    res = _cmp(null_a, null_b)
    assert bool(res["noise_warning"].any()) and "slow run states" in res.attrs["warning"]


def test_fails_and_slower(with_regime, null_a, null_b):
    slow = _cmp(null_a, _scaled(null_b, 1.1))
    assert fails(slow, "slower") and fails(slow, "changed")
    fast = _cmp(null_a, _scaled(null_b, 0.9))
    assert not fails(fast, "slower") and fails(fast, "changed")
    assert not fails(_cmp(null_a, null_b), "changed")
    vanished = _cmp(with_regime, null_b)  # a slow regime vanished: changed, and faster there, not slower
    assert fails(vanished, "changed") and not bool(_series(vanished, True)["slower"])
    with pytest.raises(InputError, match="on must be one of .*, got 'faster'"):
        fails(slow, "faster")
    with pytest.raises(InputError, match="needs the Dataset returned by analysis.compare"):
        fails(null_a, "slower")


def test_sweep_sd_widens_the_intervals(null_a, null_b):
    plain, wide = _cmp(null_a, null_b), _cmp(null_a, null_b, sweep_sd=0.05)
    width = {k: r["series_ratio_hi"] - r["series_ratio_lo"] for k, r in (("plain", plain), ("wide", wide))}
    assert (width["wide"] > width["plain"]).all()
    assert (wide["series_mde"] > plain["series_mde"]).all() and wide.attrs["sweep_sd"] == 0.05
    assert "sweep-to-sweep sd of 0.05" in wide.attrs["summary"]
    with pytest.raises(InputError, match=r"sweep_sd must be a finite number >= 0, got -1"):
        _cmp(null_a, null_b, sweep_sd=-1)


def test_result_variables_are_declared_and_documented(null_a, null_b):
    from analysis.compare import VARIABLES
    from analysis.compare import compare as fn
    from analysis.core.outputs import returns_names

    res = _cmp(null_a, null_b)
    assert list(res.data_vars) == list(VARIABLES)
    assert not set(VARIABLES) - returns_names(fn.__doc__)
    assert all(res[v].attrs.get("long_name") for v in VARIABLES)


def test_a_drift_of_the_ratio_over_the_budgets_is_a_level_not_a_regime(null_a, null_b):
    b = null_b.copy()
    b["latency"] = null_b["latency"] * np.linspace(1.0, 1.3, null_b.sizes["budget"])[:, None] ** 1.0
    res = _cmp(null_a, b.transpose(*null_b["latency"].dims))
    assert not bool(res["change_kind"].isin(["appeared", "vanished", "moved"]).any())
    assert bool(res["slower"].all())


def test_cli_fail_on_and_warning(tmp_path, capsys, null_a, null_b):
    from analysis.__main__ import main
    from collector.dataset import schema

    a, b, n = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "noisy.nc"
    schema.save(null_a, a)
    schema.save(_scaled(null_b, 1.1), b)
    schema.save(_noisier(null_b, 0.3), n)
    assert main(["compare", str(a), str(b)]) == 0  # default: exit 0 whatever the result
    assert main(["compare", str(a), str(b), "--fail-on", "slower"]) == 1
    assert main(["compare", str(a), str(b), "--fail-on", "changed", "--json"]) == 1
    assert main(["compare", str(b), str(a), "--fail-on", "slower"]) == 0  # faster is not slower
    assert main(["compare", str(b), str(a), "--fail-on", "changed"]) == 1
    capsys.readouterr()
    assert main(["compare", str(a), str(n)]) == 0
    res = capsys.readouterr()
    assert "Warning: per-run noise" in res.out and res.err.startswith("warning: per-run noise")
    assert "noisy.nc is" in res.err and "loaded host" in res.err
    assert "unconfirmed" in res.out  # the legend names every kind
    assert main(["compare", str(a), str(b), "--fail-on", "faster"]) == 2
    assert "invalid choice: 'faster'" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--sweep-sd", "-1"]) == 2
    assert "sweep_sd must be a finite number >= 0, got -1.0" in capsys.readouterr().err


def test_noisy_threshold_is_the_one_of_regimes():
    import importlib

    cmp_module = importlib.import_module("analysis.compare")  # the module, not the function of the package
    regimes_module = importlib.import_module("analysis.regimes")

    assert cmp_module.NOISY == getattr(regimes_module, "NOISY", cmp_module.NOISY) == 0.1
