"""Schema-valid simulated datasets with planted regimes and known truth.

Drawn from :mod:`collector.shared.sim` (the same latency model as the collector's
``sim`` device). Every dataset made here has ``attrs["simulated"] == 1`` and a
``truth_anomalous`` variable (bool over the sweep dims) marking exactly the
cells inside a planted regime. For tests, benchmarks and planning only.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from collector.dataset import schema
from collector.shared.sim import Episode, LatencyModel, Regime, execution_order

__all__ = ["make_dataset", "Regime", "Episode", "LatencyModel", "DEFAULT_REGIMES"]

#: The default planted regime: gpt2-like decode slowed 5x for budgets 96..128 with the cache on.
DEFAULT_REGIMES: tuple[Regime, ...] = (Regime(start=96, end=128, factor=5.0, cache=True),)

_CHUNK_RUNS = 20_000  # bounds the (runs x steps) work array


def _simulate(ds: xr.Dataset, lm: LatencyModel, *, order: str, step_time: bool,
              rng: np.random.Generator) -> dict[str, Any]:
    """Every applicable run of ``ds``'s grid simulated in a seeded execution order: the timing and memory
    arrays (sweep shape), the truth masks, the step times and the order."""
    shape = tuple(ds.sizes[d] for d in schema.SWEEP_DIMS)
    n_total = int(np.prod(shape))
    position_rank = execution_order(n_total, order=order, seed=int(rng.integers(2**31)))
    position = (position_rank / n_total).reshape(shape)
    inner = ("prompt_len", "budget", "trial")  # vectorised; the other dims are looped over by name
    outer = tuple(d for d in schema.SWEEP_DIMS if d not in inner)
    assert schema.SWEEP_DIMS[-3:] == inner, "synthetic assumes prompt_len, budget, trial are the last sweep dims"
    inner_shape = tuple(ds.sizes[d] for d in inner)
    P = np.broadcast_to(ds["prompt_len"].values[:, None, None], inner_shape)
    B = np.broadcast_to(ds["budget"].values[None, :, None], inner_shape)
    applicable_cell = ds["status"].values != schema.STATUS["not_applicable"]

    out = {name: np.full(shape, np.nan) for name in
           ("latency", "prefill_time", "decode_time", "mem_device_peak", "mem_device_driver",
            "mem_rss_peak", "mem_sys_available_min", "swap_used")}
    truth = np.zeros(shape, dtype=bool)
    run_state = np.zeros(shape, dtype=bool)
    steps = np.full(shape + (ds.sizes[schema.STEP_DIM],), np.nan, dtype=np.float32) if step_time else None
    for idx in np.ndindex(*(ds.sizes[d] for d in outer)):
        cell = {d: ds[d].values[i].item() for d, i in zip(outer, idx)}
        if not applicable_cell[idx].any():
            continue
        p_flat, b_flat, pos_flat = P.ravel(), B.ravel(), position[idx].ravel()
        for lo in range(0, p_flat.size, _CHUNK_RUNS):
            sl = slice(lo, lo + _CHUNK_RUNS)
            r = lm.simulate_runs(
                model=str(cell["model"]), device=str(cell["device"]), dtype=str(cell["dtype"]),
                cache=bool(cell["cache"]), prompt_len=p_flat[sl], budget=b_flat[sl], position=pos_flat[sl],
                rng=rng, step_times=step_time,
            )
            flat_idx = np.unravel_index(np.arange(p_flat.size)[sl], inner_shape)
            for name, arr in out.items():
                arr[idx][flat_idx] = r[name]
            truth[idx][flat_idx] = r["truth_anomalous"]
            run_state[idx][flat_idx] = r["run_state"]
            if steps is not None:
                width = r["step_time"].shape[1]
                steps[idx][flat_idx + (slice(0, width),)] = r["step_time"]

    return {"out": out, "truth": truth, "run_state": run_state, "steps": steps, "position_rank": position_rank,
            "applicable": applicable_cell, "B": B}


def _record(ds: xr.Dataset, runs: dict[str, Any], *, missing: float, rng: np.random.Generator) -> None:
    """Write the simulated runs into ``ds`` (in place): a share ``missing`` failed, the order, the start times and
    the truth masks."""
    out, truth, run_state, steps = runs["out"], runs["truth"], runs["run_state"], runs["steps"]
    position_rank, applicable_cell, B = runs["position_rank"], runs["applicable"], runs["B"]
    shape = tuple(ds.sizes[d] for d in schema.SWEEP_DIMS)
    failed = (rng.random(shape) < missing) & applicable_cell
    status = np.where(failed, schema.STATUS["error"], schema.STATUS["ok"]).astype(np.int8)
    status[~applicable_cell] = schema.STATUS["not_applicable"]
    for name in ("latency", "prefill_time", "decode_time"):
        out[name][~applicable_cell] = np.nan
    for name in ("latency", "prefill_time", "decode_time"):
        out[name][failed] = np.nan
    out["decode_time"] = out["latency"] - out["prefill_time"]
    for name, arr in out.items():
        ds[name].values[...] = arr
    if steps is not None:
        steps[failed | ~applicable_cell] = np.nan
        ds["step_time"].values[...] = steps
    ds["status"].values[...] = status
    ds["tokens"].values[...] = np.where(failed | ~applicable_cell, 0, np.broadcast_to(B, shape)).astype(np.int32)
    ds["order"].values[...] = np.where(applicable_cell, position_rank.reshape(shape), -1).astype(np.int32)
    ds["worker"].values[...] = np.where(applicable_cell, 0, -1)
    # wall-clock start of each run: runs back to back in execution order, 50 ms apart
    lat_in_order = np.nan_to_num(out["latency"].ravel()[np.argsort(position_rank)], nan=0.0) + 0.05
    start_in_order = np.concatenate([[0.0], np.cumsum(lat_in_order)[:-1]])
    start_s = start_in_order[position_rank].reshape(shape)
    t0 = np.datetime64(_dt.datetime(2026, 1, 1, 0, 0, 0), "ns")
    started = t0 + (start_s * 1e6).astype("int64").astype("timedelta64[us]")
    ds["started_at"].values[...] = np.where(applicable_cell, started, np.datetime64("NaT"))
    ds["truth_anomalous"] = (schema.SWEEP_DIMS, truth,
                             schema.bool_attrs("cell lies inside a planted regime (simulation truth)"))
    ds["truth_run_state"] = (schema.SWEEP_DIMS, run_state,
                             schema.bool_attrs("run slowed as a whole by a run-level state (simulation truth)"))


def make_dataset(
    seed: int = 0,
    *,
    models: Sequence[str] = ("gpt2",),
    devices: Sequence[str] = ("sim",),
    dtypes: Sequence[str] = ("float32",),
    caches: Sequence[bool] = (False, True),
    prompt_lens: Sequence[int] = (32,),
    budgets: Sequence[int] = tuple(range(16, 257, 16)),
    trials: int = 5,
    regimes: Sequence[Regime] | None = None,
    episodes: Sequence[Episode] = (),
    noise_cv: float = 0.05,
    step_cv: float = 0.02,
    drift: float = 0.03,
    run_state_prob: float = 0.02,
    run_state_factor: float = 1.75,
    noise: str | None = None,
    order: str = "random",
    step_time: bool = True,
    missing: float = 0.0,
    latency_model: LatencyModel | None = None,
    **values: Sequence[object],
) -> xr.Dataset:
    """A simulated dataset (the current schema, docs/schema.md) with planted regimes.

    Parameters
    ----------
    seed
        Seeds everything (noise, run order, missing cells).
    models, devices, dtypes, caches, prompt_lens, budgets, trials
        The sweep grid. Devices may be ``sim`` or a backend name
        (cpu, cuda, mps) to mimic several backends; all are simulated.
    regimes
        Planted regimes (:class:`collector.shared.sim.Regime`); ``None`` plants
        :data:`DEFAULT_REGIMES`, ``()`` plants none (null data).
    episodes
        Slow host episodes over the execution sequence.
    noise_cv, step_cv, drift, run_state_prob, run_state_factor
        Noise settings of :class:`collector.shared.sim.LatencyModel`.
    noise
        Name of a noise preset fitted to real measurements
        (:func:`collector.shared.sim.noise_presets`: ``cuda``, ``all``, ...); when
        given it replaces the five noise settings above.
    order
        ``random`` (interleaved) or ``sequential`` execution order.
    step_time
        Include per-step times.
    missing
        Fraction of runs recorded as failed (status error, timing NaN).
    latency_model
        A complete model; overrides ``regimes``, ``episodes`` and the noise settings.
    **values
        Values of the other factors by setting name (``attns``, ``cache_impls``:
        :data:`collector.shared.factors.FACTORS`); default: each factor's default.
        The latency model ignores them (every value gets the same costs);
        cells that are not applicable (a static cache with the cache off) are
        ``not_applicable``.

    Returns
    -------
    xarray.Dataset
        Schema-v1 variables plus ``truth_anomalous`` (bool, sweep dims:
        True exactly in cells inside a planted regime) and ``truth_run_state``
        (bool, sweep dims: runs slowed as a whole). Attrs ``simulated`` = 1 and
        ``sim_model`` (the latency model as JSON).
    """
    if not 0 <= missing < 1:
        raise ValueError(f"missing must be in [0, 1), got {missing!r}")
    planted: dict[str, Any] = {"regimes": DEFAULT_REGIMES if regimes is None else tuple(regimes), "episodes": tuple(episodes)}
    lm = latency_model or (LatencyModel.calibrated(noise, **planted) if noise is not None else LatencyModel(
        **planted,
        noise_cv=noise_cv,
        step_cv=step_cv,
        drift=drift,
        run_state_prob=run_state_prob,
        run_state_factor=run_state_factor,
    ))
    sweep = {
        "models": list(models), "devices": list(devices), "dtypes": list(dtypes),
        "caches": [bool(c) for c in caches], "prompt_lens": [int(p) for p in prompt_lens],
        "budgets": [int(b) for b in budgets], "trials": int(trials), "order": order, "seed": int(seed),
        **{k: list(v) for k, v in values.items()},
    }
    model_info = {m: {"n_params": lm.cost(m).n_params, "weights": "random", "architecture": "simulated"} for m in models}
    grid = dict(values, models=models, devices=devices, dtypes=dtypes, caches=caches, prompt_lens=prompt_lens,
                budgets=budgets)
    ds = schema.empty_dataset(
        **grid, trials=trials, step_time=step_time, model_info=model_info,
        attrs={
            "title": "simulated decode-regimes dataset (analysis.synthetic)",
            "simulated": 1, "engine": "loop", "timing": "step" if step_time else "ends", "warmup": 0,
            "run_order": order, "seed": int(seed), "sweep": json.dumps(sweep), "command": "analysis.synthetic.make_dataset",
            "processor": "simulated", "gpu_name": "simulated",
        },
    )
    ds.attrs["sim_model"] = json.dumps(lm.to_dict(), sort_keys=True)
    rng = np.random.default_rng(seed)
    runs = _simulate(ds, lm, order=order, step_time=step_time, rng=rng)
    _record(ds, runs, missing=missing, rng=rng)
    return schema.validate(ds)
