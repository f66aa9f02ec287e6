"""Progress of a report on stderr: a live bar on a terminal, a line per step for large inputs otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import numpy as np

__all__ = ["LARGE_CELLS", "ProgressCallback", "progress_for"]

#: From this many cells (sweep cells x trials) a report counts as large and reports progress even when piped.
LARGE_CELLS = 10_000

ProgressCallback = Callable[[str, int, int], None]


@contextlib.contextmanager
def progress_for(ds: Any, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[ProgressCallback | None]:
    """A ``(step, done, total)`` callback for :func:`analysis.report`, or None when nothing should be shown."""
    stream = stream or sys.stderr
    cells = int(np.prod([n for d, n in ds.sizes.items() if d != "step"], dtype=np.int64)) if ds is not None else 0
    from collector.shared.safetext import for_rich, visible

    if quiet:
        yield None
        return
    if stream.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("report"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.description}"), console=Console(file=stream), transient=True)
        with bar:
            task = bar.add_task("", total=None)

            def on_step(step: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=for_rich(step))

            yield on_step
        return
    if cells < LARGE_CELLS:
        yield None
        return

    def on_line(step: str, done: int, total: int) -> None:
        print(f"report: {done}/{total} {visible(step)}", file=stream, flush=True)

    yield on_line
