"""What every analysis shares: input checks, result tables, labels, origins, per-series blocks.

- :mod:`analysis.core.common`: the input checks every public function calls (``check_axes``), the
  series stacking and the shared helpers (``quiet``, ``get_regimes``).
- :mod:`analysis.core.outputs`: :class:`~analysis.core.outputs.ResultVar`, the table of the variables an
  analysis returns, and the numpydoc check of it.
- :mod:`analysis.core.series`: per-series work block by block (dask-friendly).
- :mod:`analysis.core.origins`: files from several hosts or protocols kept apart along ``origin``.
- :mod:`analysis.core.stacked`: several files as what was measured, the series with data stacked on ``series``.
- :mod:`analysis.core.labels`: names and units for people (tables, figures, the report).
- :mod:`analysis.core.limits`: memory and size limits checked before the work.

The bottom floor of the package: these modules import nothing of :mod:`analysis` outside ``core`` but
:mod:`analysis.errors` and :mod:`analysis.core.stats` (a test keeps it so). Nothing is imported here.
"""
