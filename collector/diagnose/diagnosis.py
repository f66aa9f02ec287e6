"""``collector diagnose RUN.nc``: plan, run and judge the follow-up sweeps of every regime, into one dataset.

:func:`diagnose` makes the plan (:func:`collector.diagnose.plan.make_plan`,
within ``max_minutes``), runs its questions regime by regime
(:func:`collector.diagnose.execute.run_questions`, stopping at the deadline),
judges them (:func:`collector.diagnose.verdict.judge`) and writes one dataset
holding every run it measured, with a leading ``question`` dim that says
which question of which regime each run served (``r1 refine``,
``r1 attn``...), the verdict table in its attrs (``diagnosis``, JSON) and the
file it diagnosed (``diagnosed``). Journals live in ``OUT.journals/``; the
same call with the same file and settings continues a diagnosis that was
stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from collector.diagnose.execute import Measured, Settings, datasets, run_questions
from collector.diagnose.plan import QUESTIONS, Plan, make_plan
from collector.diagnose.target import Target, targets
from collector.diagnose.verdict import Verdict, judge
from collector.shared.errors import ConfigError

__all__ = ["STUDY_TRIALS", "STUDY_PROBE", "Diagnosis", "diagnose", "study_runs"]

#: Runs per cell of the study's protocol, and the step of its probe around a regime (tokens).
STUDY_TRIALS = 5
STUDY_PROBE = 16
#: Conditions of each question in the study's protocol: a full sweep at each value of the factor.
_STUDY_CONDITIONS = {"refine": 0, "prompt_len": 2, "process": 1, "cache_impl": 2, "attn": 2, "dtype": 2, "engine": 1,
                     "warmup": 1}


@dataclass(frozen=True)
class Diagnosis:
    """What ``collector diagnose`` found.

    Attributes
    ----------
    plan
        The plan it ran (questions admitted within ``max_minutes``).
    verdicts
        One :class:`~collector.diagnose.verdict.Verdict` per regime and question.
    runs
        Runs measured (all questions).
    study_runs, study_runs_new
        Runs the study's protocol needs for the same questions (:func:`study_runs`): every value of each
        factor swept; only the new value swept.
    output
        The dataset written (None: nothing measured).
    minutes
        Wall-clock minutes of this call.
    stopped
        The time ran out (or the caller stopped it) before every admitted question was answered.
    """

    plan: Plan
    verdicts: tuple[Verdict, ...]
    runs: int
    study_runs: int
    study_runs_new: int
    output: Path | None
    minutes: float
    stopped: bool
    targets: tuple[Target, ...] = field(default=())

    def named(self, regime: int) -> dict[str, str]:
        """The factors that moved or removed regime ``regime``: factor -> verdict."""
        return {v.factor: v.verdict for v in self.verdicts if v.regime == regime and v.factor != "boundary"
                and v.verdict in ("moved", "vanished")}

    def verdict(self, regime: int, factor: str) -> Verdict:
        """The row of ``regime`` and ``factor`` (``boundary`` for refine)."""
        for v in self.verdicts:
            if v.regime == regime and v.factor == factor:
                return v
        raise KeyError(f"no verdict for regime {regime!r} and factor {factor!r}")

    def summary(self) -> str:
        """One line per regime: what moved it, what did not, what was not tested; then the runs."""
        if not self.plan.regimes:
            return self.plan.summary()
        lines = []
        for t in self.targets:
            rows = [v for v in self.verdicts if v.regime == t.number]
            by: dict[str, list[str]] = {k: [v.factor for v in rows if v.verdict == k] for k in
                                        ("moved", "vanished", "stayed", "not tested")}
            parts = [f"{k} by {', '.join(by[k])}" if k in ("moved",) else f"{k}: {', '.join(by[k])}"
                     for k in by if by[k]]
            lines.append(f"{t.label}: " + "; ".join(parts))
        ratio = self.runs / self.study_runs if self.study_runs else math.nan
        lines.append(f"{self.runs} runs in {self.minutes:.1f} min; the study's protocol for the same questions: "
                     f"{self.study_runs} runs ({ratio:.3f}x)" + ("; stopped before the end: run the same command "
                                                               "again to continue" if self.stopped else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"summary": self.summary(), "runs": self.runs, "study_runs": self.study_runs,
                "study_runs_new": self.study_runs_new, "minutes": round(self.minutes, 3), "stopped": self.stopped,
                "output": None if self.output is None else str(self.output),
                "regimes": [{"number": t.number, "label": t.label, "named": self.named(t.number)} for t in self.targets],
                "verdicts": [v.to_dict() for v in self.verdicts], "plan": self.plan.to_dict()}


def study_runs(target: Target, questions: Sequence[str], *, new_only: bool = False) -> int:
    """Runs of the study's protocol for ``questions`` of one regime: a 16-token probe from the file's ``lo`` to
    its ``hi`` (``refine``), and each other question a full sweep of :data:`STUDY_TRIALS` runs per cell over the
    file's budgets and the probe, at every value of the factor (``new_only``: at the new value only)."""
    lo = target.lo if target.lo is not None else target.first
    hi = target.hi if target.hi is not None else target.last
    probe = set(range(lo, hi + 1, STUDY_PROBE)) | {hi}
    grid = set(target.budgets) | probe
    total = 0
    for q in questions:
        conditions = _STUDY_CONDITIONS[q]
        if q == "refine":
            total += len(probe) * STUDY_TRIALS
        else:
            total += (1 if new_only else conditions) * len(grid) * STUDY_TRIALS
    return total


def _output(out: Path, parts: list[tuple[str, xr.Dataset]], source: str, result: dict[str, Any]) -> Path:
    from collector.dataset import combine, schema

    named = [ds.expand_dims(question=[label]) for label, ds in parts]
    ds = combine.combine(named, [label for label, _ in parts], provenance=True)
    ds.attrs.update(title=f"collector diagnose of {Path(source).name}", diagnosed=str(source),
                    diagnosis=json.dumps(result, default=str),
                    questions=json.dumps({label: label.split(" ", 1)[1] for label, _ in parts}))
    ds = schema.validate(schema.normalize(ds))
    return schema.save(ds, out)


def diagnose(ds: xr.Dataset, *, source: str, output: str | Path, max_minutes: float | None = None,
             questions: Sequence[str] | None = None, settings: Settings | None = None,
             command: str = "python -m collector diagnose") -> Diagnosis:
    """Diagnose every regime of ``ds``: plan, run, judge, write (see the module docstring).

    Parameters
    ----------
    ds
        The dataset (schema-valid, as :func:`analysis.open_dataset` returns it).
    source
        Its file name (in the output's attrs and messages).
    output
        The dataset to write; its journals go to ``output`` with suffix ``.journals`` (a folder).
    max_minutes
        The plan admits questions within this estimate, and the runs stop when this many minutes have
        passed (None: no limit).
    questions
        The questions to ask (default: all of :data:`collector.diagnose.plan.QUESTIONS`; refine always runs).
    settings
        Trials per cell and processes (default :class:`~collector.diagnose.execute.Settings`); its deadline is set
        from ``max_minutes``.

    Returns
    -------
    Diagnosis

    Raises
    ------
    ConfigError
        An unknown question, a bad ``max_minutes``; a journal of another diagnosis at ``output``.
    """
    import dataclasses

    import analysis

    unknown = sorted(set(questions or ()) - set(QUESTIONS))
    if unknown:
        raise ConfigError(f"unknown question {unknown[0]!r}; choices: {', '.join(QUESTIONS)}")
    start = time.monotonic()
    settings = settings or Settings()
    reg = analysis.regimes(ds)
    plan = make_plan(ds, max_minutes=max_minutes, trials=settings.min_trials, result=reg)
    if max_minutes is not None:
        settings = dataclasses.replace(settings, deadline=start + 60.0 * max_minutes)
    found = targets(ds, reg, plan.regimes)
    out = Path(output)
    folder = out.with_suffix(".journals")
    asked = [q for q in QUESTIONS if questions is None or q in questions or q == "refine"]
    measured: list[Measured] = []
    stopped = False
    if found:
        from collector.measuring.environment import collect

        environment = collect(sorted({str(t.series.get("device", "cpu")) for t in found}))
    for t, rp in zip(found, plan.regimes):
        if stopped:
            m = Measured(t)
            for q in rp.questions:
                m.status[q.name], m.why[q.name] = "left out", "the time ran out (--max-minutes) before this regime"
            measured.append(m)
            continue
        m = run_questions(ds.attrs, t, rp, folder, settings, environment, command, only=questions)
        measured.append(m)
        stopped = stopped or m.stopped
    verdicts = judge(measured, asked, min_trials=settings.min_trials)
    runs = sum(sum(m.runs.values()) for m in measured)
    applicable = {t.number: [q.name for q in rp.questions if q.status != "not applicable" or q.name == "refine"]
                  for t, rp in zip(found, plan.regimes)}
    study = sum(study_runs(t, [q for q in applicable[t.number] if q in asked]) for t in found)
    study_new = sum(study_runs(t, [q for q in applicable[t.number] if q in asked], new_only=True) for t in found)
    result = Diagnosis(plan, tuple(verdicts), runs, study, study_new, None, (time.monotonic() - start) / 60.0, stopped,
                       tuple(found))
    parts = datasets(measured)
    if parts:
        path = _output(out, parts, source, result.to_dict())
        result = dataclasses.replace(result, output=path, minutes=(time.monotonic() - start) / 60.0)
    return result
