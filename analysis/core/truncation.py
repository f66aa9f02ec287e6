"""Truncated runs: measured, but for fewer tokens than their budget, so left out along the budget axis.

A run of status ``truncated`` (schema v4; engine ``http`` against a server that stops at an end-of-sequence
token although asked not to) finished and kept its times, but they are those of the ``tokens`` it produced,
not of its budget. Placed at its budget it would look fast (a false dip, or a regime hidden); placed at its
length it would not be comparable either: the request still asked for ``max_tokens`` = the budget, which a
server may plan for (a KV cache sized by it), and the run ended on a token of its own choosing. So every
analysis leaves it out of the comparison along the budget axis (:func:`without_truncated`, applied by the
input checks), and the summaries of :func:`analysis.regimes` and :func:`analysis.step_regimes` say how
many runs were left out, where, and how long they were (:func:`truncation_lines`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from collector.dataset import schema

__all__ = ["TRUNCATED", "TIMING", "without_truncated", "truncated_counts", "truncation_lines"]

#: Status code of a truncated run.
TRUNCATED = schema.STATUS["truncated"]
#: The variables a truncated run holds for fewer tokens than its budget.
TIMING: tuple[str, ...] = tuple(schema.TIMING_VARS)


def without_truncated(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the times of truncated runs set to NaN (unchanged when it has none; lazy input stays lazy)."""
    if "status" not in ds.data_vars:
        return ds
    status = ds["status"]
    if status.chunks is None and not bool((np.asarray(status.values) == TRUNCATED).any()):
        return ds
    keep = status != TRUNCATED
    masked = {name: ds[name].where(keep) for name in TIMING if name in ds.data_vars
              and set(status.dims) <= set(ds[name].dims)}
    return ds.assign(masked) if masked else ds


def truncated_counts(ds: xr.Dataset) -> tuple[int, np.ndarray, np.ndarray]:
    """The truncated runs of ``ds``: how many, their budgets and the tokens each produced (0 and empty arrays
    when there are none, or no ``status``)."""
    if "status" not in ds.data_vars or "budget" not in ds["status"].dims:
        return 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    status = ds["status"]
    hit = np.asarray(status.values) == TRUNCATED
    n = int(hit.sum())
    if not n:
        return 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    budget = np.asarray(xr.broadcast(ds["budget"], status)[0].transpose(*status.dims).values)[hit]
    tokens = (np.asarray(ds["tokens"].broadcast_like(status).transpose(*status.dims).values)[hit]
              if "tokens" in ds.data_vars else np.full(n, -1))
    return n, budget.astype(np.int64), tokens.astype(np.int64)


def _list(values: np.ndarray, most: int = 8) -> str:
    shown = [str(int(v)) for v in values[:most]]
    return ", ".join(shown) + (f" and {values.size - most} more" if values.size > most else "")


def truncation_lines(ds: xr.Dataset, var: str = "latency") -> list[str]:
    """One line saying how many truncated runs an analysis of ``var`` left out (empty when none, or when
    ``var`` is not a time)."""
    if var not in TIMING:
        return []
    n, budget, tokens = truncated_counts(ds)
    if not n:
        return []
    produced = tokens[tokens >= 0]
    share = f"{int(produced.min())}-{int(produced.max())}" if produced.size else "?"
    budgets = np.unique(budget)
    return [f"{n} truncated run(s) left out (the server stopped before the budget: {share} tokens produced, at "
            f"budget(s) {_list(budgets)}): their times are for fewer tokens than their budget, so they are not "
            "compared along the budget axis; 'tokens' holds what each produced."]
