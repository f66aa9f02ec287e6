"""The variables of an :func:`analysis.regimes` result, declared once (like ``collector.dataset.schema.VARIABLES``), and
one of its anomalous segments as a value (:class:`Segment`: compare and the figures read them alike).

:func:`analysis.regimes.regimes` builds its result from this table, and the
modules that read a result (summary, tables, comparison, figures) take their
field lists from it instead of restating them.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.core.outputs import ResultVar

__all__ = [
    "BUDGET", "POWER", "SEGMENT", "SERIES", "ResultVar", "VARIABLES", "SEGMENT_BOUNDS", "SEGMENT_EFFECT", "SEGMENT_REPORTED",
    "SEGMENT_SUMMARY", "Segment",
]

BUDGET = "budget"
SEGMENT = "segment"
SERIES = "series"
POWER = "power_ratio"


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
    "start_lo": ResultVar(SEGMENT, "start: lower end of its 95% confidence set"),
    "start_hi": ResultVar(SEGMENT, "start: upper end of its 95% confidence set"),
    "end_lo": ResultVar(SEGMENT, "end: lower end of its 95% confidence set"),
    "end_hi": ResultVar(SEGMENT, "end: upper end of its 95% confidence set"),
    "effect": ResultVar(SEGMENT, "ratio of the segment to the smooth curve (a regime: its fitted step)", "1"),
    "effect_lo": ResultVar(SEGMENT, "effect: 95% CI, lower", "1"),
    "effect_hi": ResultVar(SEGMENT, "effect: 95% CI, upper", "1"),
    "p": ResultVar(SEGMENT, "step-down adjusted p-value of the segment's step (family: its series)"),
    "q": ResultVar(SEGMENT, "p adjusted across the series (Benjamini-Bogomolov: p m / R)"),
    "reproducible": ResultVar(SEGMENT, "share of trials reproducing the segment"),
    "kind": ResultVar(SEGMENT, "normal, slow or fast"),
    "segment_anomalous": ResultVar(SEGMENT, "segment is an anomalous regime"),
    "confounded": ResultVar(SEGMENT, "budget effect not separable from execution time"),
    "clustered": ResultVar(SEGMENT, "segment's runs cluster in execution time"),
    "p_time": ResultVar(SEGMENT, "p-value of the budget term with a time term in the model"),
    "n_cells": ResultVar(SEGMENT, "runs with data"),
    "p_replicate": ResultVar(SEGMENT, "intersection-union p-value of the step in every process (the largest "
                             "per-process p; NaN: not checked, under 2 processes)"),
    "process_local": ResultVar(SEGMENT, "a step the test found that does not replicate in every process: not a regime"),
    "local_process": ResultVar(SEGMENT, "the process where the checked step is largest (-1: not checked)"),
    "local_effect": ResultVar(SEGMENT, "the checked step in local_process (ratio to the baseline)", "1"),
    "other_effect": ResultVar(SEGMENT, "the checked step in the other processes' runs together (ratio)", "1"),
    "noise": ResultVar(SERIES, "per-run noise (sd of log values)", "1"),
    "scaling": ResultVar(SERIES, "expected scaling fitted"),
    "p_series": ResultVar(SERIES, "scan p-value of a step anywhere in the series"),
    "q_series": ResultVar(SERIES, "Benjamini-Hochberg q-value of p_series across the series"),
    "mde": ResultVar(SERIES, "ratio of a one-budget interior step found with 80% power (alpha, whole decision rule)", "1"),
    "mde_4": ResultVar(SERIES, "ratio of a four-budget interior step found with 80% power (alpha, whole decision rule; "
                     "NaN under 12 budgets)", "1"),
    "scatter": ResultVar(SERIES, "the series' own budget-to-budget scatter around a smooth curve (sd of log values)", "1"),
    "cell_sd": ResultVar(SERIES, "noise of a cell mean the test uses: scatter moderated towards its origin's, never "
                       "below stated_sd (log units)", "1"),
    "stated_sd": ResultVar(SERIES, "noise of a cell mean stated by the file itself: the spread of the runs each value "
                         "averages (log units; NaN: none stated)", "1"),
    "df": ResultVar(SERIES, "degrees of freedom of cell_sd (own plus the origin prior's)"),
    "host_beta": ResultVar(SERIES, "multiple of the host state removed from the runs before the test (NaN: none)"),
    "scatter_unadjusted": ResultVar(SERIES, "scatter of the runs as measured, before the host state was removed", "1"),
    "power": ResultVar(POWER, "share of one-budget interior steps of that ratio found (alpha, whole decision rule)"),
    "noisy": ResultVar(SERIES, "per-run noise above {noisy} (log units)"),
    "n_processes": ResultVar(SERIES, "processes (passes of --processes) with runs (0: unknown)"),
}

#: Where a segment lies: its first and last budget and their 95 % confidence sets.
SEGMENT_BOUNDS: tuple[str, ...] = ("start", "end", "start_lo", "start_hi", "end_lo", "end_hi")
#: How strong a segment is: its ratio to the smooth curve and the 95 % CI.
SEGMENT_EFFECT: tuple[str, ...] = ("effect", "effect_lo", "effect_hi")
#: What a summary line says of a segment.
SEGMENT_SUMMARY: tuple[str, ...] = (*SEGMENT_BOUNDS, *SEGMENT_EFFECT, "q", "kind", "confounded")
#: The per-segment variables of the tables and the JSON output (the step scan's own p-values aside).
SEGMENT_REPORTED: tuple[str, ...] = (*SEGMENT_BOUNDS, *SEGMENT_EFFECT, "p", "q", "reproducible", "kind",
                                     "segment_anomalous", "confounded", "clustered", "p_time", "n_cells")


@dataclass(frozen=True)
class Segment:
    """One anomalous segment of one series of a result: first / last budget and their 95 % intervals (budget
    units; NaN: unknown), kind (``slow`` / ``fast``), effect (ratio to the smooth curve) and whether execution
    time explains it (``confounded``)."""

    start: float
    end: float
    start_lo: float
    start_hi: float
    end_lo: float
    end_hi: float
    kind: str
    effect: float
    confounded: bool = False

    @property
    def sign(self) -> int:
        """+1 for a slow regime, -1 for a fast one."""
        return -1 if self.kind == "fast" else 1
