"""Running a sweep: the grid in a seeded order, each run in a worker process, every result journaled.

- :mod:`collector.sweep.runner`: :func:`~collector.sweep.runner.run_sweep` (order, isolation, retries,
  refinement rounds) and the events it reports.
- :mod:`collector.sweep.worker`: the measuring process (``python -m collector.sweep.worker``), the only
  side that imports torch; the sweep talks to it through :mod:`collector.protocol`.
- :mod:`collector.sweep.journal`: the SQLite journal beside the output (resume, attempts, export).
- :mod:`collector.sweep.refine`: the adaptive bisection of the budget grid (torch-free).
- :mod:`collector.sweep.progress`: the live bar and the summary table of ``python -m collector run``.

Nothing is imported here, so a worker starts without loading the sweep.
"""
