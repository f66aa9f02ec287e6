"""analysis.plot.power: each series' simulated power curve and its mde, on a real file (no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis import plot
from analysis.errors import InputError
from analysis.plot.power import CURVE_GID, MDE_GID
from analysis.regimes import regimes

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "real" / "cuda-loop-ends-t3-medium.nc"


def _lines(fig, prefix):
    return sorted((a for a in fig.axes[0].lines if str(a.get_gid()).startswith(prefix)), key=lambda a: a.get_gid())


def test_each_series_curve_is_its_stated_power_and_its_mde_sits_on_the_80_percent_line(tmp_path):
    ds = analysis.open_dataset(REAL)
    reg = regimes(ds)
    fig = plot.power(ds, reg=reg, max_panels=12)
    curves = _lines(fig, CURVE_GID)
    power = reg["power"].transpose(..., "power_ratio").values.reshape(-1, reg.sizes["power_ratio"])
    mde = np.asarray(reg["mde"].values, dtype=float).ravel()
    finite = np.isfinite(power).any(axis=1)
    assert len(curves) == int(finite.sum()) >= 2
    # drawn smallest mde first: the first curve is the series with the smallest stated mde, point for point
    first = int(np.nanargmin(np.where(finite, mde, np.inf)))
    np.testing.assert_allclose(curves[0].get_ydata(), power[first][np.isfinite(power[first])])
    np.testing.assert_allclose(curves[0].get_xdata(), np.asarray(reg["power_ratio"].values)[np.isfinite(power[first])])
    marks = _lines(fig, MDE_GID)
    assert marks and all(m.get_ydata()[0] == 0.8 for m in marks)
    assert sorted(float(m.get_xdata()[0]) for m in marks) == pytest.approx(
        sorted(x for x in mde[finite] if 1.1 <= x <= 5.0))
    assert "SIMULATED" not in fig._suptitle.get_text()
    assert f"mde x{mde[first]:.2f}" in [t.get_text() for t in fig.legends[0].get_texts()][0]
    fig.savefig(tmp_path / "power.png")
    assert (tmp_path / "power.png").stat().st_size > 1000
    # fewer curves than series: the smallest mde kept, the rest counted
    few = plot.power(ds, reg=reg, max_panels=1)
    assert len(_lines(few, CURVE_GID)) == 1
    assert any(f"{int(finite.sum()) - 1} more series not drawn" in t.get_text() for t in few.legends[0].get_texts())


def test_a_result_without_a_power_curve_is_refused_with_the_reason():
    ds = analysis.open_dataset(REAL)
    reg = regimes(ds).drop_vars("power")
    with pytest.raises(InputError, match="no power curve for 'latency'"):
        plot.power(ds, reg=reg)
