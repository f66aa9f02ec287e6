"""analysis.plot.pvalue_qq: the calibration figure of the scan p-values (real null files, no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis import plot
from analysis.errors import InputError
from analysis.plot.calibration import BAND_GID, POINTS_GID, pvalues_of
from analysis.regimes import regimes

ROOT = Path(__file__).resolve().parent.parent
NULL = [ROOT / "tests" / "data" / "real" / n for n in ("cuda-loop-ends-t3-medium.nc", "cpu-xeon-generate-step-t5-on.nc")]


def _artist(fig, gid):
    ax = fig.axes[0]
    return [a for a in (*ax.lines, *ax.collections) if a.get_gid() == gid]


def test_real_null_results_give_one_point_per_series_with_the_uniform_band(tmp_path):
    results = [regimes(analysis.open_dataset(p)) for p in NULL]
    fig = plot.pvalue_qq(results)
    expected = np.concatenate([np.asarray(r["p_series"].values, dtype=float).ravel() for r in results])
    expected = expected[np.isfinite(expected)]
    (points,) = _artist(fig, POINTS_GID)
    assert points.get_xydata().shape == (expected.size, 2)
    # the points are the sorted p-values on -log10 axes
    np.testing.assert_allclose(np.sort(10 ** -points.get_ydata()), np.sort(expected), rtol=1e-12)
    assert len(_artist(fig, BAND_GID)) == 1
    assert "below 0.05" in fig._suptitle.get_text() and "SIMULATED" not in fig._suptitle.get_text()
    fig.savefig(tmp_path / "qq.png")
    assert (tmp_path / "qq.png").stat().st_size > 1000


def test_uniform_p_values_lie_in_the_band_and_a_liberal_test_leaves_it():
    rng = np.random.default_rng(3)
    fig = plot.pvalue_qq(rng.uniform(size=400))
    (band,) = _artist(fig, BAND_GID)
    (points,) = _artist(fig, POINTS_GID)
    inside = np.array([band.get_paths()[0].contains_point(xy, radius=1e-9) for xy in points.get_xydata()])
    assert inside.mean() > 0.9
    liberal = plot.pvalue_qq(rng.uniform(size=400) ** 3)  # far too many small p-values
    (points,) = _artist(liberal, POINTS_GID)
    assert np.mean([band.get_paths()[0].contains_point(xy) for xy in points.get_xydata()]) < 0.5


def test_bad_input_is_refused_with_the_value():
    with pytest.raises(InputError, match="1.5"):
        plot.pvalue_qq(np.array([0.2, 1.5]))
    with pytest.raises(InputError, match="no finite"):
        plot.pvalue_qq(np.array([np.nan]))
    ds = analysis.open_dataset(NULL[0])
    with pytest.raises(InputError, match="p_series"):
        pvalues_of(ds)
