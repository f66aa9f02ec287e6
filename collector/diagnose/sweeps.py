"""The sweeps of ``collector diagnose``: how it measures, and one question's sweep over its own journal.

:class:`Settings` (trials per cell, processes, the deadline), :func:`spec_for`
(a question's sweep spec from the plan and the file's protocol),
:class:`Sweep` (its journal, created or continued, and the runs asked for,
measured by :func:`collector.sweep.runner.run_sweep`), and the journal read
back as each condition's ok latencies and the trials tried.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.diagnose.plan import Question
from collector.diagnose.target import Target
from collector.shared.errors import ConfigError
from collector.shared.factors import RunKey
from collector.sweep.journal import Journal
from collector.sweep.spec import SweepSpec, build_spec

__all__ = ["Data", "Settings", "Stopped", "Sweep", "keys_for", "samples", "series_of", "spec_for"]


@dataclass(frozen=True)
class Settings:
    """How a diagnosis measures: ``min_trials`` / ``max_trials`` per cell (``bisect_trials``: the fewest of a
    bisection midpoint, whose side is all the bisection asks), ``processes`` fresh processes for the process
    question, the ``deadline`` (``time.monotonic()``; None: none), ``should_stop`` (polled) and ``on_event``
    (told each question as it starts)."""

    min_trials: int = 2
    max_trials: int = 6
    bisect_trials: int = 1
    processes: int = 3
    deadline: float | None = None
    should_stop: Callable[[], bool] | None = None
    on_event: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        for name, low in (("min_trials", 1), ("max_trials", 1), ("bisect_trials", 1), ("processes", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.max_trials < self.min_trials:
            raise ConfigError(f"max_trials must be >= min_trials ({self.min_trials}), got {self.max_trials!r}")

    def stop(self) -> bool:
        """The time is up or the caller asked to stop."""
        return ((self.deadline is not None and time.monotonic() >= self.deadline)
                or (self.should_stop is not None and self.should_stop()))


class Stopped(Exception):
    """The deadline passed or the caller stopped the diagnosis before a question was complete."""


def spec_for(target: Target, question: Question, attrs: Mapping[str, Any], budgets: Sequence[int], trials: int,
              seed: int, **changes: Any) -> SweepSpec:
    settings: dict[str, Any] = {k: v for k, v in question.settings.items() if k not in ("refine", "budgets")}
    settings.update({"budgets": sorted(set(budgets)), "trials": trials, "seed": seed, "order": "random"})
    for key in ("engine", "timing", "warmup", "memory"):
        value = attrs.get(key)
        if key not in settings and value not in (None, ""):
            settings[key] = int(value) if key == "warmup" else str(value)  # attrs read back as numpy scalars
    if "sim" in target.series.get("device", "") and attrs.get("sim_model"):
        settings["sim"] = json.loads(str(attrs["sim_model"]))
    settings.update(changes)
    settings["title"] = f"collector diagnose: {target.label}, question {question.name}"
    return build_spec(settings, defaults=False)


def _open(path: Path, spec: SweepSpec, environment: Mapping[str, Any], command: str) -> Journal:
    if path.exists():
        journal = Journal.open(path, write=True)
        stored = SweepSpec.from_dict(journal.spec).to_json()
        if stored != spec.to_json():
            journal.close()
            raise ConfigError(f"journal {str(path)!r} holds another diagnosis (another file, settings or plan); "
                              "pass --force to start over, or choose another -o")
        return journal
    path.parent.mkdir(parents=True, exist_ok=True)
    return Journal.create(path, spec=spec.to_dict(), environment=dict(environment), command=command)


#: (condition -> budget -> ok latencies, condition -> budget -> trials tried).
Data = tuple[dict[Any, dict[int, list[float]]], dict[Any, dict[int, set[int]]]]


def samples(journal: Journal, per_trial: bool = False) -> Data:
    """(condition -> budget -> ok latencies, condition -> budget -> trials tried); condition: the trial (with
    ``per_trial``: in the process question each trial is measured in a fresh process of its own) or 0."""
    ok: dict[Any, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    tried: dict[Any, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for row in journal.rows():
        cond = row.key.trial if per_trial else 0
        tried[cond][row.key.budget].add(row.key.trial)
        if row.record.ok:
            ok[cond][row.key.budget].append(row.record.latency)
    return ok, tried


def keys_for(spec: SweepSpec, want: Mapping[int, int], tried: Mapping[int, set[int]], max_trials: int) -> list[RunKey]:
    series = next(iter(series_of(spec)))
    out: list[RunKey] = []
    for b, k in sorted(want.items()):
        free = [t for t in range(max_trials) if t not in tried.get(b, set())]
        out.extend(RunKey.of(series, budget=b, trial=t) for t in free[:k])
    return out


def series_of(spec: SweepSpec) -> list[tuple[Any, ...]]:
    from collector.sweep.runner import grid_keys

    return list(dict.fromkeys(k.series for k in grid_keys(spec, budgets=spec.budgets[:1])))


class Sweep:
    """One question's sweep: its journal, and the runs the caller asks for, stage by stage."""

    def __init__(self, path: Path, spec: SweepSpec, settings: Settings, environment: Mapping[str, Any],
                 command: str) -> None:
        self.path, self.spec, self.settings = path, spec, settings
        self.journal = _open(path, spec, environment, command)

    def data(self, per_trial: bool = False) -> Data:
        return samples(self.journal, per_trial)

    def measure(self, keys: Sequence[RunKey]) -> None:
        from collector.sweep.runner import run_sweep

        if not keys:
            return
        if self.settings.stop():
            raise Stopped()
        result = run_sweep(self.spec, self.journal, keys=keys, should_stop=self.settings.stop)
        if result.interrupted:
            raise Stopped()

    def close(self) -> None:
        self.journal.close()
