"""Figures of datasets and analysis results (matplotlib, no pyplot state; headless-safe).

Every function takes a Dataset (or an analysis result) and returns a
:class:`matplotlib.figure.Figure`; save it with ``fig.savefig(path)``.
Figures of simulated data say so in their title. Anomalous regimes are
shaded from their first to their last budget (artists whose ``gid`` starts
with ``regime``; :func:`regime_extents` lists them), with the 95 %
intervals of their boundaries as bars along the top. A figure draws only
what was measured and analysed: a regime over budgets its series skipped is
one span per measured stretch, a line across such budgets is dotted, series
of one budget get no panel, a legend names only what is drawn, and a figure
whose analysis did not apply raises :class:`~analysis.errors.InputError`
saying why (drift without an execution order; phases without a split regime).

============================  ====================================================
:func:`latency`               latency (any variable) vs budget, small multiples
:func:`decode_per_token`      decode time per decoded token vs budget
:func:`phases`                prefill and decode time around each regime
:func:`kv_speedup`            cache-off / cache-on speedup, CI band, collapse
:func:`memory`                memory covariates vs budget with the regimes
:func:`regime_map`            budget x step heat map of per-step time
:func:`drift`                 runs over their baseline in execution order
:func:`compare`               an :func:`analysis.compare` result
:func:`pvalue_qq`             scan p-values of null sweeps against the uniform
:func:`power`                 each series' power curve and its minimum detectable ratio
============================  ====================================================
"""

from __future__ import annotations

from analysis.plot._regimes import regime_extents
from analysis.plot.calibration import pvalue_qq
from analysis.plot.compare import compare
from analysis.plot.drift import drift
from analysis.plot.kv import kv_speedup
from analysis.plot.latency import decode_per_token, latency
from analysis.plot.memory import memory
from analysis.plot.phases import phases
from analysis.plot.power import power
from analysis.plot.regime_map import regime_map

__all__ = [
    "compare",
    "decode_per_token",
    "drift",
    "kv_speedup",
    "latency",
    "memory",
    "phases",
    "power",
    "pvalue_qq",
    "regime_extents",
    "regime_map",
]
