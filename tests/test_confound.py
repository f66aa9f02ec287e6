"""analysis.detect.confound: the clustering test's exact null, its decisions by design, and the host-state covariate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.detect import confound


@pytest.mark.parametrize(("m", "n"), [(6, 2), (9, 3), (12, 4), (10, 10)])
def test_span_p_is_the_exact_distribution_of_the_span(m, n):
    spans = np.array([c[-1] - c[0] + 1 for c in itertools.combinations(range(m), n)])
    for L in range(1, m + 2):
        assert confound.span_p(L, n, m) == pytest.approx(np.mean(spans <= L), abs=1e-12)


def test_clustering_p_is_a_valid_p_value_over_every_placement():
    """Every placement of a 3-run segment (one budget, 3 trials) among the 12 runs of its series, all equally
    likely under random order: P(p <= a) <= a at every level a (exact, not simulated)."""
    E = np.zeros((1, 4, 3))
    others = np.random.default_rng(0).permutation(9)  # the other 9 runs keep one shuffled order
    ps = []
    for seg in itertools.combinations(range(12), 3):
        rest = np.array([i for i in range(12) if i not in seg], dtype=float)
        tkey = np.concatenate([np.array(seg, dtype=float), rest[others]]).reshape(1, 4, 3)
        tc = confound.prepare(tkey, E, np.ones(E.shape, dtype=bool))
        ps.append(confound.segment_clustering(tc, E, 0, np.array([0])).p)
    ps = np.array(ps)
    assert ps.size == 220 and ps.min() == pytest.approx(10 / 220)  # 10 placements of 3 adjacent runs
    for a in (0.01, 0.05, 0.1, 0.25, 0.5, 0.9):
        assert np.mean(ps <= a) <= a + 1e-12


def _sweep(order: str, S: int = 10, nb: int = 12, T: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = S * nb * T
    if order == "random":
        return rng.permutation(n).reshape(S, nb, T).astype(float)
    if order == "sequential":
        return np.arange(n, dtype=float).reshape(S, nb, T)
    cells = rng.permutation(S * nb)  # isolation per cell: every cell's trials back to back, cells in random order
    return (cells[:, None] * T + np.arange(T)[None, :]).reshape(S, nb, T).astype(float)


@pytest.mark.parametrize("rows", [[5], [4, 5], [2, 3, 4, 5]])
def test_random_order_rarely_clusters_and_sequential_always(rows):
    rows = np.array(rows)
    called = []
    for seed in range(200):
        tkey = _sweep("random", seed=seed)
        E = np.zeros(tkey.shape)
        tc = confound.prepare(tkey, E, np.ones(tkey.shape, dtype=bool))
        called.append(confound.segment_clustering(tc, E, seed % 10, rows).clustered)
    assert np.mean(called) <= 0.03  # level 0.01; 200 sweeps
    tkey = _sweep("sequential")
    E = np.zeros(tkey.shape)
    tc = confound.prepare(tkey, E, np.ones(tkey.shape, dtype=bool))
    got = confound.segment_clustering(tc, E, 3, rows)
    assert got.clustered and got.unit == "series"
    assert confound.check_segment(tc, E, np.ones(tkey.shape, dtype=bool), 3, rows, np.log(2.0), alpha=0.05)[0]


def test_cell_blocks_are_the_units_when_every_cell_ran_as_one_block():
    tkey = _sweep("cells", seed=3)
    E = np.zeros(tkey.shape)
    tc = confound.prepare(tkey, E, np.ones(tkey.shape, dtype=bool))
    assert tc.blocked.all() and not tc.ordered.any()
    one = confound.segment_clustering(tc, E, 0, np.array([6]))
    assert one.unit == "cell" and one.clustered and one.p == 1.0  # one cell is one block in time
    four = confound.segment_clustering(tc, E, 0, np.arange(4, 8))
    assert four.unit == "cell" and four.p > 0.01 and not four.clustered


def test_budgets_run_later_as_a_block_cluster_in_a_random_sweep():
    """Refinement runs new budgets after the grid: a segment of them is one block at the end of the series."""
    tkey = _sweep("random", seed=1)
    tkey[:, 8:10] += 10_000.0
    E = np.zeros(tkey.shape)
    tc = confound.prepare(tkey, E, np.ones(tkey.shape, dtype=bool))
    got = confound.segment_clustering(tc, E, 2, np.array([8, 9]))
    assert got.unit == "run" and got.clustered and got.p < 1e-4


def test_small_series_are_not_ordered_by_chance_but_declared_ones_are():
    tkey = np.array([[[0.0], [1.0], [2.0], [3.0]]])  # 4 runs in budget order: 1 random order in 12 does that
    E = np.zeros(tkey.shape)
    normal = np.ones(tkey.shape, dtype=bool)
    assert not confound.prepare(tkey, E, normal).ordered[0]
    assert confound.prepare(tkey, E, normal, sequential=np.array([True])).ordered[0]


def test_host_state_takes_the_k_nearest_normal_runs_of_other_cells():
    # one series, 4 budgets x 2 trials; execution times below; residual = 10 * budget + trial
    tkey = np.array([[[0.0, 1.0], [2.0, 7.0], [3.0, 4.0], [5.0, 6.0]]])
    E = 10.0 * np.arange(4)[None, :, None] + np.arange(2)[None, None, :]
    normal = np.ones(E.shape, dtype=bool)
    normal[0, 3, 0] = False  # time 5 is not a reference run
    g = confound.host_state(tkey, E, normal, k=2)
    # run at t=0 (budget 0): nearest other-cell normal runs t=2 (10), t=3 (20) -> 15
    assert g[0, 0, 0] == 15.0
    # run at t=4 (budget 2): own cell (t=3) left out, t=5 not normal; t=2 (10) and t=6 (31) -> 20.5
    assert g[0, 2, 1] == 20.5
    # run at t=7 (budget 1): nearest t=6 (31) and t=4 (21) -> 26
    assert g[0, 1, 1] == 26.0
    tkey[0, 0, 0] = np.nan
    assert np.isnan(confound.host_state(tkey, E, normal, k=2)[0, 0, 0])


def test_host_state_keeps_sweeps_apart():
    tkey = np.stack([np.arange(8.0).reshape(4, 2), np.arange(8.0).reshape(4, 2)])  # two files, both keyed by order
    E = np.stack([np.zeros((4, 2)), np.ones((4, 2))])
    normal = np.ones(E.shape, dtype=bool)
    together = confound.host_state(tkey, E, normal, k=3)
    apart = confound.host_state(tkey, E, normal, k=3, group=np.array([0, 1]))
    assert np.all(apart[0] == 0.0) and np.all(apart[1] == 1.0)
    assert not np.allclose(together, apart)


def test_host_state_adjustment_recovers_a_host_episode():
    """20 series x 16 budgets x 3 trials in random order; a slow host state (a random walk over time) adds
    0.8 of itself to every run's log latency; the adjustment finds beta and takes the host noise out."""
    rng = np.random.default_rng(7)
    S, nb, T = 20, 16, 3
    tkey = rng.permutation(S * nb * T).reshape(S, nb, T).astype(float)
    walk = np.cumsum(rng.normal(0, 0.05, S * nb * T))
    walk -= walk.mean()
    E = 0.8 * walk[tkey.astype(int)] + rng.normal(0, 0.05, (S, nb, T))
    normal = np.ones(E.shape, dtype=bool)
    g = confound.host_state(tkey, E, normal, k=6)
    assert np.corrcoef(E.ravel(), g.ravel())[0, 1] > 0.8
    Ea, beta = confound.adjust_host_state(E, g, normal)
    assert beta.shape == (S,) and np.all(np.abs(beta - 1.0) < 0.25)  # the host state is E's own scale: beta ~ 1
    _Ef, beta_f = confound.adjust_host_state(E, g, normal, by=np.zeros(S))
    assert np.ptp(beta_f) == 0.0 and abs(beta_f[0] - 1.0) < 0.1
    assert Ea.std() < 0.5 * E.std()


def test_adjustment_leaves_runs_without_host_state_alone():
    E = np.arange(24.0).reshape(2, 4, 3) / 24
    g = E.copy()
    g[0, 0, 0] = np.nan
    Ea, beta = confound.adjust_host_state(E, g, np.ones(E.shape, dtype=bool), min_runs=30)
    assert np.all(np.isnan(beta)) and np.array_equal(Ea, E)
    Ea, beta = confound.adjust_host_state(E, g, np.ones(E.shape, dtype=bool))
    assert Ea[0, 0, 0] == E[0, 0, 0] and np.allclose(beta, 1.0)


def test_check_segment_separates_a_regime_from_a_host_episode():
    rng = np.random.default_rng(0)
    S, nb, T = 20, 10, 5
    tkey = rng.permutation(S * nb * T).reshape(S, nb, T).astype(float)
    base = rng.normal(0, 0.03, (S, nb, T))
    normal = np.ones((S, nb, T), dtype=bool)
    normal[0, 4] = False
    regime = base.copy()
    regime[0, 4] += np.log(2.0)
    tc = confound.prepare(tkey, regime, normal)
    clustered, p_time, survives = confound.check_segment(tc, regime, normal, 0, np.array([4]), np.log(2.0), alpha=0.05)
    assert not clustered and survives and p_time < 1e-6
    near = (np.abs(tkey[..., None] - tkey[0, 4][None, None, None, :]) <= 6).any(axis=-1)
    episode = np.where(near, base + np.log(2.0), base)
    tc = confound.prepare(tkey, episode, normal)
    clustered, _p, survives = confound.check_segment(tc, episode, normal, 0, np.array([4]), np.log(2.0), alpha=0.05)
    assert not clustered and not survives


def test_host_state_checks_its_inputs():
    with pytest.raises(ValueError, match="k must be"):
        confound.host_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.ones((1, 2, 2), bool), k=0)
    with pytest.raises(ValueError, match="one shape"):
        confound.host_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)), np.ones((1, 2, 2), bool))


@pytest.mark.parametrize("order", ["random", "cells", "sequential"])
def test_host_state_equals_brute_force(order):
    S, nb, T, k = 4, 6, 3, 5
    tkey = _sweep(order, S=S, nb=nb, T=T, seed=5)
    tkey[0, 0, 0] = tkey[1, 1, 1] = np.nan
    rng = np.random.default_rng(2)
    E = rng.normal(size=tkey.shape)
    E[2, 3, 0] = np.nan
    normal = rng.random(tkey.shape) > 0.2
    by_time = confound.host_state(tkey, E, normal, k=k, nearest="time")
    by_order = confound.host_state(tkey, E, normal, k=k)
    want_time = np.full(E.shape, np.nan)
    want_order = np.full(E.shape, np.nan)
    for s, b, t in np.ndindex(*E.shape):
        if not np.isfinite(tkey[s, b, t]):
            continue
        ok = normal & np.isfinite(E) & np.isfinite(tkey)
        ok[s, b] = False
        d = np.abs(tkey[ok] - tkey[s, b, t])
        want_time[s, b, t] = np.median(E[ok][np.lexsort((tkey[ok], d))[:k]])  # ties: the earlier run
        srt = np.argsort(tkey[ok], kind="stable")
        te, ee = tkey[ok][srt], E[ok][srt]
        before, after = list(ee[te < tkey[s, b, t]][::-1]), list(ee[te >= tkey[s, b, t]])
        take, n_before, n_after = [], 0, 0
        while len(take) < k and (before or after):  # one before, one after, in turn
            if before and (not after or n_before <= n_after):
                take.append(before.pop(0))
                n_before += 1
            else:
                take.append(after.pop(0))
                n_after += 1
        want_order[s, b, t] = np.median(take)
    np.testing.assert_allclose(by_time, want_time, equal_nan=True)
    np.testing.assert_allclose(by_order, want_order, equal_nan=True)
