"""The collector's shared vocabulary: torch-free pieces that every other part, and the analysis, imports.

- :mod:`collector.shared.errors`: the exception classes of the collector.
- :mod:`collector.shared.hardware`: the devices and dtypes, declared once.
- :mod:`collector.shared.factors`: the sweep factors, declared once (dims, choices, applicability).
- :mod:`collector.shared.record`: the immutable record of one measured or simulated generation.
- :mod:`collector.shared.protocol`: the messages between a sweep and its workers, the measuring protocol.
- :mod:`collector.shared.sim`: the simulated latency model of device ``sim`` (numpy only) and its
  fitted noise presets (``sim_calibration.json``).
- :mod:`collector.shared.trend`: the robust trend of latency over the budget (analysis and refinement).
- :mod:`collector.shared.safetext`: strings from files made safe for a terminal.

This package imports nothing of the collector outside itself (tests/test_import_graph.py checks it), and
nothing is imported here.
"""
