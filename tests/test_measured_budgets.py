"""No regime, budget list, onset or figure band outside a series' own measured budgets (issue 20).

On the published study file every experiment measured its own budget grid: ``main_crossover`` and
``kv_ablation`` have no budget between 528 and 624, yet the per-budget flags of a regimes result cover the
stretch up to the next measured budget. Each consumer of those flags is checked on the real file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analysis
from analysis.cli.regimes import to_json
from analysis.core.measured import measured_anomalous, measured_blocks
from analysis.errors import InputError
from analysis.tables.results import regimes_series

STUDY = Path(__file__).resolve().parents[1] / "datasets" / "mps-m3max-study.nc"
GAP = [528, 544, 560, 576, 592, 608, 624]  # budgets main_crossover and kv_ablation never ran


@pytest.fixture(scope="module")
def study() -> tuple[xr.Dataset, xr.Dataset]:
    ds = analysis.open_dataset(STUDY)
    return ds, analysis.regimes(ds)


def _measured(ds: xr.Dataset) -> xr.DataArray:
    """Per series and budget: at least one run with a latency."""
    return ds["latency"].notnull().any("trial")


def test_measured_blocks_skip_budgets_never_run() -> None:
    anom = np.array([False, True, True, True, False, True])
    measured = np.array([True, True, False, True, True, False])
    assert measured_blocks(anom, measured) == [(1, 3)]  # 2 not run: neither part of the run nor a break
    assert measured_blocks(anom, np.ones(6, dtype=bool)) == [(1, 3), (5, 5)]
    assert measured_blocks(np.zeros(3, dtype=bool), np.ones(3, dtype=bool)) == []
    with pytest.raises(InputError, match=r"\(3,\).*\(2,\)"):
        measured_blocks(np.zeros(3, dtype=bool), np.ones(2, dtype=bool))


def test_the_study_has_the_gap_it_is_tested_on(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    m = _measured(ds).sel(device="mps", model="gpt2-medium", cache=True, prompt_len=65).squeeze(drop=True)
    for exp in ("main_crossover", "kv_ablation"):
        assert not bool(m.sel(experiment=exp, budget=GAP).any())
    # the raw per-budget flags do reach into the gap: the consumers must not pass that on
    raw = reg["anomalous"].sel(experiment="main_crossover", model="gpt2-medium", device="mps", cache=True,
                               prompt_len=65).squeeze(drop=True)
    kept = measured_anomalous(reg).sel(experiment="main_crossover", model="gpt2-medium", device="mps",
                                       cache=True, prompt_len=65).squeeze(drop=True)
    assert bool(kept.sel(budget=512)) and not bool(kept.sel(budget=GAP).any())
    assert bool(raw.sel(budget=512))


def test_measured_anomalous_is_within_measured(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    outside = measured_anomalous(reg) & ~_measured(ds)
    assert not bool(outside.any())


def test_phases_regimes_start_and_end_at_measured_budgets(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    ph = analysis.phases(ds, reg=reg)
    measured = _measured(ds)
    start, end = ph["regime_start"], ph["regime_end"]
    n = 0
    for key in zip(*np.nonzero(np.isfinite(start.values))):
        idx = dict(zip(start.dims, key))
        sel = {d: start[d].values[i] for d, i in idx.items() if d != "regime"}
        a, b = float(start.isel(idx)), float(end.isel(idx))
        m = measured.sel(sel)
        assert bool(m.sel(budget=int(a))) and bool(m.sel(budget=int(b))), (sel, a, b)
        n += 1
    assert n == 7  # one regime per anomalous series, none of them in a gap
    mc = ph.sel(experiment="main_crossover", model="gpt2-medium", device="mps", cache=True, prompt_len=65)
    assert int(mc["n_regimes"].squeeze()) == 1
    assert float(mc["regime_end"].squeeze(drop=True)) == 512
    summary = ph.attrs["summary"]
    assert "528" not in summary.replace("budgets 512-624", "")


def test_backends_list_only_measured_budgets(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    bk = analysis.compare_backends(ds, reg=reg)
    for exp in ("main_crossover", "kv_ablation"):
        text = str(bk["anomalous_budgets"].sel(experiment=exp, model="gpt2-medium", device="mps").item())
        assert text == "512", (exp, text)
    probe = str(bk["anomalous_budgets"].sel(experiment="instability_probe", model="gpt2-medium",
                                             device="mps").item())
    assert probe.split(",") == [str(b) for b in (512, *GAP)]  # the probe did run them


def test_per_series_table_and_json_list_only_measured_budgets(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    table = regimes_series(reg, only_with_regime=True)
    col = table.columns.index("anomalous budgets")
    rows = {row[0]: row[col] for row in table.rows}
    ghost = [(name, text) for name, text in rows.items()
             if ("main_crossover" in name or "kv_ablation" in name) and "528" in text]
    assert not ghost and rows
    measured = _measured(ds)
    for entry in to_json(reg)["series"]:
        sel = {d: v for d, v in entry["series"].items()}
        for b in entry["anomalous_budgets"]:
            assert bool(measured.sel(sel).sel(budget=b)), (sel, b)


def test_kv_boundaries_and_memory_stay_inside(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, reg = study
    measured = _measured(ds)
    kv = analysis.kv_speedup(ds, reg=reg)
    both = measured.all("cache")
    assert not bool((kv["collapse"] & ~both).any())
    bd = analysis.boundaries(ds, reg=reg)
    for name in ("onset_budget", "recovery_budget"):
        v = bd[name]
        for key in zip(*np.nonzero(np.isfinite(v.values))):
            idx = dict(zip(v.dims, key))
            b = float(v.isel(idx))
            sel = {d: v[d].values[i] for d, i in idx.items()}
            assert bool(measured.sel(sel).sel(budget=int(b))), (name, sel, b)


def test_figure_bands_start_and_end_at_measured_budgets(study: tuple[xr.Dataset, xr.Dataset]) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from analysis import plot

    ds, reg = study
    budgets_run = set(int(b) for b in ds["budget"].values[np.asarray(_measured(ds).any(
        [d for d in ds["latency"].dims if d not in ("budget", "trial")]).values)])
    fig = plot.latency(ds, reg=reg, max_panels=16)
    try:
        extents = plot.regime_extents(fig)
        assert extents
        for _, gid, lo, hi in extents:
            assert int(lo) in budgets_run and int(hi) in budgets_run, (gid, lo, hi)
        titles = " ".join(ax.get_title() for ax in fig.axes)
        for n, gid, lo, hi in extents:
            if "main_crossover" in fig.axes[n].get_title() or "kv_ablation" in fig.axes[n].get_title():
                assert hi <= 512, (gid, lo, hi, titles)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
