"""The noise of the doctor's probe and the smallest regime a default sweep could detect at that noise.

The per-run noise is the robust spread of log latency over the probe's runs
(``s = 1.4826 * MAD(log latency)``, as a CV ``sqrt(exp(s**2) - 1)``, the
way :mod:`collector.shared.sim` states its ``noise_cv``). The smallest detectable
effect is not a formula of ours: a null sweep of the default size
(:func:`default_grid`: the quick sweep's budgets, trials, cache values and
prompt length) is simulated by :func:`analysis.synthetic.make_dataset` at
that CV (no drift, no run-level states, no planted regime) and
:func:`analysis.regimes` is run on it; its stated ``mde`` (the ratio of a
one-budget regime found with 80 % power, whole decision rule) is the answer.

This is the one place the collector imports :mod:`analysis` (inside
:func:`implied_mde`, so importing the doctor does not): analysis never
imports the doctor, so there is no cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from collector.doctor.report import Check
from collector.shared.factors import factor

__all__ = ["MDE_LIMIT", "SLOW_RUN", "default_grid", "implied_mde", "noise_check", "robust_cv"]

#: Smallest detectable ratio of a default sweep above which the noise warns.
MDE_LIMIT = 1.5
#: A run this many times the median is a slow run (a run-level state).
SLOW_RUN = 1.5
#: Share of slow runs above which the noise warns.
SLOW_SHARE = 0.1


def robust_cv(latencies: Sequence[float] | np.ndarray) -> float:
    """CV of a log-normal run factor with the robust spread of ``log(latencies)`` (NaN for fewer than 3 runs)."""
    x = np.log(np.asarray([v for v in latencies if v > 0 and math.isfinite(v)], dtype=float))
    if x.size < 3:
        return math.nan
    s = 1.4826 * float(np.median(np.abs(x - np.median(x))))
    return math.sqrt(math.expm1(s * s))


def default_grid() -> dict[str, Any]:
    """The quick default sweep's size (budgets, trials, cache, prompt length) from the factor declarations."""
    return {"budgets": tuple(factor("budget").default or ()), "trials": int((factor("trial").default or (3,))[0]),
            "caches": tuple(factor("cache").default or (True, False)),
            "prompt_lens": tuple(factor("prompt_len").default or (8,))}


def implied_mde(cv: float, *, seed: int = 0) -> tuple[float, float, str]:
    """(mde, mde_4, the sweep's size) of :func:`analysis.regimes` on a simulated default-sized null sweep at ``cv``.

    The median over the sweep's series (cache on, cache off). Raises
    :class:`ImportError` when the analysis cannot be imported here.
    """
    import analysis
    from analysis.synthetic import make_dataset

    grid = default_grid()
    ds = make_dataset(seed=seed, models=("distilgpt2",), devices=("sim",), regimes=(), noise_cv=max(float(cv), 1e-4),
                      step_cv=0.0, drift=0.0, run_state_prob=0.0, step_time=False, **grid)
    res = analysis.regimes(ds)
    mde = float(np.nanmedian(np.asarray(res["mde"].values, dtype=float)))
    mde4 = float(np.nanmedian(np.asarray(res["mde_4"].values, dtype=float)))
    return mde, mde4, f"{len(grid['budgets'])} budgets x {grid['trials']} trials x cache on/off"


def noise_check(latencies: Sequence[float], runs: int, errors: Sequence[str] = (), *,
                cell: str = "tiny-gpt2, budget 16, prompt 8, cache on") -> Check:
    """Judge the probe's latencies: their noise, slow runs, and the mde a default sweep would state at that noise.

    Warns when fewer than half the runs succeeded, when over :data:`SLOW_SHARE`
    of them are :data:`SLOW_RUN` times the median, or when the implied mde is
    over :data:`MDE_LIMIT`.
    """
    lat = np.asarray(latencies, dtype=float)
    values: dict[str, Any] = {"runs": runs, "ok_runs": int(lat.size), "errors": list(errors)[:5], "cell": cell}
    if lat.size < max(3, runs // 2):
        first = f": {errors[0]}" if errors else ""
        return Check("noise", "noise", "warn", f"only {lat.size} of {runs} probe runs succeeded{first}",
                     fix="rerun with more --runs; if runs fail, report this file", values=values)
    med = float(np.median(lat))
    cv = robust_cv(lat)
    slow = int((lat > SLOW_RUN * med).sum())
    try:
        mde, mde4, grid = implied_mde(cv)
        power = (f"a default sweep ({grid}) at this noise finds a one-budget regime of x{mde:.2f} with 80% power "
                 "(analysis.regimes' mde on a simulated null sweep)")
    except ImportError as exc:  # the analysis' dependencies are missing here: the noise is still reported
        mde = mde4 = math.nan
        grid = ""
        power = f"no mde: the analysis cannot be imported here ({exc})"
    values.update({"median_s": med, "min_s": float(lat.min()), "max_s": float(lat.max()), "cv_robust": cv,
                   "cv": float(lat.std(ddof=1) / lat.mean()), "slow_runs": slow, "mde": mde, "mde_4": mde4,
                   "mde_limit": MDE_LIMIT, "default_sweep": grid, "mde_method": "analysis.regimes on "
                   "analysis.synthetic.make_dataset (null, default sweep size, noise_cv = cv_robust)"})
    line = (f"{lat.size} runs of {cell}: median {med * 1e3:.3g} ms, noise CV {cv:.1%} (robust), "
            f"{slow} slow run(s) over x{SLOW_RUN}; {power}")
    problems, fixes = [], []
    if slow > SLOW_SHARE * lat.size:
        problems.append(f"{slow} of {lat.size} runs were over x{SLOW_RUN} the median (run-level slow states)")
        fixes.append("look for background work or thermal throttling; run sweeps with --processes and more --trials")
    if grid and (not math.isfinite(mde) or mde > MDE_LIMIT):
        problems.append(f"the mde x{mde:.2f} is over x{MDE_LIMIT}")
        fixes.append("quiet the machine (see the host checks) or raise --trials: regimes smaller than the mde "
                     "go unseen")
    if problems:
        return Check("noise", "noise", "warn", line + ": " + "; ".join(problems), fix="; ".join(fixes), values=values)
    return Check("noise", "noise", "ok", line, values=values)
