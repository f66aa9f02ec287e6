"""Every table of ``python -m analysis`` at 80, 100 and 120 columns keeps its key columns whole (issue 20).

The tables are built from real files (the published study, a CPU sweep with per-step times, and a compare of
two CPU sweeps) and drawn by :func:`analysis.cli.render.render` on a rich console of the given width, as a
terminal would. The series label may wrap at spaces; every other key cell must appear whole on one line.
Secondary columns may be left out, and the note must then name them. Piped output draws every column with
every cell whole.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import analysis
from analysis.cli.fit import fit
from analysis.cli.render import PIPED_WIDTH, console, render
from analysis.errors import InputError
from analysis.registry import ANALYSES
from analysis.tables.results import compare_changes, compare_series, regimes_power, regimes_segments, regimes_series
from analysis.tables.table import Table

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
STEPS = ROOT / "tests" / "data" / "real" / "cpu-loop-step-t5-both.nc"
OTHER = ROOT / "tests" / "data" / "real" / "cpu-idle-loop-step-t3-off.nc"
WIDTHS = (80, 100, 120)


def _all_tables(path: Path) -> list[Table]:
    ds = analysis.open_dataset(path)
    reg = analysis.regimes(ds)
    tables = [regimes_segments(reg, show_all=True), regimes_series(reg), regimes_power(reg)]
    for entry in ANALYSES:
        if entry.name == "regimes" or entry.table is None:
            continue
        kw = {"reg": reg} if entry.takes_reg else {}
        try:
            res = entry.function(ds, **kw)
        except InputError:  # an analysis the file cannot answer (no per-step times, one prompt length)
            continue
        tables.append(entry.table(res, show_all=True) if entry.show_all else entry.table(res))
    return tables


@pytest.fixture(scope="module")
def tables() -> list[Table]:
    out = _all_tables(STUDY) + _all_tables(STEPS)
    res = analysis.compare(analysis.open_dataset(STEPS), analysis.open_dataset(OTHER))
    out += [compare_series(res), compare_changes(res)]
    return [t for t in out if t.rows]


def _draw(table: Table, width: int) -> str:
    buf = io.StringIO()
    out = Console(file=buf, width=width, force_terminal=True, color_system=None, highlight=False)
    render(table, out)
    return buf.getvalue()


def test_every_kind_of_table_is_checked(tables: list[Table]) -> None:
    titles = " | ".join(t.title for t in tables)
    for word in ("regimes of", "per series", "could have been seen", "phases", "memory", "KV-cache",
                 "monotonicity", "per-step modes", "backends", "spread", "vs"):
        assert word in titles, word


@pytest.mark.parametrize("width", WIDTHS)
def test_key_columns_stay_whole(tables: list[Table], width: int) -> None:
    for table in tables:
        text = _draw(table, width)
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines), (table.title, width)
        layout = fit(table, width)
        keys = [table.columns.index(k) for k in table.key_columns]
        assert set(keys) <= set(layout.keep), (table.title, layout.dropped)
        for row in table.rows:
            for j in keys[1:]:  # every key cell but the label, whole on one line (a reason: each word whole)
                parts = row[j].split() if row[j].startswith("n/a (") else [row[j]]
                for part in parts:
                    assert any(part in line for line in lines), (table.title, width, table.columns[j], row[j])
            label_width = layout.min_width[0]
            for word in row[0].split():  # the label wraps at spaces; a word wider than the column may fold
                if len(word) <= label_width:
                    assert any(word in line for line in lines), (table.title, width, word)
        flat = " ".join(text.split())
        for name in layout.dropped:
            assert name in flat, (table.title, width, name)  # the note names what is left out
        if layout.dropped:
            assert f"columns left out at {width} characters" in flat


def test_piped_output_draws_every_cell_whole(tables: list[Table], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    out = console(buf)
    assert out.width == PIPED_WIDTH
    for table in tables:
        render(table, out)
    text = buf.getvalue()
    lines = text.splitlines()
    assert "columns left out" not in text
    for table in tables:
        for row in table.rows:
            for cell in row:
                assert any(cell in line for line in lines), (table.title, cell)


def test_columns_env_sets_the_piped_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert console(io.StringIO()).width == 100


def test_cli_at_80_columns_keeps_q_whole() -> None:
    import subprocess
    import sys

    env = {"COLUMNS": "80", "PATH": "", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "analysis", "regimes", str(STUDY)], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout
    drawn = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]  # the tables (the summary is prose)
    assert drawn and all(len(line) <= 80 for line in drawn)
    assert "0.00064" in out and "x10.79 [8.63, 13.50]" in out and "512-624" in out
    assert "columns left out at 80 characters: start, end, reproducible, confounded" in out.replace("\n", " ")
    assert not any("model=" in line for line in drawn)  # table labels name values, not every factor


def test_unknown_key_column_is_refused() -> None:
    with pytest.raises(InputError, match="'nope'"):
        Table(title="t", columns=("a", "b"), rows=(), legend="", key=("nope",))
