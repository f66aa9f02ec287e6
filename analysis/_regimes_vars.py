"""The variables of an :func:`analysis.regimes` result, declared once (like ``collector.schema.VARIABLES``).

:func:`analysis.regimes.regimes` builds its result from this table, and the
modules that read a result (summary, tables, comparison, figures) take their
field lists from it instead of restating them.
"""

from __future__ import annotations

from analysis._outputs import ResultVar

__all__ = [
    "BUDGET", "SEGMENT", "SERIES", "ResultVar", "VARIABLES", "SEGMENT_BOUNDS", "SEGMENT_EFFECT", "SEGMENT_REPORTED",
    "SEGMENT_SUMMARY",
]

BUDGET = "budget"
SEGMENT = "segment"
SERIES = "series"


#: Every variable of the result, in order (``long_name``: ``{var}`` and ``{noisy}`` are filled in; units
#: ``"{units}"``: the analysed variable's).
VARIABLES: dict[str, ResultVar] = {
    "anomalous": ResultVar(BUDGET, "budget lies in an anomalous regime"),
    "ratio": ResultVar(BUDGET, "observed / baseline of {var} (median over trials)", "1"),
    "baseline": ResultVar(BUDGET, "expected-scaling baseline of {var}", "{units}"),
    "regime": ResultVar(BUDGET, "segment id along the budget axis (-1: no data)"),
    "normal": ResultVar(BUDGET, "budget lies in the normal regime"),
    "start": ResultVar(SEGMENT, "first budget of the segment"),
    "end": ResultVar(SEGMENT, "last budget of the segment"),
    "start_lo": ResultVar(SEGMENT, "start: lower 95% bound under trial resampling"),
    "start_hi": ResultVar(SEGMENT, "start: upper 95% bound under trial resampling"),
    "end_lo": ResultVar(SEGMENT, "end: lower 95% bound under trial resampling"),
    "end_hi": ResultVar(SEGMENT, "end: upper 95% bound under trial resampling"),
    "effect": ResultVar(SEGMENT, "median ratio to the baseline", "1"),
    "effect_lo": ResultVar(SEGMENT, "effect: 95% bootstrap CI, lower", "1"),
    "effect_hi": ResultVar(SEGMENT, "effect: 95% bootstrap CI, upper", "1"),
    "p": ResultVar(SEGMENT, "p-value of the segment against the normal regime"),
    "q": ResultVar(SEGMENT, "Benjamini-Hochberg q-value across every tested segment"),
    "reproducible": ResultVar(SEGMENT, "share of trials reproducing the segment"),
    "kind": ResultVar(SEGMENT, "normal, slow or fast"),
    "segment_anomalous": ResultVar(SEGMENT, "segment is an anomalous regime"),
    "confounded": ResultVar(SEGMENT, "budget effect not separable from execution time"),
    "clustered": ResultVar(SEGMENT, "segment's runs cluster in execution time"),
    "p_time": ResultVar(SEGMENT, "p-value of the budget term with a time term in the model"),
    "n_cells": ResultVar(SEGMENT, "runs with data"),
    "noise": ResultVar(SERIES, "per-run noise (sd of log values)", "1"),
    "penalty": ResultVar(SERIES, "changepoint penalty used (squared log ratio)"),
    "scaling": ResultVar(SERIES, "expected scaling fitted"),
    "detected": ResultVar(SERIES, "changepoint search ran"),
    "step": ResultVar(SEGMENT, "step of the segment against a smooth curve through its neighbours (ratio)", "1"),
    "p_run": ResultVar(SEGMENT, "scan p-value under permutation of the series' runs"),
    "p_scatter": ResultVar(SEGMENT, "scan p-value against the budget-to-budget scatter"),
    "p_series": ResultVar(SERIES, "scan p-value of the strongest interval"),
    "q_series": ResultVar(SERIES, "Benjamini-Hochberg q-value across the series of min(p_series, its segments' p)"),
    "mde": ResultVar(SERIES, "minimum detectable ratio over one budget (alpha, 80% power)", "1"),
    "mde_4": ResultVar(SERIES, "minimum detectable ratio over four budgets (alpha, 80% power)", "1"),
    "scatter": ResultVar(SERIES, "budget-to-budget scatter around a smooth curve (sd of log values)", "1"),
    "noisy": ResultVar(SERIES, "per-run noise above {noisy} (log units)"),
}

#: Where a segment lies: its first and last budget and their 95 % intervals under trial resampling.
SEGMENT_BOUNDS: tuple[str, ...] = ("start", "end", "start_lo", "start_hi", "end_lo", "end_hi")
#: How strong a segment is: its median ratio to the baseline and the bootstrap CI.
SEGMENT_EFFECT: tuple[str, ...] = ("effect", "effect_lo", "effect_hi")
#: What a summary line says of a segment.
SEGMENT_SUMMARY: tuple[str, ...] = (*SEGMENT_BOUNDS, *SEGMENT_EFFECT, "q", "kind", "confounded")
#: The per-segment variables of the tables and the JSON output (the step scan's own p-values aside).
SEGMENT_REPORTED: tuple[str, ...] = (*SEGMENT_BOUNDS, *SEGMENT_EFFECT, "p", "q", "reproducible", "kind",
                                     "segment_anomalous", "confounded", "clustered", "p_time", "n_cells")
