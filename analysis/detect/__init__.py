"""The machinery of :func:`analysis.regimes` (the analysis itself is ``analysis/regimes.py``).

- :mod:`~analysis.detect.engine`: the per-series engine (scales, the scan of every series, what a result
  reports of it), pure numpy over blocks of series;
- :mod:`~analysis.detect.inference`: the step-down max-|Z| permutation scan, its null draws, effects and
  power; :mod:`~analysis.detect.scan`: the scan statistic (a step against any smooth curve);
- :mod:`~analysis.detect.baseline`: the expected-scaling fits; :mod:`~analysis.detect.segments`: the
  rules a result's segments follow;
- :mod:`~analysis.detect.confound`: execution time (the time check and the host-state covariate);
- :mod:`~analysis.detect.variables`: the result's variables; :mod:`~analysis.detect.summary`: its
  lines for people; :mod:`~analysis.detect.blocks`: a regimes result as the input of the other analyses.

Nothing is imported here.
"""
