"""The expected-scaling baseline: a robust polynomial fit of latency against budget.

About linear in the budget with the KV cache, about quadratic without it. The fit itself
(:func:`robust_fit`, :func:`design`, :func:`monotone_design`) is :mod:`collector.shared.trend`, shared with
the collector's refinement; this module adds the scaling names and the choice of degree.
"""

from __future__ import annotations

import numpy as np

from collector.shared.trend import LEAN_C, design, monotone_design, robust_fit

__all__ = ["DEGREE", "LEAN_C", "SCALINGS", "choose_degree", "design", "monotone_design", "robust_fit"]

#: Scaling names and their polynomial degree in the budget.
SCALINGS: tuple[str, ...] = ("auto", "constant", "linear", "quadratic")
DEGREE: dict[str, int] = {"constant": 0, "linear": 1, "quadratic": 2}


def choose_degree(m: np.ndarray, x: np.ndarray, scale_floor: np.ndarray | float = 0.01) -> np.ndarray:
    """Pick linear (1) or quadratic (2) per series by BIC of the robust fits.

    Used when ``scaling="auto"`` and the data say nothing about the cache.
    Returns ``(series,)`` degrees.
    """
    ok = np.isfinite(m)
    n = np.maximum(ok.sum(axis=1), 1)
    bic = []
    for deg in (1, 2):
        base, w = robust_fit(m, x, deg, scale_floor=scale_floor)
        r = np.where(ok, m - np.log(base), 0.0)
        sse = np.sum(w * r**2, axis=1) / np.maximum(w.sum(axis=1), 1e-12) * n
        bic.append(n * np.log(np.maximum(sse / n, 1e-300)) + (deg + 1) * np.log(n))
    return np.where(bic[1] < bic[0] - 2.0, 2, 1)
