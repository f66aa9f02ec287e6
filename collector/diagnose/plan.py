"""The plan of ``collector diagnose RUN.nc --plan``: which follow-up sweeps would say what moves each regime.

For each regime :func:`analysis.regimes` finds in the file (one row of
:func:`analysis.regime_table`), in this order (:data:`QUESTIONS`):

``refine``
    locate each boundary to 1 token: the regime's first and last budgets
    and their measured neighbours, with ``--refine 1`` (bisection);
``prompt_len``
    does the onset follow the total length or the budget: the same budgets
    and the budgets shifted by the prompt change, at the file's prompt
    length and a longer one;
``process``
    does it replicate in fresh processes: the regime's budgets with
    ``--processes T`` (issue 14);
``cache_impl``, ``attn``, ``dtype``
    one factor at a time around the boundary (both values in one sweep: the
    file's first, then the other: ``eager`` for ``default`` or ``sdpa``);
``engine``, ``warmup``
    the protocol settings: the other engine; ten warm-ups.

Each question is a ``collector run`` command with its number of runs and its
estimated minutes, from the file's own run times: a run at budget ``b``
takes the series' median latency at ``b`` (interpolated between measured
budgets), plus the per-run overhead seen in the file (gaps between
``started_at`` of consecutive runs beyond their latency; none when the file
has no start times), plus the warm-up runs of every cell, plus a fresh
worker's start-up (:func:`_startup`) per sweep, per process and per
bisection round of ``refine``. Questions are
admitted question by question across regimes (every regime's refinement
first) while the total stays within ``max_minutes``; the others are
``left out`` with the minutes they need. Nothing is run.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from collector.shared.errors import ConfigError
from collector.shared.factors import FACTORS

__all__ = ["QUESTIONS", "Plan", "Question", "RegimePlan", "http_settings", "make_plan"]

#: The questions in the order they are admitted.
QUESTIONS: tuple[str, ...] = ("refine", "prompt_len", "process", "cache_impl", "attn", "dtype", "engine", "warmup")
_SERIES_FACTORS = tuple(f.name for f in FACTORS if f.role == "series")
_KEY = {f.name: f.flag.lstrip("-").replace("-", "_") for f in FACTORS}  # cache_impl -> "cache_impl" (--cache-impl)


@dataclass(frozen=True)
class Question:
    """One follow-up sweep of a regime.

    Attributes
    ----------
    name
        One of :data:`QUESTIONS`.
    asks
        What it tells, for people.
    status
        ``planned``, ``left out`` (over ``max_minutes``) or ``not applicable``.
    why
        The reason for a status other than ``planned`` ('' otherwise).
    settings
        The ``collector run`` settings (flag name without dashes -> values).
    runs
        Measured runs (warm-ups not counted).
    minutes
        Estimated wall-clock minutes, warm-ups included.
    """

    name: str
    asks: str
    status: str = "planned"
    why: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    runs: int = 0
    minutes: float = 0.0

    @property
    def command(self) -> str:
        """The ``python -m collector run`` command of this sweep ('' when not applicable)."""
        if not self.settings:
            return ""
        words = ["python", "-m", "collector", "run"]
        for key, value in self.settings.items():
            words.append("--" + key.replace("_", "-"))
            values = value if isinstance(value, (list, tuple)) else [value]
            words.extend(str(v) for v in values)
        return shlex.join(words)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"name": self.name, "asks": self.asks, "status": self.status, "why": self.why,
                "runs": self.runs, "minutes": round(self.minutes, 2), "command": self.command}


@dataclass(frozen=True)
class RegimePlan:
    """The questions of one regime: its series, its budgets and effect, and the follow-up sweeps."""

    series: Mapping[str, Any]
    first_budget: int
    last_budget: int
    effect: float
    questions: tuple[Question, ...]
    seen_in: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``model=gpt2-medium, device=mps, ...: x12.2 at budgets 512-624``."""
        where = (f"budget {self.first_budget}" if self.first_budget == self.last_budget
                 else f"budgets {self.first_budget}-{self.last_budget}")
        seen = f" (in {'; '.join(self.seen_in)})" if self.seen_in else ""
        return ", ".join(f"{k}={v}" for k, v in self.series.items()) + f": x{self.effect:.2f} at {where}{seen}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"series": {k: (v.item() if hasattr(v, "item") else v) for k, v in self.series.items()},
                "first_budget": self.first_budget, "last_budget": self.last_budget, "effect": self.effect,
                "seen_in": list(self.seen_in), "questions": [q.to_dict() for q in self.questions]}


@dataclass(frozen=True)
class Plan:
    """Every regime's follow-up sweeps and the time they need.

    Attributes
    ----------
    regimes
        One :class:`RegimePlan` per regime found, largest effect first.
    max_minutes
        The time allowed (None: no limit).
    overhead_s
        Per-run overhead read from the file (NaN: the file has no start times).
    trials
        Trials per cell in every sweep of the plan.
    notes
        What the estimates assume.
    scope
        What cannot be asked of this file's setup, one line each (engine http: the factors a server chooses).
    """

    regimes: tuple[RegimePlan, ...]
    max_minutes: float | None
    overhead_s: float
    trials: int
    notes: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()

    @property
    def planned(self) -> tuple[Question, ...]:
        """The questions admitted within ``max_minutes``."""
        return tuple(q for r in self.regimes for q in r.questions if q.status == "planned")

    @property
    def minutes(self) -> float:
        """Estimated minutes of the admitted questions."""
        return math.fsum(q.minutes for q in self.planned)

    def summary(self) -> str:
        """One line: what is planned and what was left out."""
        if not self.regimes:
            return "nothing to diagnose: analysis.regimes finds no regime in this file"
        left = [q for r in self.regimes for q in r.questions if q.status == "left out"]
        limit = f" of {self.max_minutes:g} allowed" if self.max_minutes is not None else ""
        line = (f"{len(self.regimes)} regime(s): {len(self.planned)} sweep(s) planned, "
                f"{sum(q.runs for q in self.planned)} runs, about {self.minutes:.1f} min{limit}")
        if left:
            need = math.fsum(q.minutes for q in left)
            line += f"; {len(left)} left out (about {need:.1f} min more)"
        return line

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"summary": self.summary(), "max_minutes": self.max_minutes,
                "overhead_s": None if math.isnan(self.overhead_s) else self.overhead_s, "trials": self.trials,
                "minutes": round(self.minutes, 2), "notes": list(self.notes), "scope": list(self.scope),
                "regimes": [r.to_dict() for r in self.regimes]}


# --------------------------------------------------------------------------- the file's run times
def _gaps(ds: xr.Dataset, *extra: str) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """The runs with a start time and a latency, in execution order: the gap before each run after the first,
    beyond the previous run's latency (s), and the variables ``extra`` in that order (None: no start times)."""
    if not {"started_at", "latency", *extra} <= set(ds.variables):
        return None
    start = ds["started_at"].values.ravel()
    lat = np.asarray(ds["latency"].values, dtype=float).ravel()
    ok = ~np.isnat(start) & np.isfinite(lat)
    order = np.argsort(start[ok])
    t = (start[ok][order] - start[ok][order][0]) / np.timedelta64(1, "s") if ok.any() else np.zeros(0)
    gaps = np.diff(t.astype(float)) - lat[ok][order][:-1]
    return gaps, [np.asarray(ds[v].values).ravel()[ok][order] for v in extra]


def _overhead(ds: xr.Dataset) -> float:
    """Median gap between consecutive runs' starts beyond the earlier run's latency (NaN without start times)."""
    found = _gaps(ds)
    if found is None or found[0].size < 2:
        return math.nan
    gaps = found[0]
    gaps = gaps[np.isfinite(gaps) & (gaps >= 0) & (gaps < 600)]
    return float(np.median(gaps)) if gaps.size else math.nan


#: Seconds a fresh worker process costs before its first run (start, imports, model load, warm-up) where the file
#: shows none: measured 16-21 s a worker on an H100 host (gpt2, torch 2.11) and about 13 s on a loaded 2-core CPU
#: host (tiny-gpt2); a simulated worker loads no model.
STARTUP_S = 20.0
STARTUP_SIM_S = 2.0


def _startup(ds: xr.Dataset) -> float:
    """Seconds before a fresh worker's first run as the file shows it: the median gap before the first run of
    each worker after the first (beyond the previous run's latency); NaN where it shows none (one worker, no
    start times): then :data:`STARTUP_S` (:data:`STARTUP_SIM_S` for ``sim``) stands in."""
    found = _gaps(ds, "worker")
    if found is None or not found[0].size:
        return math.nan
    gaps, (worker,) = found
    seen = {worker[0]}
    first = []
    for k in range(1, worker.size):
        if worker[k] not in seen:
            seen.add(worker[k])
            first.append(gaps[k - 1])
    first = [g for g in first if 0 <= g < 600]
    return float(np.median(first)) if first else math.nan


class _Times:
    """Estimated seconds of a run of one series at any budget (median latency, interpolated, plus overhead), and
    of starting a fresh worker."""

    def __init__(self, ds: xr.Dataset, series: Mapping[str, Any], overhead: float, startup: float = 0.0) -> None:
        lat = ds["latency"].sel({k: v for k, v in series.items() if k in ds["latency"].dims})
        extra = [d for d in lat.dims if d != "budget"]
        med = lat.median(dim=extra) if extra else lat
        b = np.asarray(med["budget"].values, dtype=float)
        v = np.asarray(med.values, dtype=float)
        keep = np.isfinite(v)
        self.budgets = [int(x) for x in b[keep]]
        self._b, self._v = b[keep], v[keep]
        self.overhead = 0.0 if math.isnan(overhead) else overhead
        self.startup = startup

    def __call__(self, budget: float) -> float:
        return float(np.interp(budget, self._b, self._v)) + self.overhead


# --------------------------------------------------------------------------- the questions of one regime
def _around(budgets: Sequence[int], first: int, last: int) -> tuple[int | None, int | None, list[int]]:
    before = [b for b in budgets if b < first]
    after = [b for b in budgets if b > last]
    lo = before[-1] if before else None
    hi = after[0] if after else None
    probe = sorted({b for b in (lo, first, last, hi) if b is not None})
    return lo, hi, probe


def _cost(times: _Times, budgets: Sequence[int], cells_per_budget: int, trials: int, warmup: int,
          processes: int = 1, starts: int | None = None) -> tuple[int, float]:
    """Runs and minutes of a sweep: its runs and warm-ups, and a fresh worker per process (``starts``: per
    round of an adaptive sweep, which starts its workers again for the runs each round asks)."""
    runs = len(budgets) * cells_per_budget * trials
    seconds = math.fsum(times(b) for b in budgets) * cells_per_budget * (trials + warmup * processes)
    seconds += times.startup * (processes if starts is None else starts)
    return runs, seconds / 60.0


def _base(series: Mapping[str, Any], budgets: Sequence[int], trials: int) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for name in _SERIES_FACTORS:
        if name in series:
            value = series[name]
            if name == "cache":
                value = "on" if bool(value) else "off"
            s[_KEY[name]] = [value]
    s["budgets"] = list(budgets)
    s["trials"] = trials
    return s


def http_settings(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The endpoint settings of an ``engine = http`` file, as ``collector run`` flags (flag name without dashes ->
    value), read from its ``sweep`` attr (the URL as given, the API, the key's variable name, the server
    command); None when the file does not hold one (not an http file, or a combined one whose origins differ)."""
    import json

    from collector.sweep.spec import SweepSpec

    if str(attrs.get("engine", "")) != "http":
        return None
    try:
        target = SweepSpec.from_dict(json.loads(str(attrs.get("sweep", "")))).http
    except (ValueError, TypeError, KeyError, ConfigError):
        return None
    if target is None:
        return None
    out: dict[str, Any] = {"engine": "http", "endpoint": target.endpoint, "api": target.api}
    if target.api_key_env:
        out["api_key_env"] = target.api_key_env
    if target.server_cmd:
        out["server_cmd"] = target.server_cmd
        out["server_ready_timeout"] = target.ready_timeout
        if str(attrs.get("isolation", "")) in ("model", "cell", "run"):
            out["isolation"] = str(attrs["isolation"])
    return out


#: Why a question cannot be asked of a server (engine http), by question.
_NOT_OF_A_SERVER: dict[str, str] = {
    "cache_impl": "engine http: the server chooses its own KV cache",
    "attn": "engine http: the server chooses its own attention kernels",
    "dtype": "engine http: the server runs its own dtype (a --server-cmd that passes {dtype} makes it a factor)",
    "engine": "engine http: the server is what is measured; an in-process engine would not run it",
    "process": "engine http: one server process serves every run, so fresh client processes do not replicate it "
               "(a --server-cmd starts a fresh server per process)",
}


def _server_only(http: Mapping[str, Any]) -> tuple[str, ...]:
    """The questions of :data:`_NOT_OF_A_SERVER` that the file's server command does not open up."""
    cmd = str(http.get("server_cmd", ""))
    return tuple(q for q in _NOT_OF_A_SERVER
                 if not ((q == "dtype" and "{dtype}" in cmd) or (q == "process" and cmd)))


def _http_questions(out: list[Question], http: Mapping[str, Any] | None) -> list[Question]:
    """The questions of an http file: those a server cannot answer ``not applicable``, one line each; every
    other sweep goes to the file's endpoint (or, without its settings, is not applicable either)."""
    fixed = []
    for q in out:
        if q.status != "planned":
            fixed.append(q)
            continue
        why = _NOT_OF_A_SERVER[q.name] if q.name in _server_only(http or {}) else ""
        if http is None and not why:
            why = "engine http: the file does not say which endpoint it swept (attr 'sweep')"
        if why:
            fixed.append(Question(q.name, q.asks, "not applicable", why))
            continue
        settings = {k: v for k, v in q.settings.items() if k not in ("attn", "cache_impl")}  # the server's own
        fixed.append(Question(q.name, q.asks, q.status, q.why, {**(http or {}), **settings}, q.runs, q.minutes))
    return fixed


def _questions(series: Mapping[str, Any], first: int, last: int, times: _Times, attrs: Mapping[str, Any],
               trials: int) -> list[Question]:
    warmup = int(attrs.get("warmup", 1) or 0)
    engine = str(attrs.get("engine", "loop"))
    lo, hi, probe = _around(times.budgets, first, last)
    base = _base(series, probe, trials)
    out: list[Question] = []
    if engine == "http":
        return _http_questions(_questions(series, first, last, times, {**attrs, "engine": "loop"}, trials),
                               http_settings(attrs))

    # refine: bisection of each bracket between a normal and an anomalous measured budget
    brackets = [(a, b) for a, b in ((lo, first), (last, hi)) if a is not None and b is not None and b - a > 1]
    asks = "where each boundary lies, to 1 token"
    if lo is None and hi is None:
        out.append(Question("refine", asks, "not applicable", "the regime covers the whole grid: extend --budgets"))
    elif not brackets:
        out.append(Question("refine", asks, "not applicable", "both boundaries are already located to 1 token"
                            + ("" if lo is not None and hi is not None else " or lie at the grid's edge")))
    else:
        rounds = [math.ceil(math.log2(b - a)) for a, b in brackets]
        # the measured neighbours, one round per bisection step (both brackets at once), the verification
        runs, minutes = _cost(times, probe, 1, trials, warmup, starts=2 + max(rounds))
        runs += sum(r * trials for r in rounds)
        minutes += math.fsum(r * trials * times((a + b) / 2) for r, (a, b) in zip(rounds, brackets)) / 60.0
        out.append(Question("refine", asks, settings={**base, "refine": 1}, runs=runs, minutes=minutes))

    # prompt length: onset on total length (shifts by the prompt change) or on the budget (stays)
    p = int(series.get("prompt_len", 8))
    p2 = 2 * p if p >= 16 else p + 32
    shifted = sorted(set(probe) | {b - (p2 - p) for b in probe if b - (p2 - p) >= 1})
    runs, minutes = _cost(times, shifted, 2, trials, warmup)
    out.append(Question("prompt_len", f"does the onset follow the total length or the budget (prompt {p} vs {p2})",
                        settings={**base, _KEY["prompt_len"]: [p, p2], "budgets": shifted}, runs=runs, minutes=minutes))

    # process replicates
    runs, minutes = _cost(times, probe, 1, trials, warmup, processes=trials)
    out.append(Question("process", f"does it replicate in {trials} fresh processes",
                        settings={**base, "processes": trials}, runs=runs, minutes=minutes))

    # one factor at a time: both values in one sweep
    dtype = str(series.get("dtype", "float32"))
    attn = str(series.get("attn", "default"))
    impl = str(series.get("cache_impl", "dynamic"))
    other_attn = "sdpa" if attn == "eager" else "eager"
    other_impl = "dynamic" if impl == "static" else "static"
    factor_values = {  # the file's value first, then the other one
        "cache_impl": ([impl, other_impl], f"{other_impl} vs {impl} KV cache"),
        "attn": ([attn, other_attn], f"attention {other_attn} vs {attn}"),
        "dtype": ([dtype, "float16" if dtype == "float32" else "float32"], "dtype"),
    }
    for name, (values, asks) in factor_values.items():
        setting = _KEY[name]
        if name == "cache_impl" and not bool(series.get("cache", True)):
            out.append(Question(name, asks, "not applicable", "the cache is off: there is no cache to choose"))
            continue
        runs, minutes = _cost(times, probe, len(values), trials, warmup)
        out.append(Question(name, f"does it move with the {asks}", settings={**base, setting: values}, runs=runs,
                            minutes=minutes))

    # protocol settings: one sweep at the other value (compared with the process sweep's fresh runs)
    other = "generate" if engine == "loop" else "loop"
    runs, minutes = _cost(times, probe, 1, trials, warmup)
    out.append(Question("engine", f"does it move with the engine ({other} vs {engine})",
                        settings={**base, "engine": other}, runs=runs, minutes=minutes))
    more = max(10, 2 * warmup)
    runs, minutes = _cost(times, probe, 1, trials, more)
    out.append(Question("warmup", f"does it vanish after {more} warm-up runs (the file had {warmup})",
                        settings={**base, "warmup": more}, runs=runs, minutes=minutes))
    return out


# --------------------------------------------------------------------------- the plan
def _merged(table: Any, ds: xr.Dataset) -> list[tuple[dict[str, Any], int, int, float, tuple[str, ...]]]:
    """The regimes by sweep series: rows of one series whose budgets overlap, differing only in extra dims
    (``experiment``, ``origin``), are one regime over the union of their budgets (largest effect), since a
    follow-up sweep cannot set those dims; regimes apart in one series stay apart."""
    factors = [c for c in _SERIES_FACTORS if c in table.columns]
    extra = [c for c in table.columns if c in ds["latency"].dims and c not in (*factors, "budget", "trial")]
    merged: list[tuple[tuple[Any, ...], list[Any]]] = []
    for _, row in table.iterrows():
        key = tuple(row[c] for c in factors)
        where = ", ".join(f"{c}={row[c]}" for c in extra)
        first, last = int(row["first_budget"]), int(row["last_budget"])
        # the same series and overlapping budgets: one regime; two apart in one series stay two
        m = next((m for k, m in merged if k == key and m[1] <= last and first <= m[2]), None)
        if m is None:
            merged.append((key, [dict(zip(factors, key)), first, last, float(row["effect"]), [where] if where else []]))
        else:
            m[1], m[2], m[3] = min(m[1], first), max(m[2], last), max(m[3], float(row["effect"]))
            if where:
                m[4].append(where)
    return [(m[0], m[1], m[2], m[3], tuple(m[4])) for m in sorted((m for _, m in merged), key=lambda m: -m[3])]


def _admit(plans: list[RegimePlan], max_minutes: float | None) -> list[RegimePlan]:
    """Mark questions ``left out`` past ``max_minutes``, admitting question by question across regimes."""
    if max_minutes is None:
        return plans
    used = 0.0
    status: dict[tuple[int, int], tuple[str, str]] = {}
    for qi, _ in enumerate(QUESTIONS):
        for ri, rp in enumerate(plans):
            if qi >= len(rp.questions) or rp.questions[qi].status != "planned":
                continue
            q = rp.questions[qi]
            if used + q.minutes <= max_minutes:
                used += q.minutes
            else:
                status[(ri, qi)] = ("left out", f"needs about {q.minutes:.1f} min; {max(max_minutes - used, 0):.1f} "
                                                f"of --max-minutes {max_minutes:g} left")
    out = []
    for ri, rp in enumerate(plans):
        qs = tuple(Question(q.name, q.asks, *status[(ri, qi)], settings=q.settings, runs=q.runs, minutes=q.minutes)
                   if (ri, qi) in status else q for qi, q in enumerate(rp.questions))
        out.append(RegimePlan(rp.series, rp.first_budget, rp.last_budget, rp.effect, qs, rp.seen_in))
    return out


def make_plan(ds: xr.Dataset, *, max_minutes: float | None = None, trials: int | None = None,
              result: xr.Dataset | None = None) -> Plan:
    """The follow-up sweeps for every regime of ``ds`` (nothing is run).

    Parameters
    ----------
    ds
        A dataset (schema-valid, as :func:`analysis.open_dataset` returns it).
    max_minutes
        Estimated minutes the planned sweeps may take together (None: no limit).
    trials
        Trials per cell of every sweep (default: the file's, at least 3).
    result
        An :func:`analysis.regimes` result of ``ds`` to reuse (default: computed here).

    Returns
    -------
    Plan
        One :class:`RegimePlan` per regime, largest effect first.

    Raises
    ------
    ConfigError
        ``max_minutes`` not a positive number, ``trials`` below 1.
    """
    import analysis

    if max_minutes is not None and (not isinstance(max_minutes, (int, float)) or isinstance(max_minutes, bool)
                                    or not math.isfinite(max_minutes) or max_minutes <= 0):
        raise ConfigError(f"max_minutes must be a positive number of minutes, got {max_minutes!r}")
    n_trials = int(ds.sizes.get("trial", 1)) if trials is None else trials
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"trials must be an integer >= 1, got {trials!r}")
    n_trials = max(n_trials, 3) if trials is None else n_trials
    reg = analysis.regimes(ds) if result is None else result
    table = analysis.regime_table(reg)
    table = table[table["kind"] != "normal"].sort_values("effect", ascending=False, kind="stable")
    overhead = _overhead(ds)
    plans = []
    shown = _startup(ds)
    startups = []
    for series, first, last, effect, seen_in in _merged(table, ds):
        startup = shown if math.isfinite(shown) else STARTUP_SIM_S if series.get("device") == "sim" else STARTUP_S
        startups.append(startup)
        times = _Times(ds, series, overhead, startup)
        qs = _questions(series, first, last, times, ds.attrs, n_trials)
        plans.append(RegimePlan(series, first, last, effect, tuple(qs), seen_in))
    notes = ["a run at a budget takes the series' median latency there (interpolated between measured budgets); "
             "a changed factor is assumed not to change it",
             "per-run overhead " + ("not in the file (no start times): latency only" if math.isnan(overhead)
                                    else f"{overhead:.2f} s, from the gaps between the file's runs"),
             "warm-ups counted: the file's warmup per cell (and per process with --processes)"]
    if startups:
        # one value from the file's workers; assumed, one per kind of device planned (sim starts faster)
        values = sorted(set(startups))
        assumed = [f"{v:.0f} s for the simulator" if v == STARTUP_SIM_S else
                   f"{v:.0f} s for a real device, measured 16-21 s on an H100 host and 13 s on a loaded CPU host"
                   for v in values]
        notes.append(f"a fresh worker process costs {' or '.join(f'{v:.0f} s' for v in values)} before its first "
                     "run ("
                     + ("from the file's workers" if math.isfinite(shown) else "assumed, the file shows no worker "
                        "start: " + "; ".join(assumed))
                     + "); counted once per sweep, per fresh process and per bisection round (an adaptive sweep "
                     "that needs more rounds at high noise takes longer)")
    scope = []
    if str(ds.attrs.get("engine", "")) == "http":
        http = http_settings(ds.attrs)
        cannot = _server_only(http or {})
        scope.append(f"engine http: {', '.join(cannot)} cannot be asked of a server (not applicable); "
                     + (f"the other sweeps go to the file's endpoint {ds.attrs.get('endpoint', '')}"
                        if http is not None else "the file does not say which endpoint it swept: nothing is planned"))
    return Plan(regimes=tuple(_admit(plans, max_minutes)), max_minutes=max_minutes, overhead_s=overhead,
                trials=n_trials, notes=tuple(notes), scope=tuple(scope))
