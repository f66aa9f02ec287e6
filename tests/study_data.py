"""Synthetic datasets built to mirror the MPS study, for the analysis tests.

What is planted (all on device ``mps``; ``cpu`` and ``cuda`` are clean):

* a decode-phase regime with the KV cache on, decode steps 4x slower, whose
  onset is on total length (``prompt_len + budget >= 128``) and whose
  recovery is on budget (``budget <= 160``): with prompt lengths 16 and 48
  the anomalous budgets are 112..160 and 80..160;
* a weaker cache-off regime (decode 1.6x slower at budgets 208..224), the
  residual non-monotonicity of cache-off decoding;
* memory that grows smoothly with the context (no jump inside the regime);
* model costs chosen so that the KV-cache speedup latency(off)/latency(on) is
  about 8x outside the regime (about 5.5x at the smallest budget, 11x at the
  largest) and about 2x inside it.

Builders are cached; every call returns a fresh copy.
"""

from __future__ import annotations

import functools

import xarray as xr

from analysis.synthetic import make_dataset
from collector.shared.sim import MODEL_COSTS, LatencyModel, ModelCost, Regime

__all__ = [
    "MODEL",
    "BUDGETS",
    "PROMPT_LENS",
    "ONSET_TOTAL",
    "RECOVERY_BUDGET",
    "FACTOR",
    "OFF_FACTOR",
    "OFF_BUDGETS",
    "study_regimes",
    "study_model",
    "study",
    "null",
    "from_step",
    "prefill_regime",
    "memory_jump",
    "budget_onset",
]

MODEL = "gpt2-medium"
BUDGETS: tuple[int, ...] = tuple(range(16, 257, 16))
PROMPT_LENS: tuple[int, ...] = (16, 48)
ONSET_TOTAL = 128  # regime starts where prompt_len + budget >= 128
RECOVERY_BUDGET = 160  # ... and ends after budget 160
FACTOR = 4.0  # cache-on decode steps inside the regime
OFF_FACTOR = 1.6  # the weaker cache-off regime
OFF_BUDGETS = (208, 224)

#: gpt2-medium-like costs with a KV speedup of about 8x in mid-range budgets.
STUDY_COST = ModelCost(
    n_params=354_823_168,
    prefill_base=6e-3,
    prefill_per_token=1e-4,
    step_base=1.5e-2,
    step_per_ctx=1e-5,
    nocache_base=7.5e-2,
    nocache_per_ctx=5e-4,
    kv_bytes_per_token=2 * 4 * 24 * 1024,
)


def study_regimes() -> tuple[Regime, ...]:
    """The planted regimes (see the module docstring)."""
    return (
        Regime(start=ONSET_TOTAL, end=RECOVERY_BUDGET, factor=FACTOR, device="mps", cache=True, onset="total"),
        Regime(start=OFF_BUDGETS[0], end=OFF_BUDGETS[1], factor=OFF_FACTOR, device="mps", cache=False),
    )


def study_model(regimes: tuple[Regime, ...] | None = None, **noise: float) -> LatencyModel:
    """The latency model with the study's costs (``regimes=None``: :func:`study_regimes`)."""
    costs = dict(MODEL_COSTS)
    costs[MODEL] = STUDY_COST
    settings = {"noise_cv": 0.05, "step_cv": 0.02, "drift": 0.03, "run_state_prob": 0.0}
    settings.update(noise)
    return LatencyModel(regimes=study_regimes() if regimes is None else regimes, costs=costs, **settings)


@functools.lru_cache(maxsize=16)
def _build(
    seed: int,
    trials: int,
    devices: tuple[str, ...],
    prompt_lens: tuple[int, ...],
    budgets: tuple[int, ...],
    regimes: tuple[Regime, ...] | None,
    step_time: bool,
    missing: float,
    run_state_prob: float,
) -> xr.Dataset:
    return make_dataset(
        seed,
        models=(MODEL,),
        devices=devices,
        caches=(False, True),
        prompt_lens=prompt_lens,
        budgets=budgets,
        trials=trials,
        step_time=step_time,
        missing=missing,
        latency_model=study_model(regimes, run_state_prob=run_state_prob),
    )


def study(
    seed: int = 0,
    *,
    trials: int = 3,
    devices: tuple[str, ...] = ("cpu", "cuda", "mps"),
    prompt_lens: tuple[int, ...] = PROMPT_LENS,
    budgets: tuple[int, ...] = BUDGETS,
    step_time: bool = False,
    missing: float = 0.0,
    run_state_prob: float = 0.0,
) -> xr.Dataset:
    """The study-like dataset (a fresh copy)."""
    return _build(seed, trials, devices, prompt_lens, budgets, None, step_time, missing, run_state_prob).copy(deep=True)


def null(
    seed: int = 0,
    *,
    trials: int = 3,
    devices: tuple[str, ...] = ("cpu", "cuda", "mps"),
    prompt_lens: tuple[int, ...] = PROMPT_LENS,
    budgets: tuple[int, ...] = BUDGETS,
    step_time: bool = False,
    missing: float = 0.0,
    run_state_prob: float = 0.0,
) -> xr.Dataset:
    """The same grid and costs with no planted regime."""
    return _build(seed, trials, devices, prompt_lens, budgets, (), step_time, missing, run_state_prob).copy(deep=True)


def from_step(seed: int = 0, *, step: int = 40, trials: int = 3) -> xr.Dataset:
    """mps, cache on, one prompt length: budgets 96..144 enter a 3x slower decode mode at ``step``."""
    reg = (Regime(start=96, end=144, factor=3.0, device="mps", cache=True, from_step=step),)
    return _build(seed, trials, ("mps",), (32,), tuple(range(16, 193, 16)), reg, True, 0.0, 0.0).copy(deep=True)


def prefill_regime(seed: int = 0, *, trials: int = 3) -> xr.Dataset:
    """mps, cache on, a long prompt: the prefill (not the decode) is 30x slower at budgets 64..96."""
    reg = (Regime(start=64, end=96, factor=30.0, device="mps", cache=True, phase="prefill"),)
    return _build(seed, trials, ("mps",), (256,), tuple(range(16, 161, 16)), reg, False, 0.0, 0.0).copy(deep=True)


def memory_jump(seed: int = 0, *, trials: int = 3) -> xr.Dataset:
    """mps, cache on: a 3x decode regime at budgets 96..160 in which device memory also jumps 1.3x."""
    reg = (Regime(start=96, end=160, factor=3.0, device="mps", cache=True, mem_jump=1.3),)
    return _build(seed, trials, ("mps",), (32,), BUDGETS, reg, False, 0.0, 0.0).copy(deep=True)


def budget_onset(seed: int = 0, *, trials: int = 3) -> xr.Dataset:
    """mps, cache on, prompt lengths 16 and 48: a 4x regime at budgets 96..160 whatever the prompt."""
    reg = (Regime(start=96, end=160, factor=4.0, device="mps", cache=True, onset="budget"),)
    return _build(seed, trials, ("mps",), PROMPT_LENS, BUDGETS, reg, False, 0.0, 0.0).copy(deep=True)
