"""``collector diagnose RUN.nc``: the follow-up sweeps run on the simulator, the right factor named, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analysis
from collector.dataset import schema
from collector.diagnose import Settings, diagnose, sprt
from collector.shared.errors import ConfigError
from diagnose_files import CASES, NAMED, sweep_file
from processes import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.process  # every test here starts sweep workers


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = {}
    for case, regimes in CASES.items():
        folder = tmp_path_factory.mktemp(case)
        path = sweep_file(folder, regimes)
        out[case] = diagnose(analysis.open_dataset(path), source=str(path), output=folder / "diagnosis.nc")
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_right_factor_is_named(diagnosed: dict, case: str) -> None:
    d = diagnosed[case]
    assert len(d.targets) == 1, d.summary()
    assert d.named(1) == NAMED[case], d.summary()


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["cuda", "cpu"])
def test_the_right_factor_is_named_at_real_noise(tmp_path: Path, noise: str) -> None:
    """The simulator's noise fitted to real null sweeps (run noise, run-level slow states, drift): still named."""
    for case, regimes in CASES.items():
        folder = tmp_path / case
        folder.mkdir()
        path = sweep_file(folder, regimes, noise=noise)
        d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / case / "d.nc")
        if case == "attn":
            # at this noise the regime's size varies between fresh processes beyond its runs' standard errors
            # (x1.99, x2.85, x1.99 for the cuda preset), and that spread is in the factor test: the planted
            # change (x2.5 -> x1.5, x0.6) is measured, named 'moved' only when it stands out of that spread
            v = d.verdict(1, "attn")
            assert v.lo < 0.6 < v.hi and v.estimate < 0.8, (case, d.summary())
            assert d.named(1) in ({}, NAMED[case]), (case, d.summary())
        else:
            assert d.named(1) == NAMED[case], (case, d.summary())
        assert d.runs <= 0.11 * d.study_runs, (case, d.summary())  # more runs at more noise (docs/performance.md)


def test_total_length_onset_moves_by_the_prompt_change(diagnosed: dict) -> None:
    v = diagnosed["total"].verdict(1, "prompt_len")
    assert v.verdict == "moved" and v.unit == "tokens" and (v.estimate, v.lo, v.hi) == (-32, -32, -32), v
    assert "follows the total length" in v.detail
    b = diagnosed["budget"].verdict(1, "prompt_len")
    assert b.verdict == "stayed" and b.lo <= 0 <= b.hi and "follows the budget" in b.detail


def test_boundaries_are_located_to_one_token(diagnosed: dict) -> None:
    v = diagnosed["budget"].verdict(1, "boundary")  # planted: budgets 150-250
    assert v.verdict == "stayed" and "onset between 149 and 150 (located)" in v.detail
    assert "recovery between 250 and 251 (located)" in v.detail
    assert v.lo < 2.5 < v.hi  # the planted effect inside the interval


def test_attention_moves_the_effect_with_a_ci(diagnosed: dict) -> None:
    v = diagnosed["attn"].verdict(1, "attn")
    assert v.verdict == "moved" and v.unit == "x" and v.lo < 1.5 / 2.5 < v.hi < 1 and v.q < 0.05, v
    others = [diagnosed["attn"].verdict(1, f) for f in ("cache_impl", "dtype", "engine", "warmup")]
    assert all(o.verdict == "stayed" and o.lo < 1 < o.hi for o in others), others


def test_process_local_regime_skips_the_factors(diagnosed: dict) -> None:
    d = diagnosed["process"]
    assert d.verdict(1, "boundary").verdict == "vanished"
    assert "in none of 3 fresh processes" in d.verdict(1, "process").detail
    skipped = [v for v in d.verdicts if v.factor not in ("boundary", "process")]
    assert all(v.verdict == "not tested" and "did not come back" in v.detail and v.runs == 0 for v in skipped)


@pytest.mark.parametrize("case", sorted(CASES))
def test_runs_are_at_most_a_tenth_of_the_studys_protocol(diagnosed: dict, case: str) -> None:
    d = diagnosed[case]
    assert d.runs <= 0.1 * d.study_runs, d.summary()
    assert d.study_runs == 925 and d.study_runs_new == 605  # 12 coarse + 7 probe budgets (16-token steps 128-256)


def test_one_dataset_with_the_question_of_every_run(diagnosed: dict) -> None:
    d = diagnosed["static"]
    ds = analysis.open_dataset(d.output)
    schema.validate(ds)
    assert set(map(str, ds["question"].values)) == {f"r1 {q}" for q in
                                                   ("refine", "prompt_len", "process", "cache_impl", "attn", "dtype",
                                                    "engine", "warmup")}
    assert int((ds["status"] == 0).sum()) == d.runs
    static = ds["latency"].sel(question="r1 cache_impl", cache_impl="static")
    assert int(static.notnull().sum()) == d.verdict(1, "cache_impl").runs
    table = json.loads(ds.attrs["diagnosis"])
    assert table["regimes"][0]["named"] == {"cache_impl": "vanished"} and ds.attrs["diagnosed"].endswith("base.nc")


def test_two_regimes_of_one_series_are_diagnosed_apart(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, [{"start": 150, "end": 200, "factor": 2.5},
                                 {"start": 280, "end": 330, "factor": 3.0, "cache_impl": "dynamic"}])
    d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc", questions=["cache_impl"])
    assert [(t.first, t.last) for t in d.targets] == [(288, 320), (160, 192)]  # largest effect first
    assert d.named(1) == {"cache_impl": "vanished"} and d.named(2) == {}
    assert "onset between 279 and 280 (located)" in d.verdict(1, "boundary").detail
    assert {v.factor for v in d.verdicts} == {"boundary", "cache_impl"}


def test_stopped_diagnosis_continues_where_it_stopped(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, CASES["attn"])
    ds = analysis.open_dataset(path)
    calls = {"n": 0}

    def stop_soon() -> bool:
        calls["n"] += 1
        return calls["n"] > 40

    first = diagnose(ds, source=str(path), output=tmp_path / "d.nc", settings=Settings(should_stop=stop_soon))
    assert first.stopped and any("run the same command again" in v.detail for v in first.verdicts)
    again = diagnose(ds, source=str(path), output=tmp_path / "d.nc")
    whole = diagnose(ds, source=str(path), output=tmp_path / "whole.nc")
    assert not again.stopped and again.named(1) == {"attn": "moved"}
    assert again.runs == whole.runs  # nothing measured twice, nothing missing
    assert [(v.factor, v.verdict) for v in again.verdicts] == [(v.factor, v.verdict) for v in whole.verdicts]


def test_a_diagnosis_stopped_inside_a_question_counts_the_runs_it_measured(tmp_path: Path) -> None:
    # seen on real runs: stopped by --max-minutes inside refine, the summary said "0 runs" after 43 measured
    from collector.sweep.journal import Journal

    path = sweep_file(tmp_path, CASES["budget"])
    calls = {"n": 0}

    def stop_in_refine() -> bool:
        calls["n"] += 1
        return calls["n"] > 10

    d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc",
                 settings=Settings(should_stop=stop_in_refine))
    measured = {}
    for j in (tmp_path / "d.journals").glob("*.journal"):
        with Journal.open(j) as journal:
            measured[j.stem.split("-", 1)[1]] = journal.count()
    assert d.stopped and measured.get("refine", 0) > 0, measured
    assert d.runs == sum(measured.values()), (d.runs, measured)
    boundary = d.verdict(1, "boundary")
    assert boundary.verdict == "not tested" and boundary.runs == measured["refine"], boundary
    assert d.summary().splitlines()[-1].startswith(f"{d.runs} runs in ")


def test_max_minutes_leaves_questions_out_and_says_so(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, CASES["budget"])
    d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc", max_minutes=0.4)
    left = [v for v in d.verdicts if v.verdict == "not tested"]
    assert left and all("--max-minutes 0.4" in v.detail for v in left), [v.detail for v in left]
    assert d.plan.minutes <= 0.4


def test_a_passed_deadline_measures_nothing_and_says_why(tmp_path: Path) -> None:
    import time

    path = sweep_file(tmp_path, CASES["budget"])
    d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc",
                 settings=Settings(deadline=time.monotonic() - 1))
    assert d.stopped and d.runs == 0 and d.output is None
    assert all(v.verdict == "not tested" and "time ran out" in v.detail for v in d.verdicts), d.verdicts
    assert "run the same command again to continue" in d.summary()


def test_null_sweep_has_nothing_to_diagnose(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, [])
    d = diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc")
    assert d.runs == 0 and d.output is None and d.summary().startswith("nothing to diagnose")


def test_a_journal_of_another_diagnosis_is_refused(tmp_path: Path) -> None:
    a = sweep_file(tmp_path, CASES["budget"], name="a")
    diagnose(analysis.open_dataset(a), source=str(a), output=tmp_path / "d.nc", questions=["attn"])
    b = sweep_file(tmp_path, [{"start": 200, "end": 300, "factor": 3.0}], name="b")
    with pytest.raises(ConfigError, match="holds another diagnosis"):
        diagnose(analysis.open_dataset(b), source=str(b), output=tmp_path / "d.nc")


@pytest.mark.parametrize(("delta", "truth", "side"), [(0.46, 0.0, "out"), (0.46, 0.92, "in"), (-0.3, -0.6, "in")])
def test_sequential_test_error_rates(delta: float, truth: float, side: str) -> None:
    rng = np.random.default_rng(0)
    sides = [sprt.sprt(rng.normal(truth, 0.1, 8), delta=delta, sigma=0.1).side for _ in range(2000)]
    assert sides.count(side) / len(sides) >= 0.99  # alpha = beta = 0.01
    assert np.mean([sprt.sprt(rng.normal(truth, 0.1, 8), delta=delta, sigma=0.1).n for _ in range(200)]) < 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"delta": 0.0, "sigma": 0.1}, r"delta must be a finite non-zero log effect, got 0.0"),
    ({"delta": 0.5, "sigma": -1.0}, r"sigma must be a positive noise, got -1.0"),
    ({"delta": 0.5, "sigma": 0.1, "alpha": 0.7}, r"alpha must be in \(0, 0.5\), got 0.7"),
])
def test_sequential_test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sprt.sprt([0.1], **kwargs)


def test_bad_settings_and_questions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"max_trials must be >= min_trials \(3\), got 2"):
        Settings(min_trials=3, max_trials=2)
    path = sweep_file(tmp_path, CASES["budget"])
    with pytest.raises(ConfigError, match=r"unknown question 'size'; choices: refine, prompt_len"):
        diagnose(analysis.open_dataset(path), source=str(path), output=tmp_path / "d.nc", questions=["size"])


def test_cli_runs_the_diagnosis_and_writes_the_dataset(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, CASES["static"])
    out = tmp_path / "diag.nc"
    res = cli("diagnose", str(path), "-o", str(out), "--questions", "cache_impl", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["regimes"][0]["named"] == {"cache_impl": "vanished"} and out.exists()
    assert "diagnose: regime 1" in res.stderr  # progress on stderr
    again = cli("diagnose", str(path), "-o", str(out), "--questions", "cache_impl", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["runs"] == data["runs"]  # continued: nothing new


@pytest.mark.parametrize(("args", "message"), [
    (["--questions", "size"], "error: --questions: unknown question 'size'; choices: refine"),
    (["--max-trials", "0"], "error: --max-trials must be an integer >= 1, got '0'"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    res = cli("diagnose", "mps-m3max-study", "-o", str(tmp_path / "x.nc"), *args)
    assert res.returncode == 2 and res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr
