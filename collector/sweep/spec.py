"""The sweep spec: what a sweep measures and how, from CLI flags and/or a TOML file.

A :class:`SweepSpec` is immutable and JSON-able (it is stored in the journal
and in the dataset's ``sweep`` attr). :func:`build_spec` merges a TOML file
(``--config``) with explicit settings (flags win), fills defaults and checks
every field; :func:`check_runnable` then checks models and devices against
this machine without loading any model (for the ``sim`` device, without
importing torch at all).

TOML layout (keys may also sit at the top level instead of under ``[sweep]``)::

    [sweep]
    models = ["gpt2"]           # or "gpt2,distilgpt2"
    devices = ["sim"]
    cache = "both"              # on | off | both
    budgets = "8:64:8"          # or [8, 16, 32]; start:stop:step includes stop
    trials = 3

    [http]                      # engine "http" (collector.http): the flags --endpoint, --api, ...
    endpoint = "http://127.0.0.1:8080/v1"
    server_cmd = "llama-server -m {model} --port {port}"   # optional: a fresh server per configuration

    [sim]                       # LatencyModel.from_dict, for device "sim"
    noise_cv = 0.03
    [[sim.regimes]]
    start = 21
    end = 36
    factor = 4.0
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.shared.errors import ConfigError, DeviceUnavailableError, UnknownModelError
from collector.shared.factors import FACTORS, LOAD_KEY, SERIES_DIMS, Factor, applicable, factor, inapplicable_reason
from collector.shared.protocol import ENGINES, ISOLATIONS, MEMORY_MODES, ORDERS, TIMINGS, WEIGHTS
from collector.shared.sim import LatencyModel
from collector.sweep.parsing import CACHE_CHOICES, MAX_BUDGET, parse_budgets, parse_cache, parse_ints, parse_names
from collector.sweep.parsing import choice as _choice
from collector.sweep.parsing import parse_int as _int
from collector.sweep.parsing import parse_seconds as _seconds_or_none

if TYPE_CHECKING:
    from collector.http.target import HttpTarget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SweepSpec",
    "ENGINES",
    "TIMINGS",
    "ISOLATIONS",
    "ORDERS",
    "MEMORY_MODES",
    "CACHE_CHOICES",
    "WEIGHTS",
    "SPEC_KEYS",
    "MAX_BUDGET",
    "MAX_WARMUP",
    "MAX_SEED",
    "parse_budgets",
    "parse_ints",
    "parse_names",
    "parse_cache",
    "parse_factor",
    "read_toml",
    "build_spec",
    "check_runnable",
    "sim_models",
]


#: The factors whose values a spec lists (every sweep dim but the trial, which is a count).
_GRID_FACTORS: tuple[Factor, ...] = tuple(f for f in FACTORS if f.role != "trial")
_BY_SETTING: dict[str, Factor] = {f.setting: f for f in _GRID_FACTORS}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the grid, the protocol and where the data go.

    Build it with :func:`build_spec` (which checks every field); the
    constructor does no checking. ``grid`` maps every factor but the trial
    (:data:`collector.shared.factors.FACTORS`) to its values; each factor's values
    are also an attribute named by its setting (``spec.models``,
    ``spec.budgets``, ``spec.attns``...). ``timeout`` and ``refine`` are None
    when off. ``sim`` is the parsed latency model of device ``sim`` (None:
    the default one). ``http`` is the endpoint of engine ``http``
    (:class:`collector.http.target.HttpTarget`; None for other engines). ``processes`` is the number of passes, each in its own
    fresh worker process, over which the trials of every cell are spread
    (trial ``t`` in pass ``t % processes``; :func:`collector.sweep.runner.pass_of`).
    """

    grid: Mapping[str, tuple[Any, ...]]
    trials: int = 3
    warmup: int = 1
    engine: str = "loop"
    timing: str = "ends"
    memory: str = "endpoints"
    memory_interval: float = 0.005
    weights: str = "auto"
    isolation: str = "none"
    processes: int = 1
    order: str = "random"
    seed: int = 0
    timeout: float | None = None
    refine: int | None = None
    refine_max_runs: int | None = None
    output: str | None = None
    title: str = "decode-regimes latency sweep"
    sim: LatencyModel | None = None
    http: "HttpTarget | None" = None

    def __getattr__(self, name: str) -> Any:
        f = _BY_SETTING.get(name)
        if f is None or name == "grid":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return self.grid[f.name]

    # ------------------------------------------------------------------ views
    def values(self, dim: str) -> tuple[Any, ...]:
        """Values of sweep dim ``dim`` (``trial``: ``0..trials-1``)."""
        if dim == "trial":
            return tuple(range(self.trials))
        return tuple(self.grid[factor(dim).name])

    @property
    def n_cells(self) -> int:
        """Applicable grid points (cells that are not applicable, e.g. a static cache with the cache off, are not run)."""
        series = [self.grid[d] for d in SERIES_DIMS]
        n_series = sum(1 for combo in product(*series) if applicable(dict(zip(SERIES_DIMS, combo))))
        return n_series * len(self.grid["budget"])

    @property
    def n_runs(self) -> int:
        """Measured runs of the grid (cells x trials), refinement not counted."""
        return self.n_cells * self.trials

    @property
    def simulated(self) -> bool:
        """True when every device is ``sim``."""
        return all(d == "sim" for d in self.grid["device"])

    @property
    def latency_model(self) -> LatencyModel:
        """The latency model of device ``sim`` (the default one when the spec has no ``[sim]`` table)."""
        return self.sim if self.sim is not None else LatencyModel()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of settings (inverse: :meth:`from_dict`)."""
        d: dict[str, Any] = {f.setting: list(self.grid[f.name]) for f in _GRID_FACTORS}
        for f in dataclasses.fields(self):
            if f.name not in ("grid", "sim", "http"):
                d[f.name] = getattr(self, f.name)
        d["sim"] = {} if self.sim is None else json.loads(json.dumps(self.sim.to_dict()))
        if self.http is not None:  # absent for other engines: their stored specs stay as they were
            d["http"] = self.http.to_dict()
        return d

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepSpec":
        """Rebuild a stored spec (validated again).

        A stored spec that lacks a factor (written before the factor existed)
        gets the factor's ``v1_value``: what such sweeps ran. A seed above
        :data:`MAX_SEED` (accepted before seeds were bounded) is kept, so that
        what such a journal holds can still be exported; :func:`check_runnable`
        refuses to run it.
        """
        d = dict(d)
        for f in _GRID_FACTORS:
            if f.setting not in d and f.v1_value is not None:
                d[f.setting] = [f.v1_value]
        seed = d.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool) and seed > MAX_SEED:
            return dataclasses.replace(build_spec({**d, "seed": 0}, defaults=False), seed=seed)
        return build_spec(d, defaults=False)

    def replace(self, **changes: Any) -> "SweepSpec":
        """A validated copy with some settings changed."""
        d = self.to_dict()
        d.update(changes)
        return build_spec(d, defaults=False)


#: Most unrecorded warm-up runs per cell and process (a typo guard: each takes as long as a measured run).
MAX_WARMUP = 100
#: Largest sweep seed: what a netCDF int64 attribute (and numpy, torch) can hold.
MAX_SEED = 2**63 - 1

#: Keys a TOML file / settings mapping may hold (besides the ``[sim]`` table).
SPEC_KEYS: tuple[str, ...] = (*(f.setting for f in _GRID_FACTORS),
                              *(f.name for f in dataclasses.fields(SweepSpec) if f.name != "grid"),
                              "endpoint", "api", "api_key_env", "server_cmd", "server_ready_timeout")
_ALIASES = {alias: f.setting for f in FACTORS for alias in f.aliases}
_ALIASES.update({"refine-max-runs": "refine_max_runs", "memory-interval": "memory_interval"})


# --------------------------------------------------------------------------- TOML
def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sweep TOML file into a flat settings dict (``[sweep]`` merged into the top level).

    Raises
    ------
    ConfigError
        The file is missing, unreadable, not TOML, or holds unknown keys.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {str(p)!r} is not valid TOML: {exc}") from None
    settings = {k: v for k, v in data.items() if k != "sweep"}
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"config {str(p)!r}: [sweep] must be a table, got {sweep!r}")
    settings.update(sweep)
    if "sim" in settings and not isinstance(settings["sim"], dict):
        raise ConfigError(f"config {str(p)!r}: [sim] must be a table, got {settings['sim']!r}")
    return settings


# --------------------------------------------------------------------------- build
def _canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = _ALIASES.get(key, key.replace("-", "_"))
        if name not in SPEC_KEYS:
            raise ConfigError(f"unknown sweep setting {key!r}; choices: {', '.join(sorted(SPEC_KEYS))}")
        out[name] = value
    return out


def parse_factor(f: Factor, value: Any) -> tuple[Any, ...]:
    """The values of factor ``f`` from what a flag or a TOML value holds, checked against its declaration.

    Raises
    ------
    ConfigError
        Quoting the bad value and naming the choices (or the minimum).
    """
    if f.kind == "bool":
        return parse_cache(value)
    if f.kind == "int":
        if f.name == "budget":
            return parse_budgets(value)
        return parse_ints(value, f.setting, minimum=f.minimum if f.minimum is not None else 0)
    return parse_names(value, f.setting, f.choices)


def _check_applicable(grid: Mapping[str, tuple[Any, ...]]) -> None:
    """Refuse a grid none of whose cells is applicable (e.g. only a static cache with the cache off)."""
    reason = None
    for combo in product(*(grid[d] for d in SERIES_DIMS)):
        cell = dict(zip(SERIES_DIMS, combo))
        reason = inapplicable_reason(cell)
        if reason is None:
            return
    raise ConfigError(f"no cell of the sweep is applicable: {reason}; add values that are (e.g. cache = 'on')")


def build_spec(settings: Mapping[str, Any], *, defaults: bool = True, base: Mapping[str, Any] | None = None) -> SweepSpec:
    """Check settings and return a :class:`SweepSpec`.

    Parameters
    ----------
    settings
        Field values (names of :data:`SPEC_KEYS`, or the aliases ``cache``,
        ``prompt_len``, ``budget``...). ``None`` values mean "not given".
    defaults
        Fill missing ``models`` / ``devices`` with the quick defaults
        (``distilgpt2`` on the best available device); when False they are required.
    base
        Settings underneath ``settings`` (e.g. from a TOML file): ``settings`` wins.

    Raises
    ------
    ConfigError
        Naming the bad value and the choices.
    """
    from collector.http.settings import check_http

    merged = _merged_settings(settings, defaults=defaults, base=base)
    grid = _grid(merged)
    kw: dict[str, Any] = {"grid": grid, **_counts(merged), **_protocol(merged), **_refinement(merged),
                          **_output(merged)}
    kw["http"] = check_http(merged, grid, kw.get("engine", SweepSpec.engine), kw.get("timing", SweepSpec.timing),
                            kw.get("isolation", SweepSpec.isolation))
    spec = SweepSpec(**kw)
    if spec.n_runs > 10_000_000:
        raise ConfigError(f"the sweep has {spec.n_runs!r} runs; more than 10000000 is surely a mistake")
    return spec


def _merged_settings(settings: Mapping[str, Any], *, defaults: bool, base: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` under the given ``settings`` (canonical names), with the http and the model / device defaults."""
    from collector.http.settings import http_defaults

    merged = _canonical(base or {})
    merged.update({k: v for k, v in _canonical(settings).items() if v is not None})
    http_defaults(merged)  # engine http: device http, the cache on, timing stream unless given
    if "models" not in merged:
        if not defaults:
            raise ConfigError("sweep setting 'models' is missing; give at least one model, e.g. models = ['gpt2']")
        merged["models"] = "distilgpt2"
    if "devices" not in merged:
        if not defaults:
            raise ConfigError("sweep setting 'devices' is missing; choices: "
                              + ", ".join(factor("device").choices or ()))
        from collector.measuring.environment import best_device

        merged["devices"] = best_device()
    return merged


def _grid(merged: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The values of every factor (given or its default), refused when no cell is applicable."""
    grid: dict[str, tuple[Any, ...]] = {}
    for f in _GRID_FACTORS:
        if f.setting in merged:
            grid[f.name] = parse_factor(f, merged[f.setting])
        elif f.default is not None:
            grid[f.name] = tuple(f.default)
        else:  # pragma: no cover - every factor without a default is filled above
            raise ConfigError(f"sweep setting {f.setting!r} is missing")
    _check_applicable(grid)
    return grid


def _counts(merged: Mapping[str, Any]) -> dict[str, int]:
    """``trials``, ``warmup``, ``seed`` and ``processes`` where given, checked together."""
    kw: dict[str, int] = {}
    for name, minimum in (("trials", 1), ("warmup", 0), ("seed", 0), ("processes", 1)):
        if name in merged:
            kw[name] = _int(merged[name], name, minimum)
    if kw.get("processes", 1) > kw.get("trials", SweepSpec.trials):
        raise ConfigError(f"processes must be <= trials ({kw.get('trials', SweepSpec.trials)}): each pass measures "
                          f"trial t of every cell where t % processes is its number, got processes="
                          f"{merged['processes']!r}; raise --trials or lower --processes")
    _check_seed(kw.get("seed", 0), merged.get("seed"))
    if kw.get("warmup", 0) > MAX_WARMUP:
        raise ConfigError(f"warmup must be <= {MAX_WARMUP} unrecorded runs per cell and process, got "
                          f"{merged['warmup']!r}; each one takes as long as a measured run (and counts against "
                          "the timeout)")
    return kw


def _protocol(merged: Mapping[str, Any]) -> dict[str, Any]:
    """The choice settings (``engine``, ``timing``, ``memory``...) and the times ``memory_interval``, ``timeout``."""
    kw: dict[str, Any] = {}
    for name, choices in (("engine", ENGINES), ("timing", TIMINGS), ("memory", MEMORY_MODES), ("weights", WEIGHTS),
                          ("isolation", ISOLATIONS), ("order", ORDERS)):
        if name in merged:
            kw[name] = _choice(merged[name], name, choices)
    if "memory_interval" in merged:
        v = _seconds_or_none(merged["memory_interval"], "memory_interval")
        if v is None:
            raise ConfigError(f"memory_interval must be a positive number of seconds, got {merged['memory_interval']!r}")
        kw["memory_interval"] = v
    if "timeout" in merged:
        kw["timeout"] = _seconds_or_none(merged["timeout"], "timeout")
    return kw


def _refinement(merged: Mapping[str, Any]) -> dict[str, int]:
    """``refine`` (absent when off: false, 'none', 'off', '' or 0) and ``refine_max_runs``."""
    kw: dict[str, int] = {}
    refine = merged.get("refine")
    if refine is False or isinstance(refine, str) and refine.strip().lower() in ("", "none", "off"):
        refine = None
    if refine is not None and _int(refine, "refine", 0) > 0:  # 0 is off, on the command line as in TOML
        kw["refine"] = _int(refine, "refine", 0)
    if merged.get("refine_max_runs") is not None:
        kw["refine_max_runs"] = _int(merged["refine_max_runs"], "refine_max_runs", 0)
    return kw


def _output(merged: Mapping[str, Any]) -> dict[str, Any]:
    """``output``, ``title`` and the ``sim`` latency model where given."""
    kw: dict[str, Any] = {}
    if merged.get("output") is not None:
        if not isinstance(merged["output"], (str, os.PathLike)) or not str(merged["output"]).strip():
            raise ConfigError(f"output must be a file path, got {merged['output']!r}")
        kw["output"] = str(merged["output"])
    if "title" in merged:
        kw["title"] = str(merged["title"])
    sim = merged.get("sim")
    if isinstance(sim, LatencyModel):
        kw["sim"] = sim
    elif sim:
        if not isinstance(sim, Mapping):
            raise ConfigError(f"sim must be a table of LatencyModel settings, got {sim!r}")
        kw["sim"] = LatencyModel.from_dict(sim)  # raises ConfigError naming the bad key
    return kw


# --------------------------------------------------------------------------- runnable here?
def sim_models(spec: SweepSpec) -> tuple[str, ...]:
    """Model names the ``sim`` device knows with this spec's ``[sim]`` table."""

    return tuple(spec.latency_model.costs)


def _check_seed(seed: int, given: Any) -> None:
    if seed > MAX_SEED:
        raise ConfigError(f"seed must be an integer in 0..2**63-1 ({MAX_SEED}), got {given!r}: the dataset stores it as "
                          "a 64-bit integer")


def check_runnable(spec: SweepSpec) -> None:
    """Check every model, device and dtype of ``spec`` on this machine without loading a model.

    Device ``sim`` needs no torch: its models must be known to the latency
    model (presets, or ``costs`` in ``[sim]``). Other devices go through
    :func:`collector.measuring.measurement.check_request` (which reads at most a model
    config and runs a tiny matmul) for each model x device x dtype at the
    largest prompt length and budget.

    Raises
    ------
    UnknownModelError, DeviceUnavailableError, ConfigError
    """
    _check_seed(spec.seed, spec.seed)  # a journal from before seeds were bounded: export it, do not extend it
    if spec.http is not None:  # engine http: nothing runs here but requests (collector.http)
        from collector.http.settings import check_reachable

        check_reachable(spec.http)
        return
    real = [d for d in spec.devices if d != "sim"]
    if "sim" in spec.devices and real:
        raise ConfigError(f"devices {list(spec.devices)!r} mix the simulated device 'sim' with real ones; a dataset is "
                          "either simulated or measured: run them as two sweeps (and compare or merge the datasets)")
    if "sim" in spec.devices:
        from collector.shared.sim import MAX_POSITIONS

        known = sim_models(spec)
        for m in spec.models:
            if m not in known:
                raise UnknownModelError(f"unknown model {m!r} for device 'sim'; choices: {', '.join(known)} "
                                        "(or add its costs under [sim.costs])")
            most, p, b = MAX_POSITIONS.get(m), max(spec.prompt_lens), max(spec.budgets)
            if most is not None and p + b > most:
                raise ConfigError(f"prompt_len + budget = {p} + {b} = {p + b} exceeds the {most} positions of model "
                                  f"{m!r}; choose prompt_len + budget <= {most}")
    if not real:
        return
    if spec.sim is not None and "sim" not in spec.devices:
        raise ConfigError("a [sim] table was given but no device is 'sim'; add devices = ['sim'] or drop [sim]")
    from collector.measuring.environment import available_devices

    here = available_devices()
    for d in real:
        if d not in here:
            raise DeviceUnavailableError(f"device {d!r} is not available on this machine; available here: {', '.join(here)}")
    from collector.measuring.measurement import check_request

    longest = {"budget": max(spec.budgets), "prompt_len": max(spec.prompt_lens)}
    checked: set[tuple[Any, ...]] = set()
    for combo in product(*(spec.values(d) for d in SERIES_DIMS)):
        cell = dict(zip(SERIES_DIMS, combo), **longest)
        if cell["device"] == "sim" or not applicable(cell):
            continue
        load = tuple(cell[d] for d in LOAD_KEY) + (cell["cache_impl"],)
        if load in checked:
            continue
        checked.add(load)
        check_request(**cell, engine=spec.engine, timing=spec.timing, weights=spec.weights, seed=spec.seed,
                      memory=spec.memory, memory_interval=spec.memory_interval)
