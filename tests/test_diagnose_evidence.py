"""The evidence of one condition (collector.diagnose.evidence): sides, effect, the runs a cell still needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.diagnose.evidence import needs, read, read_pooled
from collector.diagnose.target import Target


def _target(effect: float = 2.0, sigma: float = 0.05) -> Target:
    budgets = tuple(range(16, 257, 16))
    return Target(number=1, series={"model": "gpt2"}, first=96, last=144, lo=80, hi=160, effect=effect, sigma=sigma,
                  budgets=budgets, log_baseline=tuple(float(np.log(0.01 + 0.001 * b)) for b in budgets))


def _runs(t: Target, b: int, factor: float, n: int, seed: int, level: float = 1.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(math.exp(t.shape(b)) * level * factor * np.exp(rng.normal(0, t.sigma, n)))


def test_sides_and_effect_of_a_condition() -> None:
    t = _target()
    samples = {80: _runs(t, 80, 1, 2, 0), 160: _runs(t, 160, 1, 2, 1), 96: _runs(t, 96, 2, 2, 2),
               144: _runs(t, 144, 1, 2, 3)}
    r = read(samples, reference=(80, 160), tested=(96, 144), target=t)
    assert r.sides[96].side == "in" and r.sides[144].side == "out" and not r.all("in") and r.settled
    assert r.runs == 8 and r.df == 4  # four cells of two runs: the runs' own pooled noise (3 df or more)
    one = read({b: v[:1] for b, v in samples.items()}, reference=(80, 160), tested=(96, 144), target=t, min_trials=1)
    assert one.df == math.inf and one.sigma == t.sigma  # no cell with two runs: the file's noise
    r2 = read({b: v for b, v in samples.items() if b != 144}, reference=(80, 160), tested=(96,), target=t)
    assert r2.all("in") and math.exp(r2.log_effect) == pytest.approx(2.0, rel=0.1)


def test_a_condition_slower_everywhere_is_no_regime() -> None:
    t = _target()  # eager attention, a longer prompt: every budget x1.6, the tested cells not otherwise slowed
    samples = {b: _runs(t, b, 1, 2, b, level=1.6) for b in (80, 96, 144, 160)}
    r = read(samples, reference=(80, 160), tested=(96, 144), target=t)
    assert r.all("out") and abs(r.log_effect) < 0.1


def test_reference_level_is_interpolated_between_reference_budgets() -> None:
    t = _target()  # the session's curve bends away from the file's: x1.0 at 80, x1.5 at 160
    samples = {80: _runs(t, 80, 1, 2, 0), 160: _runs(t, 160, 1, 2, 1, level=1.5),
               120: _runs(t, 120, 1, 2, 2, level=1.25)}
    r = read(samples, reference=(80, 160), tested=(120,), target=t)
    assert r.sides[120].side == "out" and abs(r.log_effect) < 0.05


def test_needs_min_trials_then_only_open_cells() -> None:
    t = _target(sigma=0.3)
    samples = {80: _runs(t, 80, 1, 2, 0), 160: _runs(t, 160, 1, 2, 1), 96: [math.exp(t.shape(96)) * 1.2]}
    r = read(samples, reference=(80, 160), tested=(96, 144), target=t)
    want = needs(samples, r, min_trials=2, max_trials=6)
    assert want == {96: 1, 144: 2}  # references wait until a tested cell with its 2 runs is still open
    samples[96].append(math.exp(t.shape(96)) * 1.2)
    samples[144] = _runs(t, 144, 1, 2, 4)
    r = read(samples, reference=(80, 160), tested=(96, 144), target=t)
    assert r.sides[96].side == "open"  # x1.2 at sigma 0.3, halfway between out and in: undecided after 2 runs
    want = needs(samples, r, min_trials=2, max_trials=6)
    assert want[96] == 1 and want[80] == want[160] == 1  # and the references with it
    assert needs(samples, r, min_trials=2, max_trials=2) == {}


def test_pooled_processes_each_relative_to_its_own_reference() -> None:
    t = _target()
    parts = {p: {80: _runs(t, 80, 1, 1, 10 * p, level=lvl), 160: _runs(t, 160, 1, 1, 10 * p + 1, level=lvl),
                 96: _runs(t, 96, 2, 1, 10 * p + 2, level=lvl), 144: _runs(t, 144, 2, 1, 10 * p + 3, level=lvl)}
             for p, lvl in enumerate((1.0, 1.7, 0.8))}  # one process runs x1.7 slow as a whole
    r = read_pooled(parts, reference=(80, 160), tested=(96, 144), target=t)
    assert r.all("in") and math.exp(r.log_effect) == pytest.approx(2.0, rel=0.1)
