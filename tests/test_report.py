"""analysis.report: the page of a synthetic dataset with a planted regime, opened in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis.errors import InputError
from analysis.report.parts import inline_svg
from analysis.synthetic import make_dataset

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
SECTIONS = ("environment", "regimes", "drift", "phases", "memory", "kv", "monotonicity", "steps", "boundaries",
            "backends", "glossary")
FIGURES = ("latency", "decode_per_token", "drift", "power", "phases", "memory", "kv_speedup", "regime_map")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ds = make_dataset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(ds)
    files = analysis.report(ds, out, reg=reg, workers=1, sources=["run.nc"])
    return files, reg, ds


def test_files_written(built):
    files, _, _ = built
    assert files.html.name == "index.html" and files.markdown.name == "summary.md"
    names = {p.name for p in files.figures}
    assert names == {f"{f}.{ext}" for f in FIGURES for ext in ("png", "svg")}
    assert all(p.stat().st_size > 1000 for p in files.figures)


def test_page_is_self_contained(built):
    files, _, _ = built
    page = files.html.read_text()
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from a network
    assert page.count("<svg") >= len(FIGURES)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate element ids on the page"
    for key in SECTIONS:
        assert f'id="{key}"' in page
    assert "SIMULATED DATA" in page
    assert "96-128" in page and "x5.0" in page


def test_markdown_summary(built):
    files, _, _ = built
    md = files.markdown.read_text()
    assert md.startswith("# simulated decode-regimes dataset")
    assert "**SIMULATED DATA**" in md and "## The other analyses at a glance" in md
    assert "| cache on | 96-128 |" in md  # only the factors that vary name a series
    assert "![" in md and "figures/latency.png" in md


def test_regimes_table_shows_extra_per_series_variables(built, tmp_path):
    _, reg, ds = built
    extra = reg.assign(min_detectable_made_up=reg["noise"] * 0 + 1.234)
    extra["min_detectable_made_up"].attrs["long_name"] = "a per-series variable the report does not know"
    files = analysis.report(ds, tmp_path, reg=extra, workers=1, figures=False)
    page = files.html.read_text()
    assert "min_detectable_made_up" in page and "1.23" in page
    assert "a per-series variable the report does not know" in page
    stripped = reg.drop_vars([v for v in reg.data_vars if str(v).startswith("mde")])
    assert analysis.report(ds, tmp_path / "b", reg=stripped, workers=1, figures=False).html.is_file()


def test_workers_give_the_same_page(built, tmp_path):
    files, reg, ds = built
    two = analysis.report(ds, tmp_path, reg=reg, workers=2, sources=["run.nc"])
    strip = re.compile(r"Generated [^<]*UTC")
    assert strip.sub("", two.html.read_text()) == strip.sub("", files.html.read_text())


def test_inline_svg_prefixes_ids():
    svg = '<?xml version="1.0"?>\n<svg><defs><path id="a"/></defs><use xlink:href="#a"/><g clip-path="url(#a)"/></svg>'
    out = inline_svg(svg, "f1")
    assert out.startswith("<svg") and 'id="f1-a"' in out and 'href="#f1-a"' in out and "url(#f1-a)" in out


def test_bad_inputs(tmp_path):
    ds = make_dataset(seed=0, step_time=False)
    with pytest.raises(InputError, match="report\\(\\) needs an xarray.Dataset, got 'str'"):
        analysis.report("run.nc", tmp_path)
    with pytest.raises(InputError, match="needs 'latency' over 'budget'"):
        analysis.report(ds.drop_vars("latency"), tmp_path)
    with pytest.raises(InputError, match="max_panels must be an integer >= 1, got 0"):
        analysis.report(ds, tmp_path, max_panels=0)
    with pytest.raises(InputError, match="workers must be >= 1 or None, got 0"):
        analysis.report(ds, tmp_path, workers=0)


def test_in_headless_chromium(built):
    """No console errors, every figure drawn, a screenshot kept (build/test-artifacts/report.png)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium)")
    files, _, _ = built
    messages: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.goto(files.html.as_uri(), wait_until="load")
            sizes = page.evaluate(
                "Array.from(document.querySelectorAll('figure')).map(f => { const s = f.querySelector('svg');"
                " if (!s) return [f.id, 0, 0]; const r = s.getBoundingClientRect();"
                " return [f.id, r.width, r.height]; })")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            links = page.evaluate(
                "Array.from(document.querySelectorAll('figcaption a')).map(a => a.getAttribute('href'))")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert messages == []
    assert sorted(f for f, _, _ in sizes) == sorted(f"fig-{f}" for f in FIGURES)
    assert all(w > 300 and h > 200 for _, w, h in sizes), sizes
    assert overflow <= 0, "the page is wider than the window"
    assert all((files.html.parent / href).is_file() for href in links)
    assert shot.stat().st_size > 50_000
    if os.environ.get("REPORT_SCREENSHOT_DIR"):
        shutil.copy(shot, os.environ["REPORT_SCREENSHOT_DIR"])


def test_large_per_step_input_is_cut_to_the_strongest_regimes():
    from analysis.report.tasks import steps_subset

    ds = make_dataset(seed=0, prompt_lens=(16, 32, 48), models=("gpt2", "distilgpt2"), trials=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(ds)
    whole, note = steps_subset(ds, reg, 10_000)
    assert note == "" and whole["step_time"].dims == ds["step_time"].dims
    sub, note = steps_subset(ds, reg, 300)
    assert sub.sizes["series"] == 300 // (16 * 3)
    assert all(" cache on " in s for s in sub["series"].values.tolist())  # only series with the regime
    assert note.startswith("Per-step modes analysed for 6 of 12 series")


def test_parallel_regimes_equal_eager(monkeypatch):
    from analysis.report import tasks

    ds = make_dataset(seed=4, prompt_lens=(16, 32, 48), step_time=False, trials=3)
    monkeypatch.setattr(tasks, "PARALLEL_RUNS", 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = analysis.regimes(ds)
    par = tasks.regimes_parallel(ds, 2)
    assert bool((par["anomalous"] == eager["anomalous"]).all())
    np.testing.assert_allclose(par["q"].fillna(-1).values, eager["q"].fillna(-1).values, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(par["effect"].fillna(-1).values, eager["effect"].fillna(-1).values, rtol=1e-9)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_analysis_that_does_not_apply_is_named_not_fatal(tmp_path, workers):
    """Only the cache off: no KV speedup, so no KV figure either (crashed before: the figure got the error)."""
    ds = make_dataset(seed=0, caches=(False,), step_time=False, budgets=tuple(range(16, 129, 16)), trials=3)
    files = analysis.report(ds, tmp_path, workers=workers, max_panels=2)
    page = files.html.read_text()
    assert "Not available for this dataset: kv_speedup" in page
    assert "kv_speedup.png" not in {p.name for p in files.figures}
    assert "latency.png" in {p.name for p in files.figures}
