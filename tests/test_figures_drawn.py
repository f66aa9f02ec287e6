"""Figures only where their analysis applied, legends that name only what is drawn (issue 20), on the study file.

Checked on the matplotlib artists, not by eye: legend entries against the collections, lines and patches
the axes hold; regime spans and solid lines against the budgets each series measured; the grid's last row.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis import plot
from analysis.errors import InputError
from analysis.plot._figure import fit_columns

STUDY = Path(__file__).resolve().parents[1] / "datasets" / "mps-m3max-study.nc"


@pytest.fixture(scope="module")
def study():
    ds = analysis.open_dataset(STUDY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(ds)
    return ds, reg


def _legend(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_drift_is_not_drawn_without_an_execution_order(study):
    ds, reg = study
    # the study has no order: every run holds the placeholder -1, and no start time
    assert (ds["order"].values < 0).all()
    with pytest.raises(InputError, match=r"needs 'order' or 'started_at'.*only placeholders \(-1 / NaT"):
        plot.drift(ds, reg=reg)


def test_report_says_in_one_line_why_drift_and_phases_are_missing(study, tmp_path):
    ds, reg = study
    files = analysis.report(ds, tmp_path, reg=reg, workers=1)
    names = {p.stem for p in files.figures}
    assert "drift" not in names and "phases" not in names and "latency" in names
    page = files.html.read_text()
    assert page.count("Figure drift not drawn: ") == 1 and page.count("Figure phases not drawn: ") == 1


def test_kv_legend_names_only_what_is_drawn(study):
    ds, reg = study
    fig = plot.kv_speedup(ds, reg=reg)
    try:
        bands = [c for ax in fig.axes for c in ax.collections if (c.get_gid() or "").startswith("ci-")]
        assert bands == []  # one trial: no bootstrap CI to draw
        labels = _legend(fig)
        assert "95% bootstrap CI" not in labels
        assert "collapse" in labels  # the kv_ablation pair collapses at 512: shaded, and named
        assert any((p.get_gid() or "").startswith("regime-collapse") for ax in fig.axes for p in ax.patches)
        assert "budgets between not measured" in labels  # 384 -> 512 -> 640 skip budgets of the dataset
    finally:
        _close(fig)


def test_kv_legend_names_the_band_when_drawn():
    from analysis.synthetic import make_dataset

    ds = make_dataset(seed=0, step_time=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = plot.kv_speedup(ds)
    try:
        assert any((c.get_gid() or "").startswith("ci-") for ax in fig.axes for c in ax.collections)
        assert "95% bootstrap CI" in _legend(fig)
    finally:
        _close(fig)


@pytest.mark.parametrize("name", ["latency", "decode_per_token", "memory"])
def test_no_band_or_solid_line_over_budgets_a_series_did_not_run(study, name):
    ds, reg = study
    fig = getattr(plot, name)(ds, reg=reg)
    budgets = np.asarray(ds["budget"].values, dtype=float)
    try:
        spans = plot.regime_extents(fig)
        assert spans
        for n, gid, lo, hi in spans:
            ax = fig.axes[n]
            solid = [ln for ln in ax.lines if (ln.get_gid() or "").split("-")[0] in ("median", "mem_device_peak")
                     and not (ln.get_gid() or "").endswith("-gap")]
            measured = {float(x) for ln in solid for x in np.asarray(ln.get_xdata(), dtype=float) if np.isfinite(x)}
            inside = budgets[(budgets >= lo) & (budgets <= hi)]
            assert set(inside) <= measured, (name, gid, lo, hi, sorted(measured))  # every budget under it ran
        # the prompt_ablation series ran 496, 512, 624, 640: 512-624 is two spans, not one band over the gap
        if name == "latency":
            title = next(n for n, ax in enumerate(fig.axes)
                         if "prompt_ablation" in ax.get_title() and "prompt 65" in ax.get_title())
            assert sorted((lo, hi) for n, _, lo, hi in spans if n == title) == [(512, 512), (624, 624)]
        for ax in _visible(fig):
            for ln in ax.lines:
                gid = ln.get_gid() or ""
                if gid.startswith("median-") and not gid.endswith("-gap"):
                    x = np.asarray(ln.get_xdata(), dtype=float)
                    for a, b in zip(x[:-1], x[1:]):  # a solid stretch joins neighbours on the budget axis only
                        if np.isfinite(a) and np.isfinite(b):
                            assert not ((budgets > a) & (budgets < b)).any(), (gid, a, b)
    finally:
        _close(fig)


def test_latency_legend_matches_the_artists(study):
    ds, reg = study
    fig = plot.latency(ds, reg=reg)
    try:
        labels = _legend(fig)
        lines = [ln.get_gid() or "" for ax in fig.axes for ln in ax.lines]
        patches = [p.get_gid() or "" for ax in fig.axes for p in ax.patches]
        assert ("anomalous regime" in labels) == any(g.startswith("regime-") for g in patches)
        assert ("95% interval of a boundary" in labels) == any("interval" in g for g in lines)
        assert ("expected scaling (baseline)" in labels) == any(g.startswith("baseline-") for g in lines)
        assert ("budgets between not measured" in labels) == any(g.endswith("-gap") for g in lines)
        # series of one budget: no curve, so no panel (the regimes analysis did not apply); the legend says so
        assert any("of one budget not drawn" in t for t in labels)
        for ax in _visible(fig):
            medians = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("median-")]
            xs = {float(x) for ln in medians for x in np.asarray(ln.get_xdata(), dtype=float) if np.isfinite(x)}
            assert len(xs) >= 2, ax.get_title()
    finally:
        _close(fig)


def test_the_last_row_of_the_grid_is_at_least_half_full(study):
    ds, reg = study
    fig = plot.latency(ds, reg=reg)
    try:
        n = len(_visible(fig))
        ncols = len({round(ax.get_position().x0, 3) for ax in fig.axes})
        last = n - (math.ceil(n / ncols) - 1) * ncols
        assert last * 2 >= ncols, (n, ncols)
    finally:
        _close(fig)
    for n in range(2, 40):
        for want in (2, 3):
            c = fit_columns(n, want)
            assert (n - (math.ceil(n / c) - 1) * c) * 2 >= c, (n, want, c)
