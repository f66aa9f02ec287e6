"""Adaptive refinement: the boundary criterion, and the bisection search on the sim device."""

from __future__ import annotations

import numpy as np
import pytest

from collector.measuring.environment import collect
from collector.shared.errors import ConfigError
from collector.sweep.journal import Journal
from collector.sweep.refine import find_boundaries, levels, next_budgets
from collector.sweep.runner import run_sweep
from collector.sweep.spec import build_spec

GRID = list(range(8, 65, 8))


def _samples(budgets, *, lo=21, hi=36, factor=3.0, trials=3, cv=0.03, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for b in budgets:
        base = 0.005 + 0.007 * b
        if lo <= b <= hi:
            base *= factor
        out[b] = list(base * np.exp(rng.normal(0, cv, trials)))
    return out


def test_boundaries_of_a_planted_step():
    found = find_boundaries(_samples(GRID), grid=GRID, resolution=1)
    assert [(b.lo, b.hi) for b in found] == [(16, 24), (32, 40)]
    assert found[0].jump == pytest.approx(3.0, rel=0.15) and found[1].jump == pytest.approx(1 / 3, rel=0.15)
    assert not any(b.located for b in found)
    assert sorted(next_budgets(_samples(GRID), grid=GRID, resolution=1)) == [20, 36]  # equal gaps, jumps 3 and 1/3


def test_smooth_series_has_no_boundaries():
    for seed in range(5):
        assert find_boundaries(_samples(GRID, factor=1.0, seed=seed), grid=GRID, resolution=1) == []


def test_quadratic_trend_is_not_a_boundary():
    rng = np.random.default_rng(1)
    samples = {b: list((0.01 + 0.002 * b + 0.0004 * b * b) * np.exp(rng.normal(0, 0.03, 3))) for b in GRID}
    assert find_boundaries(samples, grid=GRID, resolution=1) == []


def test_single_trial_uses_the_spread_of_the_levels():
    found = find_boundaries(_samples(GRID, trials=1, cv=0.02), grid=GRID, resolution=1)
    assert [(b.lo, b.hi) for b in found] == [(16, 24), (32, 40)]
    assert levels(_samples(GRID, trials=1), grid=GRID).n == (1,) * len(GRID)


def test_located_pairs_and_measured_budgets_are_not_proposed():
    budgets = GRID + [20, 21, 36, 37]
    samples = _samples(budgets)
    found = find_boundaries(samples, grid=GRID, resolution=1)
    assert [(b.lo, b.hi, b.located) for b in found] == [(20, 21, True), (36, 37, True)]
    assert next_budgets(samples, grid=GRID, resolution=1) == []
    assert next_budgets(_samples(GRID), grid=GRID, resolution=1, measured=[20]) == [36]


def test_failed_budgets_and_too_few_budgets():
    samples = _samples(GRID)
    samples[24] = []  # every run failed there
    assert (16, 32) in [(b.lo, b.hi) for b in find_boundaries(samples, grid=GRID, resolution=1)]
    assert next_budgets(samples, grid=GRID, resolution=1, measured=GRID) == [36]  # 24 is not tried again
    assert find_boundaries(_samples([8, 16, 24]), grid=[8, 16, 24], resolution=1) == []


@pytest.mark.parametrize("kw, match", [({"resolution": 0}, "resolution must be >= 1 token, got 0"),
                                       ({"resolution": 1, "z": 0}, "z must be > 0")])
def test_bad_settings(kw, match):
    with pytest.raises(ConfigError, match=match):
        find_boundaries(_samples(GRID), grid=GRID, **kw)


# --------------------------------------------------------------------------- on the sim device
def _sweep(tmp_path, name="r.journal", stop=None, **kw):
    settings = dict(models="gpt2", devices="sim", budgets="8:64:8", trials=3, caches="on", warmup=0, refine=1,
                    sim={"noise_cv": 0.03, "regimes": [{"start": 21, "end": 36, "factor": 3.0}]})
    settings.update(kw)
    spec = build_spec(settings, defaults=False)
    path = tmp_path / name
    j = Journal.open(path, write=True) if path.exists() else Journal.create(
        path, spec=spec.to_dict(), environment=collect(spec.devices))
    with j:
        res = run_sweep(spec, j, should_stop=stop)
        rows = list(j.rows())
    return spec, res, rows


@pytest.mark.process
@pytest.mark.parametrize("resolution", [1, 4])
def test_refinement_locates_both_boundaries_with_few_runs(tmp_path, resolution):
    spec, res, rows = _sweep(tmp_path, refine=resolution)
    (series, found), = res.boundaries.items()
    assert all(b.located and b.hi - b.lo <= resolution for b in found)
    assert [b.jump > 1 for b in found] == [True, False]
    assert found[0].lo < 21 <= found[0].hi and found[1].lo <= 36 < found[1].hi
    dense = len(range(8, 65, resolution)) * spec.trials  # a dense sweep over the grid's span at that resolution
    assert len(rows) < (dense / 2 if resolution == 1 else dense)
    assert res.refine_runs == len(rows) - spec.n_runs > 0


@pytest.mark.process
def test_no_regime_no_refinement(tmp_path):
    _, res, rows = _sweep(tmp_path, sim={"noise_cv": 0.03})
    assert res.refine_runs == 0 and res.boundaries == {} and len(rows) == 24


@pytest.mark.process
def test_run_limit_is_respected(tmp_path):
    spec, res, rows = _sweep(tmp_path, refine_max_runs=7)
    assert res.refine_runs == 6 and len(rows) == spec.n_runs + 6  # whole budgets only: 2 budgets x 3 trials
    assert not res.interrupted


@pytest.mark.process
def test_resume_mid_refinement_finishes_the_same_search(tmp_path):
    _, ref, ref_rows = _sweep(tmp_path, name="ref.journal")
    count = {"n": 0}

    def stop():
        count["n"] += 1
        return count["n"] > 40  # polled before each run: stops inside the refinement rounds

    _, first, _ = _sweep(tmp_path, stop=stop)
    assert first.interrupted
    _, second, rows = _sweep(tmp_path)
    assert not second.interrupted
    assert sorted({r.key.budget for r in rows}) == sorted({r.key.budget for r in ref_rows})
    assert len(rows) == len(ref_rows) == len({r.key for r in rows})
