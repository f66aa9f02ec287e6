"""Running the plan of ``collector diagnose``: each question one sweep, its trials decided cell by cell.

Every question of every regime is one sweep with its own journal
(``OUT.journals/r<N>-<question>.journal``; :mod:`collector.diagnose.sweeps`), run by the sweep runner
(:func:`collector.sweep.runner.run_sweep` with the runs chosen here), so a
diagnosis stopped by ``--max-minutes``, Ctrl-C or a crash continues where it
stopped when the same command runs again: every decision below is recomputed
from the journals, as the runner's refinement is.

Per regime (:class:`~collector.diagnose.target.Target`), in the plan's order:

``refine``
    the file's neighbours ``lo``, ``hi`` (reference) and ``first``, ``last``
    (tested) at the file's setting; if both show the regime, a bisection of
    each bracket, the side of each midpoint settled by its sequential test,
    until each boundary lies between two budgets 1 token apart. The located
    ``lo' < first' <= last' < hi'`` are the cells of every later question.
``prompt_len``
    a longer prompt (by ``d`` tokens: at least the onset's bracket
    ``first' - lo'``, half the regime's width when that is more, at most the
    plan's prompt change, with ``lo' - d`` among the file's budgets):
    reference ``lo' - d``, ``hi'``; tested ``first' - d`` (inside only if the
    onset follows the total length), ``first'``, ``last'``.
``process``
    the four cells once in each of ``processes`` fresh worker processes, and
    in as many more rounds of fresh processes as the pooled tests need.
``cache_impl``, ``attn``, ``dtype``, ``engine``, ``warmup``
    the four cells with the other value.

Cells get runs in stages: each up to ``min_trials`` (a bisection midpoint:
``bisect_trials``), then one more run for each cell whose side is still open (:func:`collector.diagnose.evidence.needs`)
up to ``max_trials``. When the regime does not come back at the file's setting
(refine), only the process question runs: no factor can move what is not there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from collector.diagnose.evidence import needs, read, read_pooled
from collector.diagnose.plan import QUESTIONS, RegimePlan
from collector.diagnose.sweeps import Settings, Stopped, Sweep, keys_for, series_of, spec_for
from collector.diagnose.target import Target
from collector.shared.factors import RunKey
from collector.sweep.journal import Journal
from collector.sweep.spec import SweepSpec, check_runnable

__all__ = ["Cells", "Measured", "Settings", "Stopped", "datasets", "run_questions"]


@dataclass(frozen=True)
class Cells:
    """The cells of the questions after ``refine``: reference (outside) and tested (inside) budgets."""

    lo: int | None
    first: int
    last: int
    hi: int | None
    reproduced: bool
    located: tuple[bool, bool] = (False, False)

    @property
    def reference(self) -> tuple[int, ...]:
        return tuple(b for b in (self.lo, self.hi) if b is not None)

    @property
    def tested(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((self.first, self.last)))


@dataclass
class Measured:
    """What the questions of one regime measured: per question its journal path, spec, samples and runs."""

    target: Target
    cells: Cells | None = None
    journals: dict[str, Path] = field(default_factory=dict)
    specs: dict[str, SweepSpec] = field(default_factory=dict)
    samples: dict[str, dict[Any, dict[int, list[float]]]] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # question -> done | left out | not applicable | skipped
    stopped: bool = False
    why: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the questions
def _bisect(ok: Mapping[int, list[float]], target: Target, settings: Settings, lo: int | None, first: int,
            last: int, hi: int | None) -> tuple[dict[int, int], Cells]:
    """The runs the bisection needs next (budget -> runs) and the cells as far as it got."""
    ref = tuple(b for b in (lo, hi) if b is not None)
    base = read(ok, reference=ref, tested=tuple(dict.fromkeys((first, last))), target=target,
                min_trials=settings.min_trials)
    want = needs(ok, base, min_trials=settings.min_trials, max_trials=settings.max_trials)
    if want or not base.settled:
        return want, Cells(lo, first, last, hi, reproduced=False)
    if not base.all("in"):
        return {}, Cells(lo, first, last, hi, reproduced=False)
    ends: list[tuple[int | None, int]] = []
    located = []
    for a, b, inside_is_b in ((lo, first, True), (last, hi, False)):
        if a is None or b is None:
            ends.append((a, b) if inside_is_b else (b, a))  # type: ignore[arg-type]
            located.append(False)
            continue
        while b - a > 1:
            m = (a + b) // 2
            r = read(ok, reference=ref, tested=(m,), target=target, min_trials=settings.bisect_trials)
            more = needs(ok, r, min_trials=settings.bisect_trials, max_trials=settings.max_trials)
            side = r.sides[m].side
            if more:
                for k, v in more.items():
                    want[k] = max(want.get(k, 0), v)
                break
            if side == "open":
                break
            if (side == "in") == inside_is_b:
                b = m
            else:
                a = m
        located.append(b - a <= 1)
        ends.append((a, b))
    (new_lo, new_first), (new_last, new_hi) = ends[0], ends[1]
    assert new_first is not None and new_last is not None
    return want, Cells(new_lo, new_first, new_last, new_hi, reproduced=True, located=(located[0], located[1]))


def run_questions(ds_attrs: Mapping[str, Any], target: Target, plan: RegimePlan, folder: Path, settings: Settings,
                  environment: Mapping[str, Any], command: str, only: Sequence[str] | None = None) -> Measured:
    """Run the admitted questions of one regime (see the module docstring). When the time is up, the question
    in progress and those after it are ``left out`` and ``stopped`` is set (what was measured stays in the
    journals, and the same call continues it)."""
    r = _Regime(ds_attrs, target, plan, folder, settings, environment, command, only)
    try:
        r.run()
    except Stopped:
        r.out.stopped = True
        for q in plan.questions:
            if r.out.status.get(q.name) in (None, "running"):
                r.out.status[q.name] = "left out"
                r.out.why[q.name] = "the time ran out (--max-minutes) or the diagnosis was stopped; run the same " \
                                    "command again to continue"
    return r.out


class _Regime:
    """The questions of one regime, in order."""

    def __init__(self, ds_attrs: Mapping[str, Any], target: Target, plan: RegimePlan, folder: Path,
                 settings: Settings, environment: Mapping[str, Any], command: str,
                 only: Sequence[str] | None) -> None:
        self.attrs, self.target, self.plan, self.folder = ds_attrs, target, plan, folder
        self.settings, self.environment, self.command, self.only = settings, environment, command, only
        self.questions = {q.name: q for q in plan.questions}
        seed = str(ds_attrs.get("seed", "0"))
        self.seed0 = int(seed) if seed.isdigit() else 0
        self.out = Measured(target)

    def wanted(self, name: str) -> bool:
        q = self.questions.get(name)
        if q is None:
            return False
        if self.only is not None and name not in self.only and name != "refine":
            self.out.status[name], self.out.why[name] = "left out", "not among --questions"
            return False
        if q.status != "planned" and not (name == "refine" and q.status == "not applicable"
                                          and "already located" in q.why):
            self.out.status[name], self.out.why[name] = q.status, q.why
            return False
        return True

    def sweep(self, name: str, budgets: Sequence[int], trials: int, **changes: Any) -> Sweep:
        index = QUESTIONS.index(name)
        spec = spec_for(self.target, self.questions[name], self.attrs, budgets, trials,
                         (self.seed0 + 1000 * self.target.number + 10 * index + 1) % (2**31), **changes)
        check_runnable(spec)
        path = self.folder / f"r{self.target.number}-{name}.journal"
        self.out.journals[name], self.out.specs[name] = path, spec
        return Sweep(path, spec, self.settings, self.environment, self.command)

    def run(self) -> None:
        t, out = self.target, self.out
        if t.lo is None and t.hi is None:
            for q in self.plan.questions:
                out.status[q.name], out.why[q.name] = "not applicable", "no normal budget on either side in the file"
            return
        if not self.wanted("refine"):
            for q in self.plan.questions[1:]:
                out.status[q.name] = q.status if q.status != "planned" else "left out"
                out.why[q.name] = q.why or "needs the refine question first (" + out.why.get("refine", "") + ")"
            return
        if self.settings.on_event is not None:
            self.settings.on_event(f"{t.label}: refine")
        c = self.refine()
        out.status.update({q: "running" for q in QUESTIONS[1:] if q in self.questions})
        for name in QUESTIONS[1:]:
            if not self.wanted(name):
                continue
            if not c.reproduced and name != "process":
                out.status[name] = "skipped"
                out.why[name] = "the regime did not come back at the file's setting (refine): nothing for a " \
                                "factor to move"
                continue
            if self.settings.on_event is not None:
                self.settings.on_event(f"{t.label}: {name}")
            if name == "process":
                self.process(c)
            elif name == "prompt_len":
                self.prompt(c)
            else:
                self.factor(name, c)

    def refine(self) -> Cells:
        """Locate the boundaries (also when they are already located: the reference cells are measured here)."""
        t = self.target
        s = self.sweep("refine", [b for b in (t.lo, t.first, t.last, t.hi) if b is not None], self.settings.max_trials)
        try:
            while True:
                ok, tried = s.data()
                want, cells = _bisect(ok[0], t, self.settings, t.lo, t.first, t.last, t.hi)
                if not want and cells.reproduced:  # verify the located cells with min_trials runs each: a midpoint
                    # settled on one run that flips sends the bisection on from there
                    ref = tuple(b for b in (t.lo, t.hi) if b is not None)
                    ends = tuple(b for b in dict.fromkeys((cells.lo, cells.first, cells.last, cells.hi))
                                 if b is not None and b not in ref)
                    r = read(ok[0], reference=ref, tested=ends, target=t, min_trials=self.settings.min_trials)
                    want = needs(ok[0], r, min_trials=self.settings.min_trials, max_trials=self.settings.max_trials)
                keys = keys_for(s.spec, want, tried[0], self.settings.max_trials)
                if not keys:
                    break
                s.measure(keys)
            self.out.cells, self.out.samples["refine"] = cells, {0: dict(ok[0])}
            self.out.status["refine"] = "done"
        finally:  # stopped or not: the runs it measured count
            self.out.runs["refine"] = s.journal.count()
            s.close()
        return cells

    def process(self, c: Cells) -> None:
        """Rounds of ``processes`` fresh processes, each measuring every cell once, until the pooled test of
        each tested cell is settled (at most ``max_trials`` rounds)."""
        n, rounds = self.settings.processes, self.settings.max_trials
        budgets = [*c.reference, *c.tested]
        s = self.sweep("process", budgets, n * rounds, processes=n)
        try:
            series = series_of(s.spec)[0]
            for r in range(rounds):
                ok, tried = s.data(per_trial=True)
                pooled = read_pooled(ok, reference=c.reference, tested=c.tested, target=self.target)
                if r and pooled.settled:
                    break
                s.measure([RunKey.of(series, budget=b, trial=k) for b in budgets for k in range(r * n, (r + 1) * n)
                           if k not in tried.get(k, {}).get(b, set())])
            ok, _ = s.data(per_trial=True)
            self.out.samples["process"] = {k: dict(v) for k, v in sorted(ok.items())}
        finally:
            self.out.runs["process"] = s.journal.count()
            s.close()
        self.out.status["process"] = "done"

    def prompt(self, c: Cells) -> None:
        q, p = self.questions["prompt_len"], int(self.target.series.get("prompt_len", 1))
        # d: past the onset's bracket (first - d is outside if the onset follows the budget), half the regime's
        # width when that is more, at most the plan's prompt change; lo - d stays among the file's budgets
        d = min(int(q.settings["prompt_lens"][-1]) - p, (c.lo or 0) - min(self.target.budgets),
                max(c.first - (c.lo or 0), (c.last - c.first + 1) // 2))
        if d < 1 or c.lo is None:
            self.out.status["prompt_len"] = "not applicable"
            self.out.why["prompt_len"] = (f"no budget of the file below the onset ({c.first}) to shift it to: the "
                                          "prompt change must fit between the grid's first budget and the onset")
            return
        ref = (c.lo - d, *((c.hi,) if c.hi is not None else ()))
        tested = tuple(dict.fromkeys((c.first - d, c.first, c.last)))
        self.out.extra["prompt_len"] = {"shift": d, "prompt_len": p + d, "reference": ref, "tested": tested}
        self.adaptive("prompt_len", ref, tested, prompt_lens=[p + d])

    def factor(self, name: str, c: Cells) -> None:
        q = self.questions[name]
        if name in ("cache_impl", "attn", "dtype"):
            key = {"cache_impl": "cache_impl", "attn": "attn", "dtype": "dtypes"}[name]
            values = list(q.settings[key])
            changes: dict[str, Any] = {key: [values[-1]]}
            self.out.extra[name] = {"value": values[-1], "of": values[0]}
        else:  # engine, warmup: a protocol setting
            changes = {name: q.settings[name]}
            self.out.extra[name] = {"value": q.settings[name], "of": self.attrs.get(name, "loop" if name == "engine"
                                                                                   else 1)}
        self.adaptive(name, c.reference, c.tested, **changes)

    def _settle(self, s: Sweep, reference: Sequence[int], tested: Sequence[int]) -> dict[Any, dict[int, list[float]]]:
        while True:
            ok, tried = s.data()
            r = read(ok[0], reference=reference, tested=tested, target=self.target, min_trials=self.settings.min_trials)
            want = needs(ok[0], r, min_trials=self.settings.min_trials, max_trials=self.settings.max_trials)
            keys = keys_for(s.spec, want, tried[0], self.settings.max_trials)
            if not keys:
                return ok
            s.measure(keys)

    def adaptive(self, name: str, reference: Sequence[int], tested: Sequence[int], **changes: Any) -> None:
        """Measure the cells of one condition until each tested cell's side is settled (or ``max_trials``)."""
        s = self.sweep(name, [*reference, *tested], self.settings.max_trials, **changes)
        try:
            ok = self._settle(s, reference, tested)
            self.out.samples[name] = {0: dict(ok[0])}
        finally:
            self.out.runs[name] = s.journal.count()
            s.close()
        self.out.status[name] = "done"


def datasets(measured: Sequence[Measured]) -> list[tuple[str, xr.Dataset]]:
    """Each journal of the diagnosis as a dataset, labelled ``r<N> <question>`` (empty journals left out)."""
    from collector.dataset import schema
    from collector.dataset.export import to_dataset

    out = []
    for m in measured:
        for name, path in m.journals.items():
            if not path.exists():
                continue
            with Journal.open(path) as j:
                if not j.count():
                    continue
                ds = schema.normalize(to_dataset(j))
            out.append((f"r{m.target.number} {name}", ds))
    return out
