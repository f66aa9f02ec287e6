"""python -m analysis kv|phases|memory|monotonicity|steps|boundaries|backends|compare|report: tables with a
legend line, --json, one-line errors with exit status 2, and strings from files escaped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import COMMANDS, main
from analysis.questions.kv import kv_speedup
from analysis.registry import ANALYSES as REGISTRY
from analysis.registry import REGIMES, find
from analysis.synthetic import make_dataset
from collector.dataset import schema

#: The commands by their short names (tests/test_analysis_cli.py covers regimes).
ANALYSES = tuple(a.key for a in REGISTRY if a.name != REGIMES)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cmds")
    out = {"run": d / "run.nc", "null": d / "null.nc", "other": d / "other.nc", "evil": d / "evil.nc",
           "bad": d / "bad.nc"}
    small = {"prompt_lens": (16, 48), "budgets": tuple(range(16, 193, 16)), "trials": 4}
    schema.save(make_dataset(0, **small), out["run"])
    null = make_dataset(1, regimes=(), **small)
    for v in ("latency", "prefill_time", "decode_time", "step_time"):
        null[v] = null[v] * 1.1
    schema.save(null, out["null"])
    schema.save(make_dataset(2, models=("opt-125m",), step_time=False), out["other"])
    evil = make_dataset(3, models=("gpt2", "distilgpt2"), caches=(True,), step_time=False)
    evil = evil.assign_coords(model=["[red]evil\x1b[2J", "plain"])
    schema.save(evil, out["evil"])
    out["bad"].write_text("not a netCDF file")
    return out


@pytest.mark.parametrize("cmd", ANALYSES)
def test_table_legend_summary_and_json(files, capsys, cmd):
    assert main([cmd, str(files["run"])]) == 0
    out = capsys.readouterr().out
    assert "legend: " in out
    assert "cache on" in out or cmd in ("kv", "backends")
    if cmd in ("kv", "phases", "steps", "boundaries", "backends"):
        assert "96" in out
    assert main([cmd, str(files["run"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"format", "command", "summary", "attrs", "dims", "coords", "data_vars"}
    assert data["format"] == "decode-regimes/1"
    assert data["command"] == next(a.name for a in REGISTRY if a.key == cmd)
    over_budget = any(v.over == "budget" for v in find(cmd).variables.values())
    assert ("budget" in data["dims"]) == over_budget


def test_one_command_list_named_like_the_functions_with_the_short_names_as_aliases(files, capsys):
    assert [n for n in COMMANDS if n not in ("compare", "report", "datasets")] == [a.name for a in REGISTRY]
    assert {a for c in COMMANDS.values() for a in c.aliases} == {"kv", "memory", "steps", "backends"}
    assert find("kv") is find("kv_speedup") and find("kv").function is kv_speedup
    with pytest.raises(KeyError, match="no analysis 'nope'"):
        find("nope")
    assert main(["kv_speedup", str(files["run"]), "--json", "--n-boot", "50"]) == 0
    by_name = capsys.readouterr().out
    assert main(["kv", str(files["run"]), "--json", "--n-boot", "50"]) == 0
    assert capsys.readouterr().out == by_name


def test_kv_values(files, capsys):
    assert main(["kv", str(files["run"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    collapse = np.asarray(data["data_vars"]["collapse"]["data"], dtype=bool).squeeze()
    budgets = np.asarray(data["coords"]["budget"]["data"])
    assert (budgets[collapse.any(axis=0)] == [96, 112, 128]).all()


@pytest.mark.parametrize("cmd", ANALYSES)
def test_bad_file_is_one_line_and_status_2(files, capsys, cmd):
    assert main([cmd, str(files["bad"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_bad_options(files, capsys):
    assert main(["kv", str(files["run"]), "--alpha", "2"]) == 2
    assert "alpha" in capsys.readouterr().err
    assert main(["memory", str(files["run"]), "--covariates", "mem_nope"]) == 2
    assert "mem_nope" in capsys.readouterr().err
    assert main(["monotonicity", str(files["run"]), "--var", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["steps", str(files["other"])]) == 2  # no per-step times
    assert "step_time" in capsys.readouterr().err
    assert main(["report", str(files["run"]), "--max-panels", "0"]) == 2
    assert "max_panels" in capsys.readouterr().err


def test_compare_reports_ratio_and_vanished_regime(files, capsys, tmp_path):
    fig = tmp_path / "cmp.png"
    assert main(["compare", str(files["run"]), str(files["null"]), "--plot", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "vanished" in out and "legend: " in out
    assert "null.nc vs run.nc" in out
    assert fig.stat().st_size > 1000
    assert main(["compare", str(files["run"]), str(files["null"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ratio = np.asarray(data["data_vars"]["series_ratio"]["data"], dtype=float)
    np.testing.assert_allclose(ratio, 1.1, rtol=0.04)


def test_compare_refuses_files_without_a_shared_cell(files, capsys):
    assert main(["compare", str(files["run"]), str(files["other"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'run.nc' and 'other.nc' share no cell with data: model") and err.count("\n") == 1


def test_strings_from_files_are_escaped(files, capsys):
    for cmd in (["regimes"], ["monotonicity", "--all"], ["backends"]):
        assert main([*cmd, str(files["evil"])]) == 0
        out = capsys.readouterr().out
        assert "\x1b[2J" not in out  # the control sequence is stripped
        assert "[red]evil" in out  # shown literally, not read as markup


@pytest.mark.slow
def test_report_command_with_progress_lines(files, tmp_path, capsys, monkeypatch):
    from analysis.report import progress

    out = tmp_path / "rep"
    monkeypatch.setattr(progress, "LARGE_CELLS", 10)  # counts as large: progress lines although piped
    assert main(["report", str(files["run"]), "-o", str(out), "--workers", "1"]) == 0
    res = capsys.readouterr()
    assert "wrote " in res.out
    assert (out / "index.html").is_file() and (out / "summary.md").is_file()
    assert {p.name for p in (out / "figures").iterdir()} >= {"latency.png", "latency.svg", "regime_map.svg"}
    err = res.err.splitlines()
    assert err[0].startswith("report: 0/") and err[-1].startswith("report: ") and len(err) >= 10
    monkeypatch.setattr(progress, "LARGE_CELLS", 10**9)
    assert main(["report", str(files["run"]), "-o", str(out), "--workers", "1", "--quiet", "--force"]) == 0
    assert capsys.readouterr().err == ""


def test_a_bug_is_not_reported_as_a_user_error(files, monkeypatch):
    """Only the package's own errors (and OSError) are one line with status 2; a ValueError or KeyError is a bug."""
    from analysis.registry import BY_NAME

    entry = BY_NAME["monotonicity"]
    for exc in (ValueError("a bug"), KeyError("a bug")):
        def broken(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setitem(entry.__dict__, "function", broken)  # the entry is frozen: patched in its __dict__
        with pytest.raises(type(exc)):
            main(["monotonicity", str(files["run"])])
