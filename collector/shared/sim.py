"""The simulated latency model (numpy only).

One model serves both the collector's ``sim`` device (planning and testing a
sweep without torch and without sleeping) and :mod:`analysis.synthetic`
(schema-valid datasets with planted regimes and known truth).

The model, per run of ``budget`` new tokens after a prompt of ``P`` tokens:

* prefill ``t0 = a_p + b_p * P`` (time to the first token);
* decode step ``k = 1..budget-1`` at context ``c = P + k``:
  cache on ``t_k = a_d + b_d * c`` (linear in context, so latency is about
  linear in budget); cache off ``t_k = a_n + b_n * c`` where the whole
  sequence is recomputed (so latency is about quadratic in budget);
* planted regimes multiply the decode steps (or the prefill) of the runs whose
  budget lies in their interval (onset optionally on total length ``P + budget``,
  recovery on budget, as the MPS study observed), optionally only from a given
  step on;
* noise: a multiplicative log-normal factor per run (CV ``noise_cv``) and per
  step (``step_cv``), a slow linear drift over execution order, run-level
  states (a whole run slowed by ``run_state_factor`` with probability
  ``run_state_prob``: seen on CUDA hosts, where one configuration ran at 4.8
  and 8.5 ms/token in two trials) and host episodes (every run inside a window
  of the execution sequence slowed together, whatever its budget);
* memory covariates that grow smoothly with the context (optionally jumping
  inside a regime).

The noise defaults of :class:`LatencyModel` are round assumptions. Noise
*fitted to real measurements* comes as named presets
(:func:`noise_presets`, :meth:`LatencyModel.calibrated`, and
``analysis.synthetic.make_dataset(noise=...)``), read from
``sim_calibration.json`` next to this module: one per device kind found in the
measured null corpus (``cuda``; ``cpu`` once CPU sweeps are in it) and ``all``.
``benchmarks/calibrate_sim.py`` writes it, fitting each setting the way it
enters above. With ``r`` = log(latency / a robust smooth curve over the
budget) per run: ``run_state_prob`` / ``run_state_factor`` and ``noise_cv``
from this model fitted by maximum likelihood to all series of a kind at once
(``r`` normal with each series' own mean and sd ``s``, shifted by
``log(run_state_factor)`` with probability ``run_state_prob``;
``noise_cv = sqrt(exp(s**2) - 1)`` for the median ``s``), ``drift =
exp(slope) - 1`` from an OLS of ``r`` on the run's execution position
(random-order sweeps; median over series, floored at 0), and ``step_cv`` from
the robust spread of log step times (steps >= 1) around their within-run
trend. docs/performance.md lists the fitted values.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from collector.shared.errors import ConfigError
from collector.shared.hardware import DEVICE_TABLE, DTYPE_TABLE
from collector.shared.record import RunRecord

__all__ = [
    "ModelCost",
    "Regime",
    "Episode",
    "LatencyModel",
    "MODEL_COSTS",
    "MAX_POSITIONS",
    "DEVICE_SPEED",
    "simulate",
    "execution_order",
    "noise_presets",
    "dumps",
]


@dataclass(frozen=True)
class ModelCost:
    """Cost parameters of one model on the reference device (seconds, bytes)."""

    n_params: int
    prefill_base: float = 4e-3
    prefill_per_token: float = 5e-5
    step_base: float = 8e-3
    step_per_ctx: float = 4e-6
    nocache_base: float = 8e-3
    nocache_per_ctx: float = 1.5e-4
    kv_bytes_per_token: float = 36864.0

    @property
    def weight_bytes(self) -> float:
        return 4.0 * self.n_params


def _cost(n_params: int, layers: int, width: int) -> ModelCost:
    scale = n_params / 124e6
    return ModelCost(
        n_params=n_params,
        prefill_base=3e-3 * (0.5 + 0.5 * scale),
        prefill_per_token=4e-5 * scale,
        step_base=7e-3 * (0.4 + 0.6 * scale),
        step_per_ctx=3e-6 * scale,
        nocache_base=7e-3 * (0.4 + 0.6 * scale),
        nocache_per_ctx=5e-4 * scale,
        kv_bytes_per_token=2 * 4 * layers * width,
    )


#: Costs of the presets the collector knows (sizes from the published configs).
MODEL_COSTS: dict[str, ModelCost] = {
    "tiny-gpt2": _cost(400_000, 2, 64),
    "distilgpt2": _cost(81_912_576, 6, 768),
    "gpt2": _cost(124_439_808, 12, 768),
    "gpt2-medium": _cost(354_823_168, 24, 1024),
    "gpt2-large": _cost(774_030_080, 36, 1280),
    "bloom-560m": _cost(559_214_592, 24, 1024),
    "opt-125m": _cost(125_239_296, 12, 768),
    "opt-350m": _cost(331_196_416, 24, 1024),
}

#: Positions (prompt + new tokens) of each preset, as in its published config (collector.measuring.models builds the same):
#: device ``sim`` refuses longer sequences, as the real devices do.
MAX_POSITIONS: dict[str, int] = {
    "tiny-gpt2": 512,
    "distilgpt2": 1024,
    "gpt2": 1024,
    "gpt2-medium": 1024,
    "gpt2-large": 1024,
    "bloom-560m": 2048,
    "opt-125m": 2048,
    "opt-350m": 2048,
}

#: Relative speed of each backend (multiplies every time).
DEVICE_SPEED: dict[str, float] = {d.name: d.sim_speed for d in DEVICE_TABLE}
_DTYPE_SPEED: dict[str, float] = {t.name: t.sim_speed for t in DTYPE_TABLE}


@dataclass(frozen=True)
class Regime:
    """A planted latency regime.

    A run is inside the regime when ``onset_value >= start`` and
    ``budget <= end``, where ``onset_value`` is the budget (``onset="budget"``)
    or the total length ``prompt_len + budget`` (``onset="total"``).

    Parameters
    ----------
    start, end
        Interval bounds (``start`` in the onset's units, ``end`` in budget units).
    factor
        Multiplier of the affected phase's time (> 1 slow, < 1 fast).
    model, device
        Restrict to one model / device (None: all).
    cache
        Restrict to cache on (True) / off (False) (None: both).
    phase
        ``"decode"`` (the decode steps) or ``"prefill"``.
    onset
        ``"budget"`` or ``"total"``.
    from_step
        When set, only decode steps ``k >= from_step`` are slowed (a run that
        enters a slow mode part-way); None: every decode step.
    mem_jump
        Multiplier of the device-memory peak inside the regime (1: smooth).
    attn, cache_impl
        Restrict to one attention implementation / one KV-cache implementation
        (None: all). Applied by the sweep's ``sim`` device, which knows the
        run's factors (:meth:`applies`); :meth:`LatencyModel.simulate_runs`
        itself does not see them.
    seed
        Restrict to the worker processes of the sweep with this seed (None:
        every sweep): a *process-local* regime, which the processes of that
        sweep show and fresh processes of another sweep do not.
    """

    start: int
    end: int
    factor: float
    model: str | None = None
    device: str | None = None
    cache: bool | None = True
    phase: str = "decode"
    onset: str = "budget"
    from_step: int | None = None
    mem_jump: float = 1.0
    attn: str | None = None
    cache_impl: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.phase not in ("decode", "prefill"):
            raise ConfigError(f"Regime phase must be 'decode' or 'prefill', got {self.phase!r}")
        if self.onset not in ("budget", "total"):
            raise ConfigError(f"Regime onset must be 'budget' or 'total', got {self.onset!r}")
        if not self.factor > 0:
            raise ConfigError(f"Regime factor must be > 0, got {self.factor!r}")
        if self.end < 1:
            raise ConfigError(f"Regime end must be >= 1, got {self.end!r}")

    def active(self, *, model: str, device: str, cache: bool, prompt_len: Any, budget: Any) -> Any:
        """Boolean (array) of the runs inside this regime."""
        if (self.model is not None and self.model != model) or (self.device is not None and self.device != device):
            return np.zeros(np.broadcast(prompt_len, budget).shape, dtype=bool)
        if self.cache is not None and bool(self.cache) != bool(cache):
            return np.zeros(np.broadcast(prompt_len, budget).shape, dtype=bool)
        onset_value = budget + prompt_len if self.onset == "total" else budget + 0 * prompt_len
        return (onset_value >= self.start) & (budget <= self.end)

    def applies(self, *, attn: str | None = None, cache_impl: str | None = None, seed: int | None = None) -> bool:
        """Whether the regime can act on runs with this attention, KV-cache implementation and sweep seed
        (None: not known, not a restriction)."""
        return all(want is None or have is None or want == have
                   for want, have in ((self.attn, attn), (self.cache_impl, cache_impl), (self.seed, seed)))


@dataclass(frozen=True)
class Episode:
    """A slow host episode: runs whose position in the execution sequence,
    as a fraction of all runs, lies in ``[start, stop)`` are slowed by ``factor``."""

    start: float
    stop: float
    factor: float = 1.8

    def __post_init__(self) -> None:
        if not (0.0 <= self.start < self.stop <= 1.0):
            raise ConfigError(f"Episode needs 0 <= start < stop <= 1, got start={self.start!r}, stop={self.stop!r}")
        if not self.factor > 0:
            raise ConfigError(f"Episode factor must be > 0, got {self.factor!r}")


@dataclass(frozen=True)
class LatencyModel:
    """The simulated latency model; see the module docstring for the formulas."""

    regimes: tuple[Regime, ...] = ()
    episodes: tuple[Episode, ...] = ()
    noise_cv: float = 0.05
    step_cv: float = 0.02
    drift: float = 0.03
    run_state_prob: float = 0.0
    run_state_factor: float = 1.75
    costs: Mapping[str, ModelCost] = field(default_factory=lambda: dict(MODEL_COSTS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "regimes", tuple(self.regimes))
        object.__setattr__(self, "episodes", tuple(self.episodes))
        for name in ("noise_cv", "step_cv", "drift"):
            if getattr(self, name) < 0:
                raise ConfigError(f"LatencyModel {name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.run_state_prob <= 1:
            raise ConfigError(f"LatencyModel run_state_prob must be in [0, 1], got {self.run_state_prob!r}")

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (costs other than the defaults are kept)."""
        d = {
            "regimes": [dataclasses.asdict(r) for r in self.regimes],
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
            "noise_cv": self.noise_cv,
            "step_cv": self.step_cv,
            "drift": self.drift,
            "run_state_prob": self.run_state_prob,
            "run_state_factor": self.run_state_factor,
        }
        extra = {k: dataclasses.asdict(v) for k, v in self.costs.items() if MODEL_COSTS.get(k) != v}
        if extra:
            d["costs"] = extra
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyModel":
        """Build from :meth:`to_dict` output or a TOML table of the same shape."""
        known = {"regimes", "episodes", "noise_cv", "step_cv", "drift", "run_state_prob", "run_state_factor", "costs"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown sim setting {unknown[0]!r}; choices: {sorted(known)}")
        kw: dict[str, Any] = {k: v for k, v in d.items() if k not in ("regimes", "episodes", "costs")}
        try:
            kw["regimes"] = tuple(Regime(**r) for r in d.get("regimes", ()))
            kw["episodes"] = tuple(Episode(**e) for e in d.get("episodes", ()))
            costs = dict(MODEL_COSTS)
            costs.update({k: ModelCost(**v) for k, v in d.get("costs", {}).items()})
        except TypeError as exc:
            raise ConfigError(f"bad sim setting: {exc}") from None
        kw["costs"] = costs
        return cls(**kw)

    @classmethod
    def calibrated(cls, name: str, **changes: Any) -> "LatencyModel":
        """A model whose noise settings are the preset ``name`` fitted to real measurements.

        Parameters
        ----------
        name
            A key of :func:`noise_presets` (``cuda``, ``all``; ``cpu`` once
            the corpus has CPU sweeps).
        **changes
            Other fields (``regimes``, ``episodes``, ``costs``) or noise
            settings to override.

        Raises
        ------
        ConfigError
            When ``name`` is not a preset.
        """
        presets = noise_presets()
        if name not in presets:
            raise ConfigError(f"unknown noise preset {name!r}; choices: {sorted(presets)}")
        return cls(**{**presets[name], **changes})

    def restricted(self, *, attn: str | None = None, cache_impl: str | None = None,
                   seed: int | None = None) -> "LatencyModel":
        """This model with only the regimes that :meth:`Regime.applies` to runs of these factors."""
        keep = tuple(r for r in self.regimes if r.applies(attn=attn, cache_impl=cache_impl, seed=seed))
        return self if len(keep) == len(self.regimes) else dataclasses.replace(self, regimes=keep)

    def cost(self, model: str) -> ModelCost:
        """Cost of ``model``; an unknown name gets gpt2's costs."""
        return self.costs.get(model, self.costs.get("gpt2", MODEL_COSTS["gpt2"]))

    # ---------------------------------------------------------------- simulation
    def simulate_runs(
        self,
        *,
        model: str,
        device: str,
        dtype: str,
        cache: bool,
        prompt_len: np.ndarray,
        budget: np.ndarray,
        position: np.ndarray,
        rng: np.random.Generator,
        step_times: bool = False,
    ) -> dict[str, np.ndarray]:
        """Simulate many runs of one (model, device, dtype, cache) at once.

        Parameters
        ----------
        prompt_len, budget
            Integer arrays, one entry per run.
        position
            Position of each run in the execution sequence as a fraction of
            all runs, in [0, 1) (drives drift and host episodes).
        rng
            Source of all randomness.
        step_times
            Also return a ``(n_runs, max(budget))`` array of per-step times
            (NaN past each run's budget).

        Returns
        -------
        dict
            ``latency``, ``prefill_time``, ``decode_time``, ``mem_device_peak``,
            ``mem_device_driver``, ``mem_rss_peak``, ``mem_sys_available_min``,
            ``swap_used``, ``truth_anomalous`` (bool), ``run_state`` (bool) and,
            when asked, ``step_time``.
        """
        if device not in DEVICE_SPEED:
            raise ConfigError(f"sim knows devices {list(DEVICE_SPEED)}, got {device!r}")
        if dtype not in _DTYPE_SPEED:
            raise ConfigError(f"sim knows dtypes {list(_DTYPE_SPEED)}, got {dtype!r}")
        P = np.asarray(prompt_len, dtype=np.float64)
        B = np.asarray(budget, dtype=np.int64)
        pos = np.asarray(position, dtype=np.float64)
        n = B.size
        c = self.cost(model)
        speed = DEVICE_SPEED[device] * _DTYPE_SPEED[dtype]

        # run-level multiplier: noise x drift x run state x host episodes
        sigma = np.sqrt(np.log1p(self.noise_cv**2))
        run_mult = np.exp(rng.normal(-0.5 * sigma**2, sigma, n)) * (1.0 + self.drift * pos)
        run_state = rng.random(n) < self.run_state_prob
        run_mult = np.where(run_state, run_mult * self.run_state_factor, run_mult)
        for ep in self.episodes:
            run_mult = np.where((pos >= ep.start) & (pos < ep.stop), run_mult * ep.factor, run_mult)

        prefill = (c.prefill_base + c.prefill_per_token * P) * speed
        truth = np.zeros(n, dtype=bool)
        mem_mult = np.ones(n)
        max_b = int(B.max()) if n else 1
        k = np.arange(1, max_b, dtype=np.float64)  # decode steps 1..max_b-1
        ctx = P[:, None] + k[None, :]
        if cache:
            steps = (c.step_base + c.step_per_ctx * ctx) * speed
        else:
            steps = (c.nocache_base + c.nocache_per_ctx * ctx) * speed
        steps = np.where(k[None, :] < B[:, None], steps, np.nan)
        for reg in self.regimes:
            act = reg.active(model=model, device=device, cache=cache, prompt_len=P, budget=B)
            if not np.any(act):
                continue
            truth |= act & (reg.factor != 1.0)
            mem_mult = np.where(act, mem_mult * reg.mem_jump, mem_mult)
            if reg.phase == "prefill":
                prefill = np.where(act, prefill * reg.factor, prefill)
            else:
                from_k = 1 if reg.from_step is None else reg.from_step
                hit = act[:, None] & (k[None, :] >= from_k)
                steps = np.where(hit, steps * reg.factor, steps)
        if self.step_cv > 0:
            s_sigma = np.sqrt(np.log1p(self.step_cv**2))
            steps = steps * np.exp(rng.normal(-0.5 * s_sigma**2, s_sigma, steps.shape))
            prefill = prefill * np.exp(rng.normal(-0.5 * s_sigma**2, s_sigma, n))
        prefill = prefill * run_mult
        steps = steps * run_mult[:, None]
        decode = np.nansum(steps, axis=1)
        latency = prefill + decode

        total_tokens = P + B
        weights = c.weight_bytes * (0.5 if dtype != "float32" else 1.0)
        kv = c.kv_bytes_per_token * total_tokens * (1.0 if cache else 0.0)
        act_bytes = 2.0 * 4 * total_tokens * 1024 * (1.0 if cache else 2.0)
        peak = (weights + kv + act_bytes) * mem_mult
        out: dict[str, np.ndarray] = {
            "latency": latency,
            "prefill_time": prefill,
            "decode_time": decode,
            "mem_device_peak": peak if device != "cpu" else np.full(n, np.nan),
            "mem_device_driver": (np.ceil(peak * 1.25 / 2**20) * 2**20) if device != "cpu" else np.full(n, np.nan),
            "mem_rss_peak": 6.0e8 + 0.2 * weights + (peak if device == "cpu" else 0.0) + rng.normal(0, 2e5, n),
            "mem_sys_available_min": 1.2e10 - peak - rng.normal(0, 5e6, n),
            "swap_used": np.zeros(n),
            "truth_anomalous": truth,
            "run_state": run_state,
        }
        if step_times:
            out["step_time"] = np.concatenate([prefill[:, None], steps], axis=1)
        return out


def execution_order(n_runs: int, *, order: str = "random", seed: int = 0) -> np.ndarray:
    """Position of each run (in C order over the sweep) in the execution sequence.

    ``random``: a seeded permutation; ``sequential``: the runs in C order.
    """
    if order == "sequential":
        return np.arange(n_runs)
    if order == "random":
        return np.random.default_rng(seed).permutation(n_runs)
    raise ConfigError(f"order must be 'random' or 'sequential', got {order!r}")


def simulate(
    latency_model: LatencyModel,
    *,
    model: str,
    device: str = "sim",
    dtype: str = "float32",
    cache: bool = True,
    prompt_len: int,
    budget: int,
    position: float = 0.0,
    seed: int | Sequence[int] = 0,
    timing: str = "step",
    started_at: _dt.datetime | None = None,
) -> RunRecord:
    """Simulate one run and return it as a :class:`~collector.shared.record.RunRecord`.

    This is what the collector's ``sim`` device measures: no torch, no sleep.
    ``position`` is the run's place in the sweep's execution sequence as a
    fraction in [0, 1); ``seed`` seeds this run's randomness.
    """
    if budget < 1:
        raise ConfigError(f"budget must be >= 1, got {budget!r}")
    if prompt_len < 1:
        raise ConfigError(f"prompt_len must be >= 1, got {prompt_len!r}")
    rng = np.random.default_rng(seed)
    r = latency_model.simulate_runs(
        model=model,
        device=device,
        dtype=dtype,
        cache=cache,
        prompt_len=np.array([prompt_len]),
        budget=np.array([budget]),
        position=np.array([position]),
        rng=rng,
        step_times=timing in ("step", "events"),
    )
    c = latency_model.cost(model)
    steps: Iterable[float] = r["step_time"][0, :budget] if "step_time" in r else ()
    return RunRecord(
        model=model,
        device=device,
        dtype=dtype,
        cache=cache,
        prompt_len=prompt_len,
        budget=budget,
        engine="loop",
        timing=timing,
        status="ok",
        latency=float(r["latency"][0]),
        prefill_time=float(r["prefill_time"][0]),
        decode_time=float(r["latency"][0] - r["prefill_time"][0]),
        step_times=tuple(float(x) for x in steps),
        tokens=budget,
        mem_device_peak=float(r["mem_device_peak"][0]),
        mem_device_driver=float(r["mem_device_driver"][0]),
        mem_rss_peak=float(r["mem_rss_peak"][0]),
        mem_sys_available_min=float(r["mem_sys_available_min"][0]),
        swap_used=float(r["swap_used"][0]),
        started_at=started_at or _dt.datetime.now(_dt.timezone.utc),
        n_params=c.n_params,
        weights="random",
        architecture="simulated",
    )


_NOISE_FIELDS = ("noise_cv", "step_cv", "drift", "run_state_prob", "run_state_factor")


@lru_cache(maxsize=1)
def _calibration_text() -> str:
    try:
        return resources.files("collector.shared").joinpath("sim_calibration.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "collector/shared/sim_calibration.json is missing: run benchmarks/calibrate_sim.py --write"
        ) from None


def noise_presets() -> dict[str, dict[str, float]]:
    """Noise settings fitted to the real null corpus, by preset name.

    Returns
    -------
    dict
        ``{name: {"noise_cv": ..., "step_cv": ..., "drift": ...,
        "run_state_prob": ..., "run_state_factor": ...}}`` (a fresh copy; a
        setting the corpus could not fit, such as ``step_cv`` without per-step
        times, is left out and keeps its default).

    Raises
    ------
    ConfigError
        When sim_calibration.json is missing or has an unknown setting.
    """
    presets = json.loads(_calibration_text()).get("presets", {})
    for name, values in presets.items():
        unknown = sorted(set(values) - set(_NOISE_FIELDS))
        if unknown:
            raise ConfigError(
                f"noise preset {name!r} has unknown setting {unknown[0]!r}; choices: {list(_NOISE_FIELDS)}"
            )
    return {name: {k: float(v) for k, v in values.items()} for name, values in presets.items()}


def dumps(model: LatencyModel) -> str:
    """The model as a JSON string (for dataset attrs)."""
    return json.dumps(model.to_dict(), sort_keys=True)
