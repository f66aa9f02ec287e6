"""The study file's report, screenshotted in headless Chromium (issue 20): the page renders, is not blank, and
opens with the 512-624 probe regime.

Skipped when ``chromium`` is not installed. ``DECODE_REGIMES_WRITE_SCREENSHOT=1`` also writes the screenshot
to ``docs/figures/report-study.png`` (the one the README shows), so regenerating it is running this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import analysis

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "datasets" / "mps-m3max-study.nc"
KEPT = ROOT / "docs" / "figures" / "report-study.png"
CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (no 'chromium' on PATH): the report "
                                                 "screenshot needs a headless browser"),
]


class _Text(HTMLParser):
    """The page's visible text in document order, one chunk per element, without the <head> and the <h1>."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "style", "title", "h1", "svg"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "style", "title", "h1", "svg"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.chunks.append(data.strip())


def _first_sentence(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    text = parser.chunks[0]
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def test_report_of_the_study_in_headless_chromium(tmp_path):
    ds = analysis.open_dataset(STUDY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = analysis.report(ds, tmp_path / "report", workers=1, sources=[f"datasets/{STUDY.name}"])
    page = files.html.read_text()
    first = _first_sentence(page)
    assert first.startswith("gpt2-medium on mps (experiment=instability_probe"), first
    assert "budgets 512-624" in first and "slower" in first, first

    shot = tmp_path / "report.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
           files.html.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"

    import matplotlib.image as mpimg

    img = np.asarray(mpimg.imread(shot))
    assert img.shape[:2] == (2000, 1280), img.shape
    pixels = img.reshape(-1, img.shape[-1])
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 1, "the screenshot is one colour: a blank page"
    assert counts.max() < 0.99 * pixels.shape[0], "the screenshot is almost blank"

    if os.environ.get("DECODE_REGIMES_WRITE_SCREENSHOT") == "1":
        KEPT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, KEPT)
