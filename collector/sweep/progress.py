"""What a sweep shows a person: a live bar while it runs and a summary table at the end.

This is the command line's view (it writes to a :class:`rich.console.Console`);
the sweep itself never prints. The bar (on stderr) shows runs done / total,
the estimated time left, the current cell and the last latency. The summary
(:func:`summary_rows`, :func:`print_summary`) has one row per series (every
sweep dim but budget and trial; a dim shows as a column when the sweep has
several values of it, model, device and cache always): median latency
at the smallest and largest budget, ms per token between them, failures.
A dataset of several origins (a sweep measured on several hosts) has one
row per origin and series that origin measured, with an ``origin`` column.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import xarray as xr
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column, Table

from collector.dataset import schema
from collector.shared.factors import BY_NAME, SERIES_DIMS
from collector.shared.safetext import for_rich
from collector.sweep.runner import SweepEvent

__all__ = ["LiveProgress", "summary_rows", "print_summary"]


def _fmt_s(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.3f} s"


class LiveProgress:
    """A sweep's ``on_event`` callback that drives a rich live bar (nothing when ``quiet``).

    Use as a context manager around :func:`collector.sweep.runner.run_sweep`.
    """

    def __init__(self, *, quiet: bool = False, console: Console | None = None, label: str = "sweep") -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.label = label
        self._bar: Progress | None = None
        self._task: Any = None
        self.failed = 0
        self._plain, self._t0, self._next_line = False, time.monotonic(), 0.0
        self._done0: int | None = None

    #: Without a terminal (CI logs, nohup), one line each time this share of the runs is done.
    LINE_EVERY = 0.05

    def __enter__(self) -> "LiveProgress":
        self._plain = not self.quiet and not self.console.is_terminal
        if not self.quiet and not self._plain:
            # at 80 columns the label and the current cell give way (ellipsis); count and eta stay whole
            self._bar = Progress(
                TextColumn("[bold]{task.description}", table_column=Column(max_width=14, no_wrap=True,
                                                                            overflow="ellipsis")),
                BarColumn(bar_width=12), MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                console=self.console, transient=False, expand=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(for_rich(self.label), total=None, info="starting")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, event: SweepEvent) -> None:
        if event.record is not None and not event.record.ok:
            self.failed += 1
        if self._plain:
            self._line(event)
        if self._bar is None:
            return
        info = ""
        if event.key is not None and event.record is not None:
            k, rec = event.key, event.record
            what = _fmt_s(rec.latency) if rec.ok else rec.status.upper()
            info = for_rich(" ".join(_label(d, getattr(k, d)) for d in (*SERIES_DIMS, "budget", "trial")) + f": {what}")
        elif event.kind == "start":
            info = f"{event.done} already in the journal" if event.done else "starting"
        elif event.message:
            info = event.message
        if self.failed:
            info += f"  [red]{self.failed} failed[/red]"
        self._bar.update(self._task, completed=event.done, total=event.total, info=info)

    def _line(self, event: SweepEvent) -> None:
        """Without a terminal: a plain progress line at the start, every few percent, and at the end."""
        total, done = event.total, event.done
        if not total:
            return
        if self._done0 is None:  # runs already in the journal do not count towards the rate
            self._done0, self._t0 = done, time.monotonic()
        share = done / total
        if share < self._next_line and done < total:
            return
        self._next_line = (math.floor(share / self.LINE_EVERY) + 1) * self.LINE_EVERY
        elapsed = time.monotonic() - self._t0
        rate = (done - self._done0) / elapsed if elapsed > 0 else 0.0
        eta = _fmt_clock((total - done) / rate) if rate > 0 else "-"
        failed = f", {self.failed} failed" if self.failed else ""
        self.console.print(f"{for_rich(self.label)}: {done}/{total} runs ({100 * share:.0f}%), "
                           f"{_fmt_clock(elapsed)} elapsed, eta {eta}{failed}", highlight=False, soft_wrap=True)


def _fmt_clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _label(dim: str, value: Any) -> str:
    if BY_NAME[dim].kind == "bool":
        return f"{dim}={'on' if value else 'off'}"
    return str(value) if dim in ("model", "device", "dtype") else f"{dim}={value}"


def summary_rows(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One dict per series (every sweep dim but budget and trial) that has an applicable cell.

    Keys: each series dim, ``budget_min``, ``budget_max``, ``median_min`` /
    ``median_max`` (s, median latency of the ok runs at the smallest / largest
    budget that has any), ``ms_per_token`` ((median_max - median_min) /
    (budget_max - budget_min), in ms), ``ok``, ``failed`` (error + oom +
    timeout) and ``not_run`` counts. A dataset with an ``origin`` dim: also
    ``origin``, one row per origin and series that the origin measured (``not_run``
    counting the cells no origin measured).
    """
    if schema.ORIGIN_DIM in ds.dims:
        not_run = schema.STATUS["not_run"]
        nowhere = (ds["status"] == not_run).all(schema.ORIGIN_DIM)
        out = []
        for k, label in enumerate(ds[schema.ORIGIN_DIM].values.tolist()):
            for r in summary_rows(ds.isel({schema.ORIGIN_DIM: k}, drop=True)):
                if r["ok"] + r["failed"]:
                    cells = {d: r[d] for d in SERIES_DIMS}
                    out.append({"origin": str(label), **r, "not_run": int(nowhere.sel(cells).sum())})
        return out
    rows = []
    status = ds["status"]
    lat = ds["latency"].where(status == schema.STATUS["ok"])
    budgets = ds["budget"].values
    failed_codes = [schema.STATUS[k] for k in ("error", "oom", "timeout")]
    for idx in np.ndindex(*(ds.sizes[d] for d in SERIES_DIMS)):
        sel = {d: ds[d].values[i].item() for d, i in zip(SERIES_DIMS, idx)}
        st = status.sel(sel).values
        if (st == schema.STATUS["not_applicable"]).all():
            continue
        med = lat.sel(sel).median("trial", skipna=True).values
        have = np.isfinite(med)
        row: dict[str, Any] = dict(sel, ok=int((st == 0).sum()), failed=int(np.isin(st, failed_codes).sum()),
                                   not_run=int((st == schema.STATUS["not_run"]).sum()),
                                   budget_min=None, budget_max=None, median_min=math.nan,
                                   median_max=math.nan, ms_per_token=math.nan)
        if have.any():
            i, j = np.flatnonzero(have)[[0, -1]]
            row.update(budget_min=int(budgets[i]), budget_max=int(budgets[j]),
                       median_min=float(med[i]), median_max=float(med[j]))
            if j > i:
                row["ms_per_token"] = 1e3 * (med[j] - med[i]) / (budgets[j] - budgets[i])
        rows.append(row)
    return rows


def print_summary(ds: xr.Dataset, path: str, console: Console | None = None) -> None:
    """Print the summary table of a sweep's dataset and where it was written."""
    console = console or Console()
    rows = summary_rows(ds)
    shown = [d for d in SERIES_DIMS if d in ("model", "device", "cache") or len({r[d] for r in rows}) > 1]
    if schema.ORIGIN_DIM in ds.dims:
        shown.insert(0, schema.ORIGIN_DIM)
    table = Table(title=f"{for_rich(ds.attrs.get('title', 'sweep'))} "
                        f"({'simulated' if int(ds.attrs.get('simulated', 0)) else 'measured'})",
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, collapse_padding=True,
                  show_edge=False)
    for col in [*shown, "budgets", "median latency", "ms/token", "ok", "fail"]:
        kind = BY_NAME[col].kind if col in BY_NAME else "str" if col == schema.ORIGIN_DIM else "int"
        table.add_column(col, justify="left" if kind == "str" else "right", no_wrap=True)
    for r in rows:
        cells = [("on" if r[d] else "off") if d in BY_NAME and BY_NAME[d].kind == "bool" else for_rich(r[d])
                 for d in shown]
        span = f"{r['budget_min']}..{r['budget_max']}" if r["budget_min"] is not None else "-"
        med = f"{_fmt_s(r['median_min'])} .. {_fmt_s(r['median_max'])}" if r["budget_min"] is not None else "-"
        mpt = f"{r['ms_per_token']:.2f}" if math.isfinite(r["ms_per_token"]) else "-"
        failed = f"[red]{r['failed']}[/red]" if r["failed"] else "0"
        table.add_row(*cells, span, med, mpt, str(r["ok"]), failed)
    console.print(table)
    not_run = (int((ds["status"] == schema.STATUS["not_run"]).all(schema.ORIGIN_DIM).sum())
               if schema.ORIGIN_DIM in ds.dims else sum(r["not_run"] for r in rows))
    if not_run:
        console.print(f"{not_run} cells not run (refinement budgets of other series, or an interrupted sweep)")
    console.print(f"wrote {for_rich(path)}")
