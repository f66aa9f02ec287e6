"""The steps of a report as task functions (module level, picklable arguments; the dataset in ``SHARED``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis._labels import iter_series, series_dims, series_name, varying_dims
from analysis._report_parts import RenderedFigure, render_figure
from analysis._report_run import SHARED

__all__ = ["PARALLEL_RUNS", "STEP_RUNS", "analysis_task", "figure_task", "regimes_parallel", "regimes_task",
           "steps_subset", "steps_task"]

#: Above this many runs with per-step times, the per-step analysis covers the series with the strongest regimes only.
STEP_RUNS = 5_000
#: From this many runs, :func:`regimes_parallel` spreads the series over worker processes.
PARALLEL_RUNS = 20_000


def _ds() -> xr.Dataset:
    return SHARED["ds"]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def regimes_task() -> xr.Dataset:
    """:func:`analysis.regimes` of the dataset's latency."""
    from analysis.regimes import regimes

    return _quiet(regimes, _ds())


def regimes_parallel(ds: xr.Dataset, workers: int) -> xr.Dataset:
    """:func:`analysis.regimes` of ``ds.latency``; large inputs have their series spread over forked processes.

    The per-series work runs on dask chunks of the largest series dim with
    the ``processes`` scheduler; the dataset-wide steps (corrections, time
    check) stay here, so the result is the same as an eager call.
    """
    import multiprocessing

    from analysis.regimes import regimes

    lat = ds["latency"]
    n_runs = int(lat.size)
    dims = [d for d in series_dims(lat) if lat.sizes[d] > 1]
    if workers <= 1 or n_runs < PARALLEL_RUNS or not dims or "fork" not in multiprocessing.get_all_start_methods():
        return _quiet(regimes, ds)
    import dask

    dim = max(dims, key=lambda d: lat.sizes[d])
    size = max(1, -(-lat.sizes[dim] // (2 * workers)))
    keep = [v for v in ("latency", "status", "order", "started_at") if v in ds]
    lazy = ds[keep].chunk({dim: size})
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        with dask.config.set({"scheduler": "processes", "pool": pool}):
            return _quiet(regimes, lazy)


def analysis_task(key: str, regimes: xr.Dataset) -> xr.Dataset:
    """One of the per-question analyses, reusing the regimes result."""
    from analysis.backends import compare_backends
    from analysis.boundaries import boundaries
    from analysis.kv import kv_speedup
    from analysis.memory import memory_effect
    from analysis.monotonicity import monotonicity
    from analysis.phases import phases

    ds = _ds()
    fns = {"phases": lambda: phases(ds, reg=regimes), "memory": lambda: memory_effect(ds, reg=regimes),
           "kv": lambda: kv_speedup(ds, reg=regimes), "monotonicity": lambda: monotonicity(ds),
           "boundaries": lambda: boundaries(ds, reg=regimes), "backends": lambda: compare_backends(ds, reg=regimes)}
    return _quiet(fns[key])


def steps_subset(ds: xr.Dataset, reg: xr.Dataset, max_runs: int) -> tuple[xr.Dataset, str]:
    """The per-step data to analyse: all of it, or (above ``max_runs`` runs) only the series with a regime.

    The chosen series are stacked on one ``series`` dim whose values are the
    series' names. Returns the data and a note saying what was left out ("" if nothing).
    """
    st = ds["step_time"]
    keep = [v for v in ("step_time", "status") if v in ds]
    n_runs = int(np.prod([n for d, n in st.sizes.items() if d != "step"], dtype=np.int64))
    if n_runs <= max_runs:
        return ds[keep], ""
    dims = series_dims(st)
    every = list(iter_series(st, dims))
    varying = varying_dims(st, dims)
    strength = []
    for _, values in every:  # the strongest regime of each series (0: none)
        one = reg.sel({d: v for d, v in values.items() if d in reg.indexes})
        anom = np.asarray(one["segment_anomalous"].values, dtype=bool)
        eff = np.abs(np.log(np.asarray(one["effect"].values, dtype=float)))
        strength.append(float(np.nanmax(np.where(anom, eff, 0.0), initial=0.0)))
    per_series = max(n_runs // max(len(every), 1), 1)
    room = max(max_runs // per_series, 1)
    chosen = sorted((i for i in range(len(every)) if strength[i] > 0), key=lambda i: -strength[i])[:room]
    if not chosen:
        chosen = list(range(min(len(every), room)))
    chosen.sort()
    stacked = ds[keep].stack(series=dims).isel(series=chosen)
    names = [series_name(every[i][1], varying) for i in chosen]
    sub = stacked.drop_vars([c for c in stacked.coords if "series" in stacked[c].dims]).assign_coords(series=names)
    note = (f"Per-step modes analysed for {len(chosen)} of {len(every)} series, those with the strongest latency "
            f"regimes ({n_runs:,} runs are more than {max_runs:,}); `python -m analysis steps` analyses all of them.")
    return sub.transpose("series", ...), note


def steps_task(max_runs: int, regimes: xr.Dataset) -> tuple[xr.Dataset, str]:
    """:func:`analysis.step_regimes` on :func:`steps_subset` of the dataset, and its note."""
    from analysis.steps import step_regimes

    sub, note = steps_subset(_ds(), regimes, max_runs)
    return _quiet(step_regimes, sub), note


def figure_task(name: str, caption: str, out_dir: str, max_panels: int, regimes: xr.Dataset,
                kv: Any = None) -> RenderedFigure:
    """Draw figure ``name`` of the dataset and write it (PNG and SVG) under ``out_dir``."""
    from analysis import plot

    ds = _ds()
    small = min(max_panels, 6)
    makers = {
        "latency": lambda: plot.latency(ds, reg=regimes, max_panels=max_panels),
        "decode_per_token": lambda: plot.decode_per_token(ds, reg=regimes, max_panels=max_panels),
        "drift": lambda: plot.drift(ds, reg=regimes),
        "phases": lambda: plot.phases(ds, reg=regimes, max_panels=small),
        "memory": lambda: plot.memory(ds, reg=regimes, max_panels=small),
        "kv_speedup": lambda: plot.kv_speedup(ds, kv=kv, max_panels=max_panels),
        "regime_map": lambda: plot.regime_map(ds, reg=regimes, max_panels=small),
    }
    fig = _quiet(makers[name])
    return render_figure(fig, name, caption, Path(out_dir))
