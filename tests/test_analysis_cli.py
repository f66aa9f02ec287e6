"""python -m analysis regimes: table, summary, --json, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.__main__ import main
from analysis.synthetic import Episode, make_dataset
from collector.dataset import schema


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    out = {
        "default": d / "run.nc",
        "seq": d / "seq.nc",
        "part0": d / "part0.nc",
        "part1": d / "part1.nc",
        "bad": d / "bad.nc",
    }
    ds = make_dataset(0, step_time=False)
    schema.save(ds, out["default"])
    schema.save(make_dataset(2, regimes=(), episodes=[Episode(0.3, 0.45, 3.0)], order="sequential", step_time=False), out["seq"])
    schema.save(ds.isel(cache=[0]), out["part0"])
    schema.save(ds.isel(cache=[1]), out["part1"])
    out["bad"].write_text("not a netCDF file")
    return out


@pytest.mark.process
def test_table_and_summary_in_a_real_process(files):
    res = subprocess.run([sys.executable, "-m", "analysis", "regimes", str(files["default"])], check=False,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "96-128" in res.stdout and "slow" in res.stdout
    assert re.search(r"x(4\.9\d|5\.0\d)", res.stdout), res.stdout
    assert "1 anomalous segment(s) in 1 of 2 series" in res.stdout


def test_json(files, capsys):
    assert main(["regimes", str(files["default"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "decode-regimes/1" and data["command"] == "regimes"
    assert data["attrs"]["method"] == "scan"
    hits = [s for s in data["series"] if s["anomalous_budgets"]]
    assert len(hits) == 1 and hits[0]["series"]["cache"] is True
    assert hits[0]["anomalous_budgets"] == [96, 112, 128]
    seg = next(g for g in hits[0]["segments"] if g["anomalous"])
    assert seg["start"] == 96 and seg["end"] == 128 and seg["kind"] == "slow"
    assert seg["effect_lo"] < 5.0 < seg["effect_hi"] * 1.02
    # per series what it could have seen and its test across the series
    assert hits[0]["mde"] > 1.0 and hits[0]["mde_4"] > 1.0 and hits[0]["scatter"] >= 0.0
    assert 0.0 <= hits[0]["p_series"] <= hits[0]["q_series"] < 0.05
    assert "summary" in data


def test_several_files_and_options(files, capsys):
    assert main(["regimes", str(files["part0"]), str(files["part1"]), "--method", "binseg", "--all", "--n-boot", "50"]) == 0
    res = capsys.readouterr()
    # --method and --n-boot are deprecated and ignored (the scan tests every interval), and the user is told
    assert "step-down scan" in res.out and "96-128" in res.out and "normal" in res.out
    assert "warning: regimes(): method='binseg' is deprecated" in res.err


def test_quiet_silences_only_the_named_categories():
    import warnings

    from analysis.core.common import quiet

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet():
            warnings.warn("all-NaN slice", RuntimeWarning)
            warnings.warn("deprecated option", FutureWarning)
        with quiet(FutureWarning):
            warnings.warn("deprecated option", FutureWarning)
            warnings.warn("all-NaN slice", RuntimeWarning)
    assert [(w.category, str(w.message)) for w in seen] == [(FutureWarning, "deprecated option"),
                                                            (RuntimeWarning, "all-NaN slice")]


def test_sequential_confounded(files, capsys):
    assert main(["regimes", str(files["seq"]), "--all"]) == 0
    out = capsys.readouterr().out
    # found, but budget and time cannot be separated: listed as confounded, not reported as a regime
    assert "yes" in out and "random order" in out and "not reported as regimes" in out


@pytest.mark.parametrize(
    "args, msg",
    [
        (["regimes", "{missing}"], "error: no such dataset file"),
        (["regimes", "{bad}"], "error: "),
        (["regimes", "{default}", "--var", "nope"], "error: variable 'nope' not in the dataset"),
        (["regimes", "{default}", "--method", "magic"], "error: argument --method: invalid choice: 'magic'"),
        (["regimes", "{default}", "--alpha", "2"], "error: alpha must be in (0, 1), got 2.0"),
        (["nosuch"], "error: argument COMMAND: invalid choice: 'nosuch'"),
        ([], "error: the following arguments are required: COMMAND"),
    ],
)
def test_errors_are_one_line_with_status_2(files, capsys, args, msg):
    argv = [a.format(missing=files["default"].parent / "nope.nc", bad=files["bad"], default=files["default"]) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(msg)
    assert err.count("\n") == 1 and "Traceback" not in err
