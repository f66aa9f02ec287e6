"""The options of :func:`analysis.regimes.regimes` that name a rule, declared once (the CLI's choices too).

The changepoint search that used to cut the budget axis (ruptures) was replaced by the step-down scan
(:mod:`analysis.detect.inference`): every interval is a candidate, the test decides. ``method`` stays accepted,
deprecated, for one release.
"""

from __future__ import annotations

__all__ = ["METHODS", "MIN_NORMAL_SHARE", "NORMAL_RULES"]

#: The changepoint searches ``regimes(method=...)`` accepted; deprecated (the scan tests every interval).
METHODS: tuple[str, ...] = ("pelt", "binseg", "dynp", "kernel")
#: Which level of a series is normal (:func:`analysis.regimes.regimes`, ``normal=``).
NORMAL_RULES: tuple[str, ...] = ("lowest", "highest", "majority")
#: A level must cover at least this share of a series' budgets to be its normal regime under ``lowest`` /
#: ``highest`` (the expected scaling, not the majority, decides which level is normal).
MIN_NORMAL_SHARE = 0.25
