"""A stated spread (a harness file's per-value run sd over n runs) is a floor under the noise the test uses."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from analysis import regimes
from collector.dataset.study_import import import_study
from test_study_import import _row, _write_csv

#: 16 budgets, a smooth latency curve with 3 % scatter, and a x1.6 step at budget 320.
BUDGETS = list(range(128, 128 + 16 * 32, 32))


def _harness(tmp_path: Path, cv: float, samples: int = 5) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for b in BUDGETS:
        lat = (2.0 + b / 100) * float(np.exp(rng.normal(0, 0.03))) * (1.6 if b == 320 else 1.0)
        rows.append(_row(b, lat, std=cv * lat, samples=samples))
    return _write_csv(tmp_path / f"benchmark_results_cv{int(cv * 100)}.csv", rows)


def _one(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return regimes(ds).squeeze()


@pytest.mark.parametrize("cv", [0.02, 0.3])
def test_stated_sd_is_the_log_sd_of_a_mean_of_n_runs(tmp_path: Path, cv: float) -> None:
    r = _one(import_study([_harness(tmp_path, cv, samples=5)]))
    assert float(r.stated_sd) == pytest.approx(math.sqrt(math.log1p(cv**2) / 5), rel=1e-6)
    assert float(r.cell_sd) >= float(r.stated_sd) - 1e-12


def test_a_larger_stated_spread_never_makes_the_step_more_significant(tmp_path: Path) -> None:
    ps = []
    for cv in (0.02, 0.3, 0.9):
        d = tmp_path / f"cv{cv}"
        d.mkdir()
        ds = import_study([_harness(d, cv)])
        r = _one(ds)
        ps.append(float(r.p_series))
        if cv == 0.02:  # far below the 3 % scatter of the values: the floor does not bind, the step is found
            bare = _one(ds.drop_vars("request_latency"))
            assert np.isnan(float(bare.stated_sd))
            assert float(r.p_series) == pytest.approx(float(bare.p_series))
            assert float(r.p_series) < 0.01
    # a spread of 90 % over 5 runs (0.35 in log units for a mean) swallows a x1.6 step of one value
    assert ps[0] <= ps[1] <= ps[2] and ps[2] > 0.2


def test_no_stated_spread_in_a_measured_sweep() -> None:
    import analysis

    ds = analysis.open_dataset("tests/data/real/cpu-idle-loop-ends-t3-on.nc").load()
    assert bool(np.isnan(_one(ds).stated_sd).all())
