"""The verdicts of ``collector diagnose``: per regime and factor, moved / vanished / stayed / not tested.

From what :func:`collector.diagnose.execute.run_questions` measured, each
question's condition is read with :func:`collector.diagnose.evidence.read`
(each tested cell's side by Wald's SPRT; the regime's effect with a t
interval) and compared with the file's setting measured by ``refine``:

``refine`` (factor ``boundary``)
    *stayed* when the regime came back at the file's setting (its effect and
    the located boundaries), *vanished* when its cells are normal there.
``prompt_len``
    *moved* when the budget ``first' - d`` is inside with a prompt ``d``
    tokens longer: the onset follows the total length (the shift of the
    onset in tokens, its interval from the bracketing budgets); *stayed* when
    it is outside and ``first'`` inside (the onset follows the budget).
``process``
    *vanished* (process-local) when some fresh processes show the regime and
    others do not (each process's own tests), or when the tests pooled over
    every process (each relative to its own reference runs) find the tested
    cells normal; *stayed* when the pooled tests find them inside.
``cache_impl``, ``attn``, ``dtype``, ``engine``, ``warmup``
    *vanished* when every tested cell is normal with the other value; when
    every one is inside, the ratio of the effects (other / file's setting)
    with its Welch t interval (a factor's sweep and refine ran in different
    processes: where the process question measured how much the effect
    varies between processes, that variance is in the interval,
    DerSimonian-Laird), *moved* when its test is significant after
    Benjamini-Hochberg over every such test of the diagnosis
    (:func:`analysis.compare.statistics.bh`), else *stayed*; *moved* too
    when some tested cells changed side (a boundary moved).

A cell whose test is still open after ``max_trials`` makes its question
*not tested* (not settled), as do questions left out (time, ``--questions``)
or not applicable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from collector.diagnose.evidence import Reading, read, read_pooled
from collector.diagnose.execute import Measured

__all__ = ["FDR", "VERDICTS", "Verdict", "judge"]

#: The verdicts.
VERDICTS: tuple[str, ...] = ("moved", "vanished", "stayed", "not tested")
#: False discovery rate of the effect-ratio tests (Benjamini-Hochberg over the diagnosis).
FDR = 0.05
#: Confidence level of the intervals.
LEVEL = 0.95
_FACTOR = {"refine": "boundary"}


@dataclass(frozen=True)
class Verdict:
    """One row of the verdict table.

    Attributes
    ----------
    regime
        The regime's number; ``factor`` the question's factor (``boundary`` for refine).
    verdict
        One of :data:`VERDICTS`; ``detail`` says what was seen, or why not tested.
    estimate, lo, hi, unit
        By how much (``x``: effect with the other value over the effect at the file's setting, or the
        effect itself for ``boundary``; ``tokens``: the onset's shift), with its interval; NaN when none.
    p, q
        The test of the effect ratio and its BH level (NaN when none).
    runs
        Runs the question measured.
    """

    regime: int
    factor: str
    verdict: str
    detail: str
    estimate: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    unit: str = ""
    p: float = math.nan
    q: float = math.nan
    runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (NaN as None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _t(df: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + LEVEL / 2) if not math.isfinite(df) else stats.t.ppf(0.5 + LEVEL / 2, df))


def _ratio(a: Reading, r: Reading, between: tuple[float, float] = (0.0, math.inf)) -> tuple[float, float, float, float]:
    """(ratio, lo, hi, p) of exp(a - r) in log effect (Welch). ``between``: the variance of a regime's log effect
    from one process to the next and its degrees of freedom (:func:`_between_processes`); ``a`` and ``r`` were
    measured in different processes, so their difference carries it twice (Satterthwaite's degrees of freedom)."""
    from scipy import stats

    d = a.log_effect - r.log_effect
    tau2, tau_df = between
    se = math.sqrt(a.se**2 + r.se**2 + 2.0 * tau2)
    if not (math.isfinite(d) and math.isfinite(se) and se > 0):
        return math.nan, math.nan, math.nan, math.nan
    parts = [(x.se**2, x.df) for x in (a, r)] + ([(2.0 * tau2, tau_df)] if tau2 > 0 else [])
    if all(math.isfinite(df) for _, df in parts):
        df = se**4 / sum(v**2 / df for v, df in parts if df > 0)
    else:
        df = math.inf
    t = _t(df)
    p = float(2 * (stats.norm.sf(abs(d) / se) if not math.isfinite(df) else stats.t.sf(abs(d) / se, df)))
    return math.exp(d), math.exp(d - t * se), math.exp(d + t * se), p


def _fx(r: Reading) -> str:
    if not math.isfinite(r.log_effect):
        return "x?"
    t = _t(r.df)
    return f"x{math.exp(r.log_effect):.2f} [{math.exp(r.log_effect - t * r.se):.2f}, " \
           f"{math.exp(r.log_effect + t * r.se):.2f}]"


def _open(r: Reading) -> list[int]:
    return [b for b, s in r.sides.items() if s.side == "open"]


def _refine(m: Measured, ref: Reading, runs: int) -> Verdict:
    t, c = m.target, m.cells
    assert c is not None
    if _open(ref):
        return Verdict(t.number, "boundary", "not tested", f"budgets {_open(ref)} not settled within the trials "
                       "allowed", runs=runs)
    if not c.reproduced:
        return Verdict(t.number, "boundary", "vanished", f"budgets {', '.join(map(str, c.tested))} are normal at "
                       f"the file's setting in a fresh process ({_fx(ref)}; the file: x{t.effect:.2f})", runs=runs)
    where = []
    for label, a, b, ok in (("onset", c.lo, c.first, c.located[0]), ("recovery", c.last, c.hi, c.located[1])):
        if a is None or b is None:
            where.append(f"{label} at the grid's edge")
        else:
            where.append(f"{label} between {a} and {b}" + (" (located)" if ok else " (not located to 1 token)"))
    e, tt = ref.log_effect, _t(ref.df)
    return Verdict(t.number, "boundary", "stayed", f"came back at the file's setting: {_fx(ref)}; " + "; ".join(where),
                   math.exp(e), math.exp(e - tt * ref.se), math.exp(e + tt * ref.se), "x", runs=runs)


def _per_process(m: Measured) -> list[Reading]:
    """The regime as each fresh process of the ``process`` question measured it (one run a cell may decide)."""
    c = m.cells
    assert c is not None
    parts = m.samples["process"]
    return [read(parts[p], reference=c.reference, tested=c.tested, target=m.target, min_trials=1)
            for p in sorted(parts)]


def _process(m: Measured, runs: int) -> Verdict:
    t, c = m.target, m.cells
    assert c is not None
    parts = m.samples["process"]
    readings = _per_process(m)
    pooled = read_pooled(parts, reference=c.reference, tested=c.tested, target=t)
    n = len(readings)
    k_in = sum(r.all("in") for r in readings)
    k_out = sum(r.all("out") for r in readings)
    effects = ", ".join(_fx(r).split(" ")[0] for r in readings)
    if k_in and k_out:
        return Verdict(t.number, "process", "vanished", f"process-local: in {k_in} of {n} fresh processes, absent "
                       f"from {k_out} ({effects}; the file's process: x{t.effect:.2f})", runs=runs)
    e, tt = pooled.log_effect, _t(pooled.df)
    amount = (math.exp(e), math.exp(e - tt * pooled.se), math.exp(e + tt * pooled.se)) if math.isfinite(e) else \
        (math.nan, math.nan, math.nan)
    if pooled.all("in"):
        return Verdict(t.number, "process", "stayed", f"replicated in {n} fresh processes: {_fx(pooled)} over all "
                       f"(each: {effects})", *amount, "x", runs=runs)
    if pooled.all("out"):
        return Verdict(t.number, "process", "vanished", f"process-local: in none of {n} fresh processes "
                       f"({_fx(pooled)} over all; the file's process: x{t.effect:.2f})", *amount, "x", runs=runs)
    return Verdict(t.number, "process", "not tested", f"not settled in {n} fresh processes ({effects})", runs=runs)


def _prompt(m: Measured, runs: int, min_trials: int) -> Verdict:
    t, c = m.target, m.cells
    assert c is not None
    x = m.extra["prompt_len"]
    d, p2 = int(x["shift"]), int(x["prompt_len"])
    a = read(m.samples["prompt_len"][0], reference=x["reference"], tested=x["tested"], target=t,
             min_trials=min_trials)
    if _open(a):
        return Verdict(t.number, "prompt_len", "not tested", f"budgets {_open(a)} not settled within the trials "
                       "allowed", runs=runs)
    lo = c.lo if c.lo is not None else c.first - 1
    shifted, first, last = (a.sides[b].side for b in (c.first - d, c.first, c.last))
    rec = "" if last == "in" else f"; budget {c.last} is normal too: the recovery moved as well"
    if shifted == "in":
        return Verdict(t.number, "prompt_len", "moved", f"the onset follows the total length: with the prompt {d} "
                       f"tokens longer (prompt_len {p2}) budget {c.first - d} is inside{rec}",
                       -d, lo + 1 - c.first - d, c.first - lo - 1 - d, "tokens", runs=runs)
    if first == "in":
        return Verdict(t.number, "prompt_len", "stayed", f"the onset follows the budget: with prompt_len {p2}, "
                       f"budget {c.first - d} is normal and {c.first} inside{rec}", 0.0, 1 - d, c.first - lo - 1,
                       "tokens", runs=runs)
    return Verdict(t.number, "prompt_len", "vanished" if last == "out" else "moved",
                   f"with prompt_len {p2}, budgets {c.first - d} and {c.first} are normal"
                   + ("" if last == "out" else f" and {c.last} inside: the onset moved later"), runs=runs)


def _between_processes(m: Measured, ref: Reading | None) -> tuple[float, float]:
    """How much the regime's log effect varies from one process to the next, and on how many degrees of freedom.

    Each fresh process of the ``process`` question and the process of ``refine`` gives a log effect with its
    standard error; their spread beyond those errors is the between-process variance, estimated by
    DerSimonian and Laird's moment estimator (1986, "Meta-analysis in clinical trials"), on ``k - 1`` degrees of
    freedom for ``k`` processes. ``(0, inf)`` when fewer than two processes measured it (the process question
    not asked, or left out). A factor's sweep is a fresh process of its own, compared with refine's: without
    this term a regime whose size differs between processes (seen on a GPU: x1.74, x1.99 and x2.35 in three
    fresh processes, x2.83 in refine's) would be *moved* by whatever factor was asked."""
    if m.cells is None or not m.samples.get("process") or ref is None:
        return 0.0, math.inf
    readings = [*_per_process(m), ref]
    y = [(r.log_effect, r.se) for r in readings if math.isfinite(r.log_effect) and math.isfinite(r.se) and r.se > 0]
    if len(y) < 2:
        return 0.0, math.inf
    w = [1.0 / se**2 for _, se in y]
    mean = math.fsum(wi * e for wi, (e, _) in zip(w, y)) / math.fsum(w)
    q = math.fsum(wi * (e - mean) ** 2 for wi, (e, _) in zip(w, y))
    denom = math.fsum(w) - math.fsum(wi**2 for wi in w) / math.fsum(w)
    return max(0.0, (q - (len(y) - 1)) / denom) if denom > 0 else 0.0, float(len(y) - 1)


def _factor(m: Measured, name: str, ref: Reading, runs: int, min_trials: int,
            between: tuple[float, float] = (0.0, math.inf)) -> Verdict:
    t, c = m.target, m.cells
    assert c is not None
    a = read(m.samples[name][0], reference=c.reference, tested=c.tested, target=t, min_trials=min_trials)
    x = m.extra.get(name, {})
    what = f"{name}={x.get('value')} (the file: {x.get('of')})"
    if _open(a):
        return Verdict(t.number, name, "not tested", f"with {what}, budgets {_open(a)} not settled within the "
                       "trials allowed", runs=runs)
    ratio, lo, hi, p = _ratio(a, ref, between)
    if between[0] > 0:
        what += f" (the effect varies x{math.exp(math.sqrt(between[0])):.2f} between processes: in the interval)"
    if a.all("out"):
        return Verdict(t.number, name, "vanished", f"with {what}: {_fx(a)} at budgets "
                       f"{', '.join(map(str, c.tested))}, where the file's setting gives {_fx(ref)}",
                       ratio, lo, hi, "x", p, runs=runs)
    if a.all("in"):
        return Verdict(t.number, name, "stayed", f"with {what}: {_fx(a)}, the file's setting {_fx(ref)}",
                       ratio, lo, hi, "x", p, runs=runs)
    changed = [b for b, s in a.sides.items() if s.side == "out"]
    return Verdict(t.number, name, "moved", f"with {what} budgets {', '.join(map(str, changed))} are normal "
                   "(a boundary moved)", ratio, lo, hi, "x", p, runs=runs)


def _one(m: Measured, name: str, ref: Reading | None, min_trials: int,
         between: tuple[float, float] = (0.0, math.inf)) -> Verdict:
    runs = m.runs.get(name, 0)
    status = m.status.get(name, "left out")
    if status != "done" or m.cells is None or ref is None:
        why = m.why.get(name, "") or status
        return Verdict(m.target.number, _FACTOR.get(name, name), "not tested",
                       f"{status}: {why}" if why != status else status, runs=runs)
    if name == "refine":
        return _refine(m, ref, runs)
    if name == "process":
        return _process(m, runs)
    if name == "prompt_len":
        return _prompt(m, runs, min_trials)
    return _factor(m, name, ref, runs, min_trials, between)


def judge(measured: Sequence[Measured], questions: Sequence[str], *, min_trials: int = 2) -> list[Verdict]:
    """The verdict table: one row per regime and question (see the module docstring)."""
    import numpy as np

    from analysis.compare.statistics import bh

    rows: list[Verdict] = []
    for m in measured:
        ref = None
        if m.cells is not None and "refine" in m.samples:
            ref = read(m.samples["refine"][0], reference=m.cells.reference, tested=m.cells.tested, target=m.target,
                       min_trials=min_trials)
        between = _between_processes(m, ref) if "process" in questions else (0.0, math.inf)
        rows.extend(_one(m, name, ref, min_trials, between) for name in questions)
    tested = [i for i, r in enumerate(rows) if r.verdict == "stayed" and r.unit == "x" and r.factor != "boundary"
              and math.isfinite(r.p)]
    q = bh(np.array([rows[i].p for i in tested]))
    for i, qi in zip(tested, q):
        r = rows[i]
        verdict = "moved" if qi < FDR else "stayed"
        detail = r.detail if verdict == "stayed" else r.detail.replace(", the file's setting", "; the effect moved "
                                                                          f"x{r.estimate:.2f}; the file's setting")
        rows[i] = Verdict(r.regime, r.factor, verdict, detail, r.estimate, r.lo, r.hi, r.unit, r.p, float(qi), r.runs)
    return rows
