"""One report of a dataset: :func:`report` writes an HTML page, the figures and a markdown summary.

The page is self-contained (inline CSS, figures as inline SVG, no script and
no network), so it can be mailed or archived as one file; the figures are also
written as PNG and SVG files, and ``summary.md`` holds the text and tables.

The package: this module assembles the report; :mod:`~analysis.report.tasks`
says what is computed (analyses, figures), :mod:`~analysis.report.runner` runs
those tasks (serially or on forked workers), :mod:`~analysis.report.text` holds
the prose, :mod:`~analysis.report.parts` the sections and figures,
:mod:`~analysis.report.html` and :mod:`~analysis.report.markdown` render them,
and :mod:`~analysis.report.progress` prints progress lines for the CLI.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from analysis.core.labels import clean_text, is_simulated
from analysis.errors import InputError
from analysis.registry import ANALYSES, REGIMES
from analysis.report import text
from analysis.report.headline import headline
from analysis.report.html import page
from analysis.report.markdown import markdown
from analysis.report.parts import Section
from analysis.report.runner import SHARED, Task, default_workers, run
from analysis.report.tasks import analysis_task, figure_task, regimes_parallel, regimes_task
from analysis.tables import results as tables
from collector.dataset.storage import write_atomic, write_error
from collector.shared.errors import OutputError

__all__ = ["ReportFiles", "report"]

ProgressCallback = Callable[[str, int, int], None]
_ROWS = 40  # most rows per table on the page


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`report` wrote: the page, the markdown summary and every figure file (PNG and SVG); and the
    headline the page opens with (one sentence per finding, :func:`analysis.report.headline.headline`)."""

    html: Path
    markdown: Path
    figures: tuple[Path, ...]
    headline: tuple[str, ...] = ()


def report(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    reg: xr.Dataset | None = None,
    max_panels: int = 12,
    progress: ProgressCallback | None = None,
    sources: Sequence[str] = (),
    title: str | None = None,
    workers: int | None = None,
    figures: bool = True,
) -> ReportFiles:
    """Analyse ``ds`` with every analysis that applies and write the report into the folder ``path``.

    Parameters
    ----------
    ds
        A schema-valid dataset (several files combined by :func:`analysis.open_dataset` are fine).
    path
        Output folder (created): ``index.html``, ``summary.md`` and ``figures/*.png|svg``.
    reg
        A :func:`analysis.regimes` result of ``ds.latency`` to reuse (computed when None).
    max_panels
        Most series per figure (those with the strongest regimes first).
    progress
        Called as ``progress(step, done, total)`` as the steps finish (None: silent).
    sources
        File names shown in the environment section.
    title
        Page title (default: from the dataset's ``title`` attr).
    workers
        Processes that run the analyses and draw the figures side by side
        (forked, so the dataset is not copied; None: the CPUs available, at
        most 4; 1: everything in this process).
    figures
        Draw the figures (False: tables and text only, much faster).

    Returns
    -------
    ReportFiles
        ``html``: the page; ``markdown``: the summary; ``figures``: the PNG and SVG files.

    Raises
    ------
    InputError
        When ``ds`` is not a Dataset with ``latency`` over ``budget``, or ``max_panels`` or ``workers`` < 1.
    OutputError
        A file cannot be written (a full disk, a folder that is not writable): the message names it. Every file
        is written whole or not at all (temporary file + rename), so none is left truncated.
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"report() needs an xarray.Dataset, got {type(ds).__name__!r}")
    if "latency" not in ds.data_vars or "budget" not in ds["latency"].dims:
        raise InputError(f"report() needs 'latency' over 'budget'; the dataset has {sorted(map(str, ds.data_vars))!r}")
    if isinstance(max_panels, bool) or not isinstance(max_panels, int) or max_panels < 1:
        raise InputError(f"report(): max_panels must be an integer >= 1, got {max_panels!r}")
    out = _folder(path)
    n_workers = default_workers() if workers is None else int(workers)
    if n_workers < 1:
        raise InputError(f"report(): workers must be >= 1 or None, got {workers!r}")
    if any(v.chunks for v in ds.variables.values()):
        ds = ds.load()
    tasks = _tasks(ds, out, max_panels, figures)[1:]  # the regimes first, here, spread over the workers when large
    done = [0]

    def on_done(name: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(name, done[0], len(tasks) + 1)

    if progress is not None:
        progress("starting", 0, len(tasks) + 1)
    if reg is None:
        reg = regimes_parallel(ds, n_workers)
    on_done("regimes")
    SHARED["ds"] = ds
    try:
        results = run(tasks, workers=n_workers, on_done=on_done, known={"regimes": reg})
    finally:
        SHARED.clear()
    _stop_on_write_failure(results)
    sections = _sections(reg, results)
    where = _figure_sections()
    for t in tasks:
        if t.func is not figure_task:
            continue
        name = t.args[1]
        res = results[t.name]
        if isinstance(res, Exception):
            sec = sections[where[name]]
            if not sec.unavailable:  # else the section already says why
                sec.notes.append(f"Figure {name} not drawn: {clean_text(res)}")
        else:
            sections[where[name]].figures.append(res)
    simulated = is_simulated(ds.attrs)
    title = title or clean_text(ds.attrs.get("title") or "decode-regimes report")
    now = _dt.datetime.now(_dt.timezone.utc)
    generated = f"Generated {now:%Y-%m-%d %H:%M} UTC by decode-regimes (analysis.report)."
    env = text.environment_rows(ds, list(sources))
    ordered = list(sections.values())
    findings = _headline(reg, results)
    html_text = page(title=title, simulated=simulated, environment=env, protocol=text.protocol_rows(ds),
                     sweep=clean_text(ds.attrs.get("sweep", "")), sections=ordered, glossary=text.GLOSSARY,
                     generated=generated, glance=_glance(sections), headline=findings)
    summary = markdown(title=title, simulated=simulated, environment=env, sections=ordered, generated=generated,
                       glance=_glance(sections), headline=findings)
    write_atomic(out / "index.html", html_text, "report page")  # whole or not at all; a failure names the file
    write_atomic(out / "summary.md", summary, "report summary")
    files = tuple(out / p for s in ordered for f in s.figures for p in (f.png_path, f.svg_path))
    _remove_stale_figures(out / "figures", files)
    return ReportFiles(out / "index.html", out / "summary.md", files, tuple(findings))


def _remove_stale_figures(folder: Path, kept: tuple[Path, ...]) -> None:
    """Remove the PNG and SVG files of ``folder`` (the report's own figures folder) that this report did not
    write: a replaced report must not keep the figures of an earlier one that the page no longer shows."""
    if not folder.is_dir():
        return
    keep = {p.resolve() for p in kept}
    for f in folder.iterdir():
        if f.suffix in (".png", ".svg") and f.is_file() and not f.is_symlink() and f.resolve() not in keep:
            try:
                f.unlink()
            except OSError as exc:
                raise write_error(f, exc, "stale report figure") from None


def _folder(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "report folder") from None
    return out


def _stop_on_write_failure(results: dict[str, Any]) -> None:
    """A figure file that could not be written (a full disk) stops the report, naming the file."""
    for res in results.values():
        if isinstance(res, OutputError):
            raise res


# ----------------------------------------------------------------------------- sections and figures
_OTHERS = tuple(a for a in ANALYSES if a.name != REGIMES)


def _tasks(ds: xr.Dataset, out: Path, max_panels: int, figures: bool) -> list[Task]:
    """Every step, heaviest first after the regimes they depend on."""
    tasks = [Task(REGIMES, regimes_task)]
    tasks += [Task(a.key, analysis_task, (a.name,), (REGIMES,)) for a in _OTHERS if all(v in ds for v in a.needs)]
    for a in ANALYSES if figures else ():
        for f in a.figures:
            if not all(v in ds for v in f.needs):
                continue
            deps = (REGIMES, a.key) if f.result is not None else (REGIMES,)
            tasks.append(Task(f"figure {f.name}", figure_task, (a.name, f.name, str(out), max_panels), deps))
    return tasks


def _figure_sections() -> dict[str, str]:
    """Figure name -> the section it appears in."""
    return {f.name: f.section or a.key for a in ANALYSES for f in a.figures}


def _sections(reg: xr.Dataset, results: dict[str, Any]) -> dict[str, Section]:
    out = {k: Section(k, title, intro=intro) for k, (title, intro) in text.SECTIONS.items()}
    r = out[REGIMES]
    r.summary = clean_text(reg.attrs.get("summary", ""))
    many = int(reg["noise"].size) > 20  # then only the series with a regime are listed per series
    r.tables = [tables.regimes_segments(reg, max_rows=_ROWS),
                tables.regimes_series(reg, max_rows=_ROWS, only_with_regime=many)]
    r.notes.append(f"Time check: {clean_text(reg.attrs.get('time_check', ''))}.")
    for a in _OTHERS:
        sec = out[a.key]
        res = results.get(a.key)
        if res is None:
            sec.unavailable = a.missing or "not run"
            continue
        if isinstance(res, tuple):
            res, note = res
            if note:
                sec.notes.append(note)
        if isinstance(res, Exception):
            sec.unavailable = clean_text(res)
            continue
        sec.summary = clean_text(res.attrs.get("summary", ""))
        if a.table is not None:
            sec.tables = [a.table(res, max_rows=_ROWS)]
    return out


def _headline(reg: xr.Dataset, results: dict[str, Any]) -> list[str]:
    """The page's opening sentences, from the regimes and the backends, KV-speedup and phases results (those
    that ran)."""

    def result(key: str) -> xr.Dataset | None:
        res = results.get(key)
        res = res[0] if isinstance(res, tuple) else res
        return res if isinstance(res, xr.Dataset) else None

    return [clean_text(s) for s in headline(reg, backends=result("backends"), kv=result("kv"),
                                            phases=result("phases"))]


def _glance(sections: dict[str, Section]) -> list[tuple[str, str]]:
    """Per section but the regimes (the headline says those), its summary's headline and first detail line."""
    out = []
    for sec in sections.values():
        if sec.key == REGIMES:
            continue
        lines = [ln.strip() for ln in sec.summary.splitlines() if ln.strip()]
        if not lines:
            continue
        head = lines[0]
        if head.lower().startswith(sec.title.lower() + ":"):
            head = head[len(sec.title) + 1:].strip()
        detail = next((ln for ln in lines[1:] if not ln.endswith(":")), "")
        text = f"{head} {detail}" if head.endswith(":") else (f"{head}; {detail}" if detail else head)
        out.append((sec.title, text if len(text) <= 300 else text[:297] + "..."))
    return out
