"""analysis.plot: every figure draws the planted regime where it was detected, labels simulated data, runs headless."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure

import analysis
from analysis import plot
from analysis.errors import InputError
from analysis.synthetic import Episode, make_dataset

BUDGET_FIGURES = ("latency", "decode_per_token", "phases", "memory", "regime_map")


@pytest.fixture(scope="module")
def ds():
    return make_dataset(seed=0)


@pytest.fixture(scope="module")
def reg(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analysis.regimes(ds)


def _detected(reg) -> set[tuple[float, float]]:
    anom = reg["segment_anomalous"].values
    return {(float(s), float(e)) for s, e in zip(reg["start"].values[anom], reg["end"].values[anom])}


def _title(fig: Figure) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_the_planted_regime_is_detected_at_96_128(reg):
    assert _detected(reg) == {(96.0, 128.0)}


@pytest.mark.parametrize("name", BUDGET_FIGURES)
def test_regime_drawn_at_the_detected_boundaries(ds, reg, name):
    fig = getattr(plot, name)(ds, reg=reg)
    assert isinstance(fig, Figure)
    spans = plot.regime_extents(fig)
    assert spans, f"{name} draws no regime"
    assert {(x0, x1) for _, _, x0, x1 in spans} == _detected(reg)
    # the regime is drawn in the panel of the cache-on series only
    titles = {n: ax.get_title() for n, ax in enumerate(fig.axes)}
    assert all("cache on" in titles[n] or titles[n] == "" for n, *_ in spans)
    assert "SIMULATED" in _title(fig)


def test_kv_collapse_shaded_at_the_collapse(ds, reg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kv = analysis.kv_speedup(ds, reg=reg)
    fig = plot.kv_speedup(ds, kv=kv)
    spans = [(x0, x1) for _, gid, x0, x1 in plot.regime_extents(fig) if gid.startswith("regime-collapse")]
    start, end = float(kv["collapse_start"].squeeze()), float(kv["collapse_end"].squeeze())
    assert spans == [(start, end)]
    assert (start, end) == (96.0, 128.0)
    # the CI band and the expected trend are drawn
    ax = fig.axes[0]
    assert ax.collections and any(line.get_gid() == "expected-0" for line in ax.lines)


def test_drift_marks_exactly_the_runs_inside_the_regime(ds, reg):
    fig = plot.drift(ds, reg=reg)
    ax = fig.axes[0]
    red = next(line for line in ax.lines if line.get_gid() == plot.drift.__globals__["REGIME_RUNS_GID"])
    inside = reg["anomalous"].broadcast_like(ds["latency"]).values & np.isfinite(ds["latency"].values)
    expected = np.sort(ds["order"].values[inside].astype(float))
    assert np.array_equal(np.sort(np.asarray(red.get_xdata(), dtype=float)), expected)
    assert expected.size == 3 * 5  # 3 budgets x 5 trials
    assert "SIMULATED" in _title(fig)


def test_drift_shows_a_confounded_episode_in_orange():
    seq = make_dataset(2, regimes=(), episodes=[Episode(0.3, 0.45, 3.0)], order="sequential", step_time=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(seq)
    fig = plot.drift(seq, reg=reg)
    conf = next(line for line in fig.axes[0].lines if line.get_gid() == "regime-runs-confounded")
    in_conf = reg["confounded"].isel(segment=reg["regime"].where(reg["regime"] >= 0, 0).astype(int))
    assert not bool((in_conf & reg["anomalous"]).any())  # a confounded step is not a regime
    assert len(conf.get_xdata()) == int((in_conf.broadcast_like(seq["latency"]).values
                                         & np.isfinite(seq["latency"].values)).sum()) > 0


def test_compare_plot_shades_the_regimes_of_each_side(ds):
    null = make_dataset(seed=1, regimes=())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analysis.compare(ds, null)
    fig = plot.compare(res)
    spans = plot.regime_extents(fig)
    a = [(x0, x1) for _, gid, x0, x1 in spans if gid.startswith("regime-a")]
    b = [(x0, x1) for _, gid, x0, x1 in spans if gid.startswith("regime-b")]
    assert a == [(96.0, 128.0)] and b == []
    assert "vanished" in " ".join(ax.get_title() for ax in fig.axes)


def test_measured_data_is_not_labelled_simulated(ds, reg):
    real = ds.copy()
    real.attrs = dict(ds.attrs, simulated=0)
    for name in ("latency", "drift"):
        fig = getattr(plot, name)(real, reg=reg)
        assert "SIMULATED" not in _title(fig)


def test_log_scale_and_panel_limit():
    big = make_dataset(seed=3, models=("gpt2", "distilgpt2"), prompt_lens=(16, 32), step_time=False)
    fig = plot.latency(big, log=True, max_panels=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    assert all(ax.get_yscale() == "log" for ax in visible)
    assert "showing 3 of 8 series" in " ".join(t.get_text() for leg in fig.legends for t in leg.get_texts())


def test_extra_dims_and_dollar_signs_are_handled(ds, reg):
    more = ds.expand_dims(host=["box-a", "box-b"]).transpose("model", "device", "host", ...)
    more = more.assign_coords(model=["$gpt2$"])
    fig = plot.latency(more, var="latency")
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "host=box-a" in titles and "host=box-b" in titles
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # a '$' in a name is not parsed as math
    assert buf.tell() > 1000


def test_figures_save_as_svg_and_png(ds, reg):
    for name in ("latency", "kv_speedup", "regime_map", "drift"):
        fig = getattr(plot, name)(ds, reg=reg)
        for fmt in ("svg", "png"):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt)
            assert buf.tell() > 1000


@pytest.mark.process
def test_no_pyplot_state():
    code = ("import sys, io\nfrom analysis import plot\nfrom analysis.synthetic import make_dataset\n"
            "fig = plot.latency(make_dataset(seed=0, step_time=False))\nfig.savefig(io.BytesIO(), format='png')\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_bad_inputs(ds, reg):
    with pytest.raises(InputError, match="needs an xarray.Dataset, got 'list'"):
        plot.latency([1, 2])
    with pytest.raises(InputError, match="needs variable 'nope'"):
        plot.latency(ds, var="nope")
    with pytest.raises(InputError, match="needs a 'budget' dim"):
        plot.latency(ds.isel(budget=0))
    with pytest.raises(InputError, match="reg must be the Dataset returned by analysis.regimes"):
        plot.latency(ds, reg=ds)
    with pytest.raises(InputError, match="no memory covariate with data"):
        plot.memory(ds.drop_vars(["mem_device_peak", "mem_device_driver", "mem_rss_peak", "mem_sys_available_min",
                                  "swap_used"]), reg=reg)
    with pytest.raises(InputError, match="covariate 'mem_nope' not in the dataset"):
        plot.memory(ds, reg=reg, covariates=["mem_nope"])
    with pytest.raises(InputError, match="needs 'order' or 'started_at'"):
        plot.drift(ds.drop_vars(["order", "started_at"]), reg=reg)
    with pytest.raises(InputError, match="needs variable 'step_time'"):
        plot.regime_map(ds.drop_vars("step_time"), reg=reg)
    with pytest.raises(InputError, match="needs the Dataset returned by analysis.compare"):
        plot.compare(ds)
    with pytest.raises(InputError, match="kv must be the Dataset returned by analysis.kv_speedup"):
        plot.kv_speedup(ds, kv=reg)


def test_series_without_data_are_skipped_and_axes_fit_the_data(ds, reg):
    sparse = ds.copy(deep=True)
    sparse["latency"].loc[{"cache": False}] = np.nan  # a series never run
    sparse["latency"].loc[{"cache": True, "budget": [16, 32, 48]}] = np.nan  # budgets without data
    fig = plot.latency(sparse, reg=reg)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 1 and "cache on" in visible[0].get_title()
    lo, hi = visible[0].get_xlim()
    assert 48 < lo < 64 and hi > 256
    with pytest.raises(InputError, match="no finite value of 'latency' to draw"):
        plot.latency(sparse.assign(latency=sparse["latency"] * np.nan), reg=reg)


def test_one_budget_regime_is_a_thick_line_at_its_budget(ds):
    from analysis.synthetic import Regime

    one = make_dataset(seed=6, step_time=False, regimes=(Regime(start=112, end=112, factor=5.0, cache=True),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(one)
    assert _detected(reg) == {(112.0, 112.0)}
    fig = plot.latency(one, reg=reg)
    spans = [a for ax in fig.axes for a in ax.patches if (a.get_gid() or "").startswith("regime-")]
    assert [(s.get_x(), s.get_width(), s.get_linewidth()) for s in spans] == [(112.0, 0.0, 3.0)]


def test_kv_without_both_caches_measured(ds, reg):
    off_only = ds.copy(deep=True)
    off_only["latency"].loc[{"cache": True}] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kv = analysis.kv_speedup(ds, reg=reg)
    with pytest.raises(InputError, match="no budget has both caches measured"):
        plot.kv_speedup(off_only, kv=kv.assign(speedup=kv["speedup"] * np.nan))
