"""benchmarks/regimes_honesty.py on two small real files: plants, shuffles, power, coverage, oracle, rendering."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
honesty = load_script("benchmarks/regimes_honesty.py")

REAL = ROOT / "tests" / "data" / "real"
QUIET = str(REAL / "cpu-idle-loop-ends-t3-on.nc")  # 2 series, 16 budgets, 3 trials, per-run noise about 0.03
ONE = str(REAL / "cpu-idle-generate-ends-t5-on.nc")  # 1 series, 16 budgets, 5 trials


def test_plant_multiplies_latency_exactly_and_moves_decode_with_it() -> None:
    ds, r = honesty.null_result(QUIET)
    out = honesty.plant(ds, r, {1: (5, 2, 3.0)})
    before, after = honesty.series_runs(ds, r), honesty.series_runs(out, r)
    np.testing.assert_allclose(after[1, 5:7], 3.0 * before[1, 5:7], rtol=1e-12)
    rest = np.ones(after.shape[:2], dtype=bool)
    rest[1, 5:7] = False
    np.testing.assert_array_equal(after[rest], before[rest])  # every other cell as measured, bit for bit
    dec = honesty.series_runs(out, r, "decode_time")
    pre = honesty.series_runs(out, r, "prefill_time")
    np.testing.assert_allclose(dec[1, 5:7], after[1, 5:7] - pre[1, 5:7], rtol=1e-12)
    np.testing.assert_array_equal(dec[0], honesty.series_runs(ds, r, "decode_time")[0])


def test_interior_starts_never_touch_the_ends() -> None:
    rng = np.random.default_rng(0)
    for nb, w in ((16, 1), (16, 4), (8, 4), (6, 4)):
        starts = honesty.interior_starts(nb, w, 20, rng)
        assert len(starts) == len(set(starts)) == nb - w - 1
        assert min(starts) >= 1 and max(starts) + w - 1 <= nb - 2


def test_a_5x_plant_in_a_quiet_file_is_found_where_it_is() -> None:
    """Position 1 of each series: budgets whose 3 runs are spread over the execution order (position 0 of the
    second series holds a cell whose runs ran back to back, which cannot be told from a host episode)."""
    row = honesty.plant_job((QUIET, 5.0, 1, 1))
    assert len(row["per_series"]) == 2
    for tp, fp, fn in row["per_series"]:
        assert (tp, fp, fn) == (1, 0, 0)
    assert all(np.isfinite(row["mde"])) and all(1.0 < m < 1.5 for m in row["mde"])


def test_power_row_and_coverage_row_are_shares() -> None:
    recs = honesty.power_job((ONE, 1, 1.5, 1, "one"))
    assert len(recs) == 1 and not recs[0]["skipped"]
    ds, r = honesty.null_result(ONE)
    assert recs[0]["ratio"] == pytest.approx(float(r["mde"].squeeze()) ** 1.5)
    share, n = honesty.rate(x["found"] for x in recs)
    assert n == 1 and 0.0 <= share <= 1.0
    plants = [honesty.plant_job((ONE, 3.0, 4, 0))]
    lines = honesty.render_ci(plants, honesty.QUICK)
    row = next(line for line in lines if line.startswith("| 3x | 3+ trials"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "1"  # one planted series; a 3x step over 4 budgets of this quiet series is found
    for text in cells[4:]:
        assert 0.0 <= float(text.split()[0]) <= 1.0


def test_shuffled_file_gives_p_values() -> None:
    out = honesty.exact_job((QUIET, None, 0, 2))
    assert len(out["p"]) == 4 and all(0.0 <= p <= 1.0 for p in out["p"])
    sub = honesty.exact_job((ONE, 2, 0, 1))  # 2 of the 5 trials, shuffled
    assert sub["series"] == 1 and len(sub["p"]) == 1 and 0.0 <= sub["p"][0] <= 1.0


def test_oracle_on_gaussian_noise_is_between_one_test_and_bonferroni() -> None:
    """Gaussian runs (sd 0.1, 3 trials, 10 cells): the run-level oracle's 80 % step lies between (z_0.975 +
    z_0.8) and (Bonferroni over the 55 intervals + z_0.8) standard errors of a cell mean; the matched oracle
    (cell means drawn from the series' own) between the same bounds in units of their sd (40 cells, 820
    intervals: Bonferroni z 4.05), and at alpha / 4 higher than at alpha."""
    resid = np.random.default_rng(1).normal(0.0, 0.1, size=(10, 3))
    ratio = honesty.oracle_mde(resid, np.arange(1, 9), 4000, 2000, seed=2, cells=False)
    se = resid.std() / math.sqrt(3)
    assert (1.96 + 0.84) * se < math.log(ratio) < (3.32 + 0.84) * se
    resid = np.random.default_rng(3).normal(0.0, 0.1, size=(40, 3))
    sd = float(resid.mean(axis=1).std())
    at = [honesty.oracle_mde(resid, np.arange(1, 39), 4000, 2000, seed=2, level=lv) for lv in (0.05, 0.0125)]
    assert (1.96 + 0.84) * sd < math.log(at[0]) < math.log(at[1]) < (4.05 + 0.84) * sd


def test_the_scale_estimating_oracle_pays_for_the_scale_less_the_more_cells_there_are() -> None:
    """Gaussian cells (3 trials of sd 0.1): the unknown-variance likelihood-ratio scan needs a larger step than
    the oracle that knows the sd, by about what a t quantile on n - 1 degrees of freedom adds to a normal one
    at the scan's level: a tenth with 40 cells (the same draws), far more with 12."""
    ratios = []
    for n in (40, 12):
        resid = np.random.default_rng(3).normal(0.0, 0.1, size=(n, 3))
        known, estimated = (honesty.oracle_mde(resid, np.arange(1, n - 1), 4000, 2000, seed=2, studentized=s)
                            for s in (False, True))
        ratios.append(math.log(estimated) / math.log(known))
    assert 1.02 < ratios[0] < 1.25 and ratios[1] > ratios[0] + 0.15


def test_e80_interpolates_the_first_crossing() -> None:
    assert honesty.e80({0.75: (0.4, 10), 1.0: (0.6, 10), 1.25: (1.0, 10), 1.5: (1.0, 10)}) == pytest.approx(1.125)
    assert honesty.e80({0.75: (0.1, 10), 1.0: (0.2, 10), 1.25: (0.3, 10), 1.5: (0.5, 10)}) == math.inf


def test_render_states_the_command_and_every_table() -> None:
    res = {"nulls": [honesty.null_job(QUIET)], "qnulls": [], "exact": [honesty.exact_job((QUIET, None, 0, 1))],
           "power": honesty.power_job((QUIET, 1, 1.0, 1, "one")), "qpower": [],
           "plants": [honesty.plant_job((QUIET, 2.0, 4, 0))],
           "oracle": [honesty.oracle_job((QUIET, 2000, 500))]}
    text = honesty.render(res, 90.0, 2, honesty.QUICK)
    assert text.startswith("Measured with `python benchmarks/regimes_honesty.py --jobs 2 --quick --write` (1.5 min")
    for heading in ("### Null rate and exactness", "### Power at the stated mde", "### Effect CI coverage",
                    "### Detection limit against an oracle", "### Cell F1"):
        assert heading in text
    assert "| cpu-idle-loop-ends-t3-on.nc | 2 |" in text  # the oracle row of the file
