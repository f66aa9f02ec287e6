"""Analysis results as tables of strings, shared by the command line, the HTML report and the markdown summary.

- :mod:`analysis.tables.table`: the :class:`~analysis.tables.table.Table` and its helpers.
- :mod:`analysis.tables.results`: the tables of the regimes and compare results.
- :mod:`analysis.tables.questions`: the tables of the per-question analyses (phases, memory, kv, ...).

Nothing is imported here: each user imports the module it needs.
"""
