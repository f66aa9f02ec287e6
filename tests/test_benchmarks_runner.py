"""`python -m benchmarks`: one command that regenerates docs/performance.md (listing, dry run, header)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def runner():
    sys.path.insert(0, str(ROOT))
    try:
        import benchmarks.__main__ as runner
    finally:
        sys.path.remove(str(ROOT))
    return runner


def test_every_section_of_the_doc_is_declared(runner) -> None:
    """Each ``## `` section of docs/performance.md is either rerun by the runner or says why not."""
    headings = {line for line in DOC.read_text().splitlines() if line.startswith("## ")}
    declared = {s.heading for s in runner.SECTIONS} | {runner.HEADER}
    assert headings == declared
    for s in runner.SECTIONS:
        assert (ROOT / "benchmarks" / s.script).is_file(), s.script
        assert bool(s.not_here) != bool(s.args), s.key  # rerun with arguments, or a reason not to
        if s.args:
            assert "--write" in s.args and (s.quick is None or "--write" in s.quick)


@pytest.mark.process
def test_list_names_rerun_and_not_rerun_sections() -> None:
    r = run("--list")
    assert r.returncode == 0, r.stderr
    assert "speed            rerun (full" in r.stdout
    assert "instrumentation  not rerun here: needs a CUDA GPU" in r.stdout


@pytest.mark.process
def test_dry_run_prints_commands_and_writes_nothing() -> None:
    before = DOC.read_text()
    r = run("--dry-run", "--only", "speed", "accuracy")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("benchmarks/regimes_accuracy.py --noise cuda --seeds 6 --null 100 --methods pelt binseg --write")
    assert lines[1].endswith("benchmarks/regimes_speed.py --max-cells 100000 --repeat 3 --write")
    assert DOC.read_text() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--quick"], "give --output PATH"),
    (["--only", "instrumentation"], "cannot be rerun here: needs a CUDA GPU"),
    (["--only", "nope"], "invalid choice: 'nope'"),
])
@pytest.mark.process
def test_refusals(args: list[str], message: str) -> None:
    r = run(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_header_names_machine_versions_date_and_sections(runner, tmp_path: Path) -> None:
    import datetime as dt

    speed = next(s for s in runner.SECTIONS if s.key == "speed")
    text = runner.machine_header(["--only", "speed"], [(speed, 61.0, True)],
                                 now=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc))
    assert text.startswith("`python -m benchmarks --only speed` on 2026-01-02 03:04 UTC.")
    assert "- Machine: " in text and "GiB memory" in text and "logical CPUs" in text
    assert "numpy " in text and "xarray " in text and f"Python {sys.version_info.major}." in text
    assert "Rerun here: Analysis speed (quick, reduced sizes; 61 s)" in text
    assert "Instrumentation overhead (not rerun here: needs a CUDA GPU" in text
    # the header goes into a copy of the doc, above the first section, and is replaced in place on the next run
    copy = tmp_path / "perf.md"
    copy.write_text("# Performance\n\nintro\n\n## A\n\nbody\n")
    runner._ensure_header(copy)
    runner.replace_section(copy, runner.HEADER, text)
    runner._ensure_header(copy)
    body = copy.read_text()
    assert body.count(runner.HEADER) == 1 and body.index(runner.HEADER) < body.index("## A")
