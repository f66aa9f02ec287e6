"""The per-question analyses, each on a regimes result (:mod:`analysis.detect.blocks`) and the runs:

- :mod:`~analysis.questions.phases`: which phase (prefill, decode) carries a regime's excess;
- :mod:`~analysis.questions.memory`: does memory explain it;
- :mod:`~analysis.questions.kv`: the KV-cache speedup and its collapse;
- :mod:`~analysis.questions.monotonicity`: residual non-monotonicity;
- :mod:`~analysis.questions.steps`: execution modes along the steps of a run;
- :mod:`~analysis.questions.boundaries`: does an onset follow the budget or the total length;
- :mod:`~analysis.questions.backends`: which devices show regimes;
- :mod:`~analysis.questions.spread`: how much the runs of one cell disagree.

Each is one function of :data:`analysis.registry.ANALYSES` (``analysis.phases``, ``analysis.kv_speedup``,
...). Nothing is imported here.
"""
