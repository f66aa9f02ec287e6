"""Measuring one generation on a device: the only part of the collector that imports torch and transformers.

- :mod:`collector.measuring.measurement`: :func:`~collector.measuring.measurement.measure` and
  :func:`~collector.measuring.measurement.warmup` (``collector.measure`` is this function), the request check.
- :mod:`collector.measuring.engines`: the generation engines (``loop``, ``generate``).
- :mod:`collector.measuring.clock`: where time is read for each timing mode (``step``, ``events``, ``ends``).
- :mod:`collector.measuring.devices`: the cpu / cuda / mps backends (sync, events, memory calls).
- :mod:`collector.measuring.memory`: memory reads and the background peak sampler.
- :mod:`collector.measuring.models`: presets with random weights, hub ids and local paths.
- :mod:`collector.measuring.selfcheck`: the device probes of ``collector doctor`` (sync, step sums, memory, noise).
- :mod:`collector.measuring.environment`: the machine a sweep runs on (dataset attrs, resume check,
  ``collector info``); torch-free but for the device questions, asked inside functions.

Nothing is imported here. tests/test_import_graph.py checks that nothing outside this package imports torch.
"""
