"""The collector's live bar: legible at 80 columns (count and eta never hidden); plain lines without a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from collector.shared.factors import SWEEP_DIMS, RunKey
from collector.shared.record import RunRecord
from collector.sweep.progress import LiveProgress
from collector.sweep.runner import SweepEvent

_VALUES = {"model": "a-very-long-model-name/with-a-path-[red]x", "device": "cpu", "dtype": "float32", "cache": True,
           "prompt_len": 32, "budget": 256, "trial": 3}


def _key() -> RunKey:
    from collector.shared.factors import BY_NAME

    return RunKey(**{d: _VALUES.get(d, BY_NAME[d].default[0] if BY_NAME[d].default else None) for d in SWEEP_DIMS})


def _event(done: int, total: int, *, ok: bool = True) -> SweepEvent:
    rec = RunRecord(model=_VALUES["model"], device="cpu", dtype="float32", cache=True, prompt_len=32, budget=256,
                    status="ok" if ok else "error", latency=0.0123)
    return SweepEvent("run", done, total, key=_key(), record=rec)


def _rendered(live: LiveProgress, width: int) -> str:
    out = Console(width=width, file=io.StringIO(), record=True, force_terminal=False)
    out.print(live._bar.make_tasks_table(live._bar.tasks))  # type: ignore[union-attr]
    return out.export_text()


def test_bar_keeps_count_and_eta_at_80_columns():
    console = Console(width=80, file=io.StringIO(), force_terminal=True)
    with LiveProgress(console=console, label="a-long-output-file-name-of-a-sweep.nc") as live:
        live(SweepEvent("start", 0, 5000))
        for done in (1, 2, 3, 1234):
            live(_event(done, 5000))
        text = _rendered(live, 80)
        wide = _rendered(live, 200)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and len(lines[0]) <= 80, text
    assert "1234/5000" in lines[0]
    assert re.search(r"eta\s+(\d+:\d\d:\d\d|-:--:--)", lines[0]), lines[0]
    assert "…" in lines[0]  # the long cell description gave way
    assert "[red]x" in wide  # a name from the user is shown literally, not read as markup


def test_plain_lines_without_a_terminal():
    buf = io.StringIO()
    console = Console(width=80, file=buf, force_terminal=False)
    with LiveProgress(console=console, label="run.nc") as live:
        live(SweepEvent("start", 0, 200))
        for done in range(1, 201):
            live(_event(done, 200, ok=done % 50 != 0))
    lines = buf.getvalue().splitlines()
    assert 20 <= len(lines) <= 23  # every 5 percent, and the end
    assert lines[-1].startswith("run.nc: 200/200 runs (100%)") and "4 failed" in lines[-1]
    assert all(re.match(r"run\.nc: \d+/200 runs \(\d+%\), \d+:\d\d:\d\d elapsed, eta (\d+:\d\d:\d\d|-)", ln)
               for ln in lines)
    assert "\x1b" not in buf.getvalue()


def test_quiet_prints_nothing():
    buf = io.StringIO()
    with LiveProgress(quiet=True, console=Console(file=buf, force_terminal=False)) as live:
        live(_event(1, 10))
    assert buf.getvalue() == "" and live.failed == 0
