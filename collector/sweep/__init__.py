"""Running a sweep: the grid in a seeded order, each run in a worker process, every result journaled.

- :mod:`collector.sweep.runner`: :func:`~collector.sweep.runner.run_sweep` (order, isolation, retries,
  refinement rounds) and the events it reports.
- :mod:`collector.sweep.worker`: the measuring process (``python -m collector.sweep.worker``), the only
  side that imports torch; the sweep talks to it through :mod:`collector.shared.protocol`.
- :mod:`collector.sweep.journal`: the SQLite journal beside the output (resume, attempts, export).
- :mod:`collector.sweep.refine`: the adaptive bisection of the budget grid (torch-free).
- :mod:`collector.sweep.progress`: the live bar and the summary table of ``python -m collector run``.
- :mod:`collector.sweep.spec`: the sweep spec, from CLI flags and/or a TOML file; its value parsers in
  :mod:`collector.sweep.parsing`.
- :mod:`collector.sweep.failures`: how a failed run is classified (``error``, ``oom``, ``timeout``).

Nothing is imported here, so a worker starts without loading the sweep.
"""
