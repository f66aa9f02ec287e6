"""The steps of a report as task functions (module level, picklable arguments; the dataset in ``SHARED``).

Analyses and figures are named by their :mod:`analysis.registry` entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis.core.common import quiet
from analysis.core.labels import iter_series, series_dims, series_name, varying_dims
from analysis.core.stacked import SERIES, STEP_RUN, dense_steps, is_stacked
from analysis.registry import BY_NAME, STEP_RUNS
from analysis.report.parts import RenderedFigure, render_figure
from analysis.report.runner import SHARED

__all__ = ["PARALLEL_RUNS", "STEP_RUNS", "analysis_task", "figure_task", "regimes_parallel", "regimes_task",
           "steps_subset"]

#: From this many runs, :func:`regimes_parallel` spreads the series over worker processes.
PARALLEL_RUNS = 20_000


def _ds() -> xr.Dataset:
    return SHARED["ds"]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with quiet():
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


def analysis_task(name: str, regimes: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The analysis ``name`` of the registry on the dataset, reusing the regimes result; and a note ("" if none).

    An analysis with ``max_runs`` gets :func:`steps_subset` of the dataset (the note says what was left out).
    """
    entry = BY_NAME[name]
    ds, note = _ds(), ""
    if entry.max_runs is not None:
        ds, note = steps_subset(ds, regimes, entry.max_runs, var=entry.needs[0], title=entry.title,
                                command=entry.key)
    kwargs = {"reg": regimes} if entry.takes_reg else {}
    return _quiet(entry.function, ds, **kwargs), note


def steps_subset(ds: xr.Dataset, reg: xr.Dataset, max_runs: int, *, var: str = "step_time",
                 title: str = "Per-step modes", command: str = "steps") -> tuple[xr.Dataset, str]:
    """The data of ``var`` to analyse: all of it, or (above ``max_runs`` runs) only the series with a regime.

    The chosen series are stacked on one ``series`` dim whose values are the
    series' names. Returns the data (``var`` and ``status``) and a note saying
    what was left out ("" if nothing): ``title`` names the analysis, ``command`` its command.
    """
    if STEP_RUN in ds[var].dims:  # several files: the runs with per-step times, one row each
        n_runs = int(ds.sizes[STEP_RUN])
        ds = dense_steps(ds)  # over the series again
    else:
        n_runs = int(np.prod([n for d, n in ds[var].sizes.items() if d != "step"], dtype=np.int64))
    st = ds[var]
    keep = [v for v in (var, "status") if v in ds]
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
    inner = [d for d in st.dims if d not in dims]  # series without a per-step time are not candidates
    has = np.asarray(st.notnull().any(inner).transpose(*dims).values, dtype=bool).ravel()
    per_series = max(n_runs // max(len(every), 1), 1)
    room = max(max_runs // per_series, 1)
    chosen = sorted((i for i in range(len(every)) if has[i] and strength[i] > 0), key=lambda i: -strength[i])[:room]
    if not chosen:
        chosen = [i for i in range(len(every)) if has[i]][:room] or list(range(min(len(every), room)))
    chosen.sort()
    if dims == [SERIES] and is_stacked(st):  # already stacked (several files): those series, as they are
        sub = ds[keep].isel({SERIES: chosen})
    else:
        stacked = ds[keep].stack(series=dims).isel(series=chosen)
        names = [series_name(every[i][1], varying) for i in chosen]
        sub = stacked.drop_vars([c for c in stacked.coords if "series" in stacked[c].dims]).assign_coords(series=names)
    note = (f"{title} analysed for {len(chosen)} of {int(has.sum())} series, those with the strongest latency "
            f"regimes ({n_runs:,} runs are more than {max_runs:,}); `python -m analysis {command}` analyses all of "
            "them.")
    return sub.transpose("series", ...), note


def figure_task(owner: str, name: str, out_dir: str, max_panels: int, regimes: xr.Dataset,
                **results: Any) -> RenderedFigure:
    """Draw figure ``name`` of the analysis ``owner`` (its registry entry) and write it (PNG and SVG) under
    ``out_dir``; ``results`` holds the owner's result when the figure takes it."""
    from analysis import plot

    spec = next(f for f in BY_NAME[owner].figures if f.name == name)
    kwargs: dict[str, Any] = {}
    if spec.reg:
        kwargs["reg"] = regimes
    if spec.panels is not None:
        kwargs["max_panels"] = max_panels if spec.panels == "all" else min(max_panels, 6)
    if spec.result is not None:
        own = next(iter(results.values()))
        kwargs[spec.result] = own[0] if isinstance(own, tuple) else own
    fig = _quiet(getattr(plot, spec.plot), _ds(), **kwargs)
    return render_figure(fig, name, spec.caption, Path(out_dir))
