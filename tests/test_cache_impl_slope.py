"""benchmarks/cache_impl_slope.py: per-run OLS slopes of step time over step index, pooled per series."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.synthetic import make_dataset
from collector.dataset import schema
from collector.shared.sim import MODEL_COSTS
from repo_scripts import load_script

slope = load_script("benchmarks/cache_impl_slope.py")


def test_recovers_the_simulated_per_context_cost(tmp_path: Path) -> None:
    # sim decode step k costs step_base + step_per_ctx * (P + k): the slope over k is step_per_ctx
    ds = make_dataset(seed=3, caches=(True,), budgets=(64, 128), trials=3, regimes=(), noise_cv=0.0, step_cv=0.001,
                      drift=0.0, run_state_prob=0.0, attns=("sdpa", "eager"), cache_impls=("dynamic", "static"))
    runs = slope.run_slopes(ds)
    assert len(runs) == 2 * 2 * 2 * 3
    rows = slope.series_slopes(runs)
    assert {(r.series["attn"], r.series["cache_impl"]) for r in rows} == {
        (a, c) for a in ("sdpa", "eager") for c in ("dynamic", "static")}
    want = MODEL_COSTS["gpt2"].step_per_ctx * 1e6
    for r in rows:
        assert r.n_runs == 6 and r.slope_us == pytest.approx(want, rel=0.05) and r.lo_us < r.slope_us < r.hi_us
        assert not r.flat
    assert "| attn | cache_impl | runs |" in slope.table(rows)
    path = tmp_path / "s.nc"
    schema.save(ds, path)
    assert slope.main([str(path), "--csv", str(tmp_path / "runs.csv")]) == 0
    assert (tmp_path / "runs.csv").read_text().count("\n") == 1 + len(runs)


def test_refuses_data_without_step_times() -> None:
    ds = make_dataset(seed=0, budgets=(64, 128), trials=2, step_time=False)
    with pytest.raises(SystemExit, match="no step_time"):
        slope.run_slopes(ds)
