"""Verdicts of ``collector diagnose`` from measured samples: a factor's sweep and refine run in different
processes, so a regime whose size varies between processes is not *moved* by the factor asked."""

from __future__ import annotations

import math

import numpy as np

from collector.diagnose.execute import Cells, Measured
from collector.diagnose.target import Target
from collector.diagnose.verdict import _between_processes, judge

BUDGETS = (96, 112, 176, 192)
TARGET = Target(number=1, series={"model": "gpt2"}, first=112, last=176, lo=96, hi=192, effect=2.5, sigma=0.02,
                budgets=BUDGETS, log_baseline=tuple(math.log(0.01 * b) for b in BUDGETS))
CELLS = Cells(lo=96, first=112, last=176, hi=192, reproduced=True, located=(True, True))


def _condition(effect: float, rng: np.random.Generator, runs: int = 3) -> dict[int, list[float]]:
    """Latencies of the four cells: the reference budgets normal, the tested ones ``effect`` times slower."""
    return {b: list(0.01 * b * (effect if b in (112, 176) else 1.0) * np.exp(rng.normal(0, 0.02, runs)))
            for b in BUDGETS}


def _measured(refine: float, processes: tuple[float, ...], attn: float) -> Measured:
    rng = np.random.default_rng(7)
    m = Measured(target=TARGET, cells=CELLS)
    m.samples["refine"] = {0: _condition(refine, rng)}
    if processes:
        m.samples["process"] = {p: _condition(e, rng) for p, e in enumerate(processes)}
    m.samples["attn"] = {0: _condition(attn, rng)}
    m.extra["attn"] = {"value": "eager", "of": "default"}
    for name in ("refine", "process", "attn"):
        m.status[name] = "done"
    return m


def _attn(rows):
    return next(r for r in rows if r.factor == "attn")


def test_a_regime_whose_size_varies_between_processes_is_not_moved_by_a_factor():
    # as on the GPU: x2.83 in refine's process, x1.74 / x1.99 / x2.35 in three fresh ones, x2.12 with eager attention
    m = _measured(2.83, (1.74, 1.99, 2.35), 2.12)
    tau2, df = _between_processes(m, None)
    assert (tau2, df) == (0.0, math.inf)  # no reference reading: nothing to compare
    row = _attn(judge([m], ("refine", "process", "attn")))
    assert row.verdict == "stayed", row
    assert row.lo < 1.0 < row.hi and "between processes" in row.detail
    # the same runs without the process question: the between-process spread is unknown, the effects differ
    row = _attn(judge([m], ("refine", "attn")))
    assert row.verdict == "moved", row


def test_a_factor_that_moves_the_effect_beyond_the_process_spread_is_moved():
    m = _measured(2.5, (2.45, 2.55, 2.5), 1.5)
    row = _attn(judge([m], ("refine", "process", "attn")))
    assert row.verdict == "moved", row
    assert row.hi < 0.8


def test_processes_that_agree_add_no_variance():
    m = _measured(2.5, (2.5, 2.5, 2.5), 2.5)
    from collector.diagnose.evidence import read

    ref = read(m.samples["refine"][0], reference=CELLS.reference, tested=CELLS.tested, target=TARGET)
    tau2, df = _between_processes(m, ref)
    assert tau2 == 0.0 and df == 3.0
