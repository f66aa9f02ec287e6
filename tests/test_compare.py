"""analysis.compare: a planted 1.1x everywhere plus a regime in one file is reported; null data reports no change."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from analysis import compare
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
    out = ds.copy()
    out["latency"] = ds["latency"] * factor
    return out


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
    res = _cmp(with_regime, _scaled(null_b, 1.1), labels=("before.nc", "after.nc"))
    assert bool(res["series_changed"].all())
    ratio = res["series_ratio"].values.ravel()
    np.testing.assert_allclose(ratio, 1.1, rtol=0.03)
    assert (res["series_ratio_lo"].values < 1.1).all() and (res["series_ratio_hi"].values > 1.1).all()
    assert (res["series_q"].values < 0.05).all()
    on = _series(res, True)
    kinds = [k for k in on["change_kind"].values.tolist() if k]
    assert kinds == ["vanished"]
    assert float(on["a_start"][0]) == 96 and float(on["a_end"][0]) == 128 and np.isnan(float(on["b_start"][0]))
    verdict = str(on["verdict"].values)
    assert re.match(r"gpt2 sim cache on: regime 96-128 \(x5\.00\) vanished; elsewhere 1\.(0[89]|1[0-2])x", verdict)
    assert "q=" in verdict
    off = str(_series(res, False)["verdict"].values)
    assert re.match(r"gpt2 sim cache off: B/A 1\.(0[89]|1[0-2])x \[1\.\d\d, 1\.\d\d\], q=", off), off
    # the regime budgets are excluded from the series ratio but have their own cell ratios (~1.1/5)
    cells = on["ratio"].sel(budget=[96, 112, 128]).values
    np.testing.assert_allclose(cells, 1.1 / 5.0, rtol=0.1)
    assert "after.nc vs before.nc" in res.attrs["summary"]


def test_appeared_regime(null_a, with_regime):
    res = _cmp(null_a, with_regime)
    on = _series(res, True)
    assert [k for k in on["change_kind"].values.tolist() if k] == ["appeared"]
    assert "regime 96-128 (x5.00) appeared" in str(on["verdict"].values)
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
