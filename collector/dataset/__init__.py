"""Datasets and files: the netCDF contract between the collector and the analysis, and what reads,
writes, combines and imports files.

- :mod:`collector.dataset.schema`: the dataset contract (``validate``, ``save``, ``load``, ``upgrade``);
  also importable under its stable public name :mod:`collector.schema`.
- :mod:`collector.dataset.schemadoc`: the schema reference (docs/schema.md) rendered from the schema.
- :mod:`collector.dataset.combine`: combining datasets of several files, hosts and protocols (torch-free).
- :mod:`collector.dataset.storage`: output paths checked up front, atomic writes, write failures named.
- :mod:`collector.dataset.tidy`: one row per run for pandas and R (``collector export --csv``).
- :mod:`collector.dataset.export`: from a sweep's journal to a dataset, and merging datasets.
- :mod:`collector.dataset.identity`: the same file or the same runs given twice to merge or import-study.
- :mod:`collector.dataset.foreign`: reading files the package did not write (one text decoder, bounded JSON).
- :mod:`collector.dataset.study_import`: ``collector import-study``, the MPS study harness's files.

The modules the analysis reads with (schema, schemadoc, combine, storage, tidy) never import torch
(tests/test_import_graph.py); nothing is imported here.
"""
