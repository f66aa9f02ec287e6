"""From journal to schema-v1 dataset, and merging datasets.

:func:`to_dataset` builds the dataset of a journal: the grid of its spec (plus
the budgets refinement added), every recorded run in its cell (``order`` =
its place in the execution sequence, ``worker`` = the process that measured
it), every other cell ``not_run``. :func:`export` writes it with
:func:`collector.schema.save` (validated, atomic). Device ``sim`` datasets get
``simulated=1``, the latency model in attr ``sim_model`` and the planted
truth in ``truth_anomalous``.

:func:`merge` combines datasets (several hosts, devices or collection runs)
over the union of their coordinates. A cell measured in more than one input
is a conflict: an error unless ``resolve`` says which input wins (``first``
or ``last``). Inputs that measured different things (engine, timing,
simulated vs real, different weights for one model name) are refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector import schema
from collector.errors import ConfigError, JournalError
from collector.factors import FACTORS
from collector.journal import Journal, output_beside
from collector.spec import SweepSpec
from collector.storage import check_output

__all__ = ["RESOLVE", "spec_of", "to_dataset", "export", "merge_datasets", "merge"]

#: How :func:`merge` settles a cell measured in several inputs.
RESOLVE: tuple[str, ...] = ("error", "first", "last")

_RECORD_VARS = ("latency", "prefill_time", "decode_time", "mem_device_peak", "mem_device_driver", "mem_rss_peak",
                "mem_sys_available_min", "swap_used")
_TRUTH_ATTRS = schema.bool_attrs("cell lies inside a planted regime (simulation truth)")
_MAX_FAILURES = 200


def _utc64(t: _dt.datetime) -> np.datetime64:
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return np.datetime64(t, "ns")


def spec_of(journal: Journal) -> SweepSpec:
    """The sweep spec stored in ``journal``, checked again.

    Raises
    ------
    JournalError
        The stored spec is not a valid sweep spec (names the journal and what is wrong).
    """
    try:
        return SweepSpec.from_dict(journal.spec)
    except ConfigError as exc:
        raise JournalError(f"journal {str(journal.path)!r} is damaged: its sweep spec is invalid ({exc})") from None


def to_dataset(journal: Journal) -> xr.Dataset:
    """The schema-v1 dataset of everything recorded in ``journal`` (not yet validated).

    Raises
    ------
    JournalError
        The journal's spec or one of its rows is damaged (names the journal and the row).
    """
    spec = spec_of(journal)
    rows = list(journal.rows())
    budgets = sorted(set(spec.budgets) | {r.key.budget for r in rows})
    env = dict(journal.environment)
    simulated = "sim" in spec.devices
    model_info = dict(journal.model_info())
    for r in rows:
        model_info.setdefault(r.key.model, {"n_params": r.record.n_params, "weights": r.record.weights,
                                            "architecture": r.record.architecture})
    failures = [{"run": r.key._asdict(), "status": r.record.status, "error": r.record.error}
                for r in rows if not r.record.ok][:_MAX_FAILURES]
    attrs = dict(env)
    attrs.update(
        title=spec.title, engine=spec.engine, timing=spec.timing, warmup=spec.warmup, isolation=spec.isolation,
        run_order=spec.order, seed=_attr_int(spec.seed), sweep=spec.to_json(), command=str(journal.get("command", "")),
        simulated=int(simulated), memory=spec.memory, timeout=spec.timeout if spec.timeout is not None else "none",
        refine=spec.refine or 0, failures=json.dumps(failures),
    )
    if simulated:
        attrs["sim_model"] = json.dumps(spec.latency_model.to_dict(), sort_keys=True)
    values = {f.setting: spec.values(f.name) for f in FACTORS if f.role != "trial"}
    values["budgets"] = tuple(budgets)
    ds = schema.empty_dataset(**values, trials=spec.trials, step_time=spec.timing in ("step", "events"),
                              model_info=model_info, attrs=attrs)
    index = {d: {v: i for i, v in enumerate(ds[d].values.tolist())} for d in schema.SWEEP_DIMS}
    arrays = {name: ds[name].values for name in ds.data_vars}
    for order, r in enumerate(rows):
        try:
            _fill(arrays, index, order, r)
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise JournalError(f"journal {str(journal.path)!r} is damaged: run row id={r.id!r} cannot be used "
                               f"({type(exc).__name__}: {exc}); it was changed by hand or not written by this "
                               "package") from None
    if simulated:
        ds["truth_anomalous"] = (schema.SWEEP_DIMS, _truth(ds, spec).values, _TRUTH_ATTRS)
    return ds


def _fill(arrays: dict[str, np.ndarray], index: dict[str, dict[Any, int]], order: int, r: Any) -> None:
    """Put one journal row (a :class:`collector.journal.JournalRow`) into the dataset's arrays."""
    idx = tuple(index[d][getattr(r.key, d)] for d in schema.SWEEP_DIMS)
    rec = r.record
    arrays["status"][idx] = schema.STATUS[rec.status]
    arrays["tokens"][idx] = rec.tokens
    arrays["order"][idx] = order
    arrays["worker"][idx] = r.worker
    arrays["started_at"][idx] = _utc64(rec.started_at)
    for name in _RECORD_VARS:
        arrays[name][idx] = getattr(rec, name)
    if rec.ok and "step_time" in arrays and rec.step_times:
        steps = np.asarray(rec.step_times, dtype=np.float32)
        arrays["step_time"][idx][: steps.size] = steps


def _attr_int(value: int) -> int | str:
    """An integer attr as netCDF can hold it: as is within int64, else as its decimal string (a seed
    from a journal written before seeds were bounded)."""
    return value if -(2**63) <= value < 2**63 else str(value)


def _truth(ds: xr.Dataset, spec: SweepSpec) -> xr.DataArray:
    """Planted-regime truth over the sweep dims (by name: a regime depends on model, device, cache, prompt_len, budget)."""
    lm = spec.latency_model
    cells = xr.broadcast(*(ds[d] for d in ("model", "device", "cache", "prompt_len", "budget")))
    m, dev, cache, P, B = (np.asarray(c.values) for c in cells)
    hit = np.zeros(m.shape, dtype=bool)
    for reg in lm.regimes:
        if reg.factor == 1.0:
            continue
        for idx in np.ndindex(*m.shape[:3]):  # (model, device, cache): the regime's filters are scalars
            if dev[idx].flat[0] != "sim":
                continue
            hit[idx] |= np.asarray(reg.active(model=str(m[idx].flat[0]), device="sim", cache=bool(cache[idx].flat[0]),
                                              prompt_len=P[idx], budget=B[idx]))
    truth = xr.DataArray(hit, dims=cells[0].dims).broadcast_like(ds["status"])
    return truth.transpose(*schema.SWEEP_DIMS) & (ds["status"] != schema.STATUS["not_applicable"])


def export(journal_path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write the dataset of a journal to ``output`` atomically (default: the sweep's output file, beside the journal).

    Raises
    ------
    JournalError
        The journal cannot be read.
    ConfigError
        No output given and none stored in the spec.
    SchemaError
        The dataset would not be valid (a bug; nothing is written).
    """
    with Journal.open(journal_path) as journal:
        stored = spec_of(journal).output
        target = output if output is not None else output_beside(journal.path, stored)
        if not target:
            raise ConfigError(f"journal {str(journal_path)!r} stores no output path; give one with -o OUT.nc")
        check_output(target, inputs=[journal_path])  # never over the journal itself, before the work
        ds = to_dataset(journal)
    return schema.save(ds, target)


# --------------------------------------------------------------------------- merge
def _union(values: Sequence[np.ndarray], sort: bool) -> list[Any]:
    out: list[Any] = []
    for v in values:
        for x in v.tolist():
            if x not in out:
                out.append(x)
    return sorted(out) if sort else out


def merge_datasets(datasets: Sequence[xr.Dataset], *, resolve: str = "error",
                   names: Sequence[str] | None = None) -> xr.Dataset:
    """Combine schema-v1 datasets over the union of their coordinates.

    Parameters
    ----------
    datasets
        Two or more valid datasets.
    resolve
        ``error`` (a cell measured in two inputs raises), ``first`` or ``last``
        (that input's run is kept).
    names
        A label per input (file names) for messages and the ``merged_from`` attr.

    Returns
    -------
    xarray.Dataset
        Every schema variable plus ``source`` (int8: index of the input that
        measured the run, -1 where none did); attrs from the inputs (values that
        differ joined with " | "), ``sweep`` a JSON list of the inputs' sweeps,
        ``merged_from`` a JSON list describing each input.
    """
    if resolve not in RESOLVE:
        raise ConfigError(f"unknown resolve {resolve!r}; choices: {', '.join(RESOLVE)}")
    if len(datasets) < 2:
        raise ConfigError(f"merge needs at least two datasets, got {len(datasets)}")
    names = list(names) if names is not None else [f"input {i}" for i in range(len(datasets))]
    for ds, name in zip(datasets, names):
        schema.validate(ds)
    for attr in ("engine", "timing", "simulated"):
        vals = {str(ds.attrs[attr]) for ds in datasets}
        if len(vals) > 1:
            raise ConfigError(f"cannot merge datasets with different {attr!r} ({sorted(vals)!r}): they do not measure "
                              "the same thing")
    coords = {d: _union([ds[d].values for ds in datasets], sort=d in ("prompt_len", "budget", "trial"))
              for d in schema.SWEEP_DIMS}
    model_info: dict[str, dict[str, Any]] = {}
    for ds, name in zip(datasets, names):
        for i, m in enumerate(ds["model"].values.tolist()):
            info = {k: ds[k].values[i].item() for k in schema.MODEL_COORDS}
            old = model_info.setdefault(m, info)
            if old != info:
                raise ConfigError(f"model {m!r} differs between inputs ({old!r} vs {info!r} in {name}); "
                                  "rename one of them before merging")
    with_steps = any("step_time" in ds for ds in datasets)
    with_truth = all("truth_anomalous" in ds for ds in datasets)
    attrs = _merged_attrs(datasets, names)
    out = schema.empty_dataset(**{f.setting: coords[f.name] for f in FACTORS if f.role != "trial"},
                               trials=len(coords["trial"]), step_time=with_steps, model_info=model_info, attrs=attrs)
    out = out.assign_coords(trial=np.asarray(coords["trial"], dtype=np.int64))
    source = np.full(tuple(out.sizes[d] for d in schema.SWEEP_DIMS), -1, dtype=np.int8)
    truth = np.zeros(source.shape, dtype=bool)
    for n, (ds, name) in enumerate(zip(datasets, names)):
        sel = {d: ds[d].values for d in schema.SWEEP_DIMS}
        pos = tuple(np.array([coords[d].index(v) for v in sel[d].tolist()], dtype=np.intp) for d in schema.SWEEP_DIMS)
        grid = np.ix_(*pos)
        measured = ds["status"].values != schema.STATUS["not_run"]
        taken = source[grid] >= 0
        clash = measured & taken
        if clash.any() and resolve == "error":
            where = tuple(sel[d][i].item() for d, i in zip(schema.SWEEP_DIMS, np.argwhere(clash)[0]))
            raise ConfigError(f"cell {dict(zip(schema.SWEEP_DIMS, where))!r} was measured in "
                              f"{names[int(source[grid][clash][0])]} and in {name}; pass resolve='first' or 'last' "
                              "(--resolve) to choose")
        take = measured & ~taken if resolve == "first" else measured
        for var in schema.VARIABLES:
            if var not in out:
                continue
            if var not in ds:
                continue
            dst = out[var].values
            src = ds[var].values
            sub = dst[grid]
            if var == "step_time":
                width = src.shape[-1]
                part = sub[..., :width]
                part[take] = src[take]
                sub[..., :width] = part
                sub[take, width:] = np.nan
            else:
                sub[take] = src[take]
            dst[grid] = sub
        src_idx = source[grid]
        src_idx[take] = n
        source[grid] = src_idx
        if with_truth:
            t = truth[grid]
            t[take] = ds["truth_anomalous"].values[take]
            truth[grid] = t
    out["source"] = (schema.SWEEP_DIMS, source,
                     {"long_name": "index of the merged input that measured the run (attr merged_from); -1 not run",
                      "units": "1"})
    if with_truth:
        out["truth_anomalous"] = (schema.SWEEP_DIMS, truth, _TRUTH_ATTRS)
    return schema.validate(out)


def _merged_attrs(datasets: Sequence[xr.Dataset], names: Sequence[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    skip = {"created", "sweep", "command", "failures"}
    for key in schema.GLOBAL_ATTRS:
        if key in skip:
            continue
        vals: list[Any] = []
        for ds in datasets:
            if ds.attrs.get(key) not in vals:
                vals.append(ds.attrs.get(key))
        if len(vals) == 1:
            attrs[key] = vals[0]
        elif key in ("warmup", "seed"):
            attrs[key] = _attr_int(max(int(v) for v in vals))
        elif key in ("isolation", "run_order"):
            attrs[key] = vals[0]  # the schema wants one choice; the inputs' own values are in merged_from
        else:
            attrs[key] = " | ".join(str(v) for v in vals)
    attrs["title"] = "merged decode-regimes datasets"
    attrs["sweep"] = json.dumps([json.loads(str(ds.attrs["sweep"])) for ds in datasets])
    attrs["command"] = " ".join(sys.argv)
    attrs["merged_from"] = json.dumps([
        {"source": name, **{k: str(ds.attrs.get(k, "")) for k in
                            ("title", "created", "platform", "processor", "gpu_name", "isolation", "run_order")}}
        for ds, name in zip(datasets, names)])
    return attrs


def merge(paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, resolve: str = "error") -> Path:
    """Merge netCDF files into ``output`` (atomic); see :func:`merge_datasets`."""
    if resolve not in RESOLVE:
        raise ConfigError(f"unknown resolve {resolve!r}; choices: {', '.join(RESOLVE)}")
    check_output(output, inputs=paths)  # never over one of its inputs or a journal, before loading them
    datasets = [schema.load(p) for p in paths]
    try:
        merged = merge_datasets(datasets, resolve=resolve, names=[str(p) for p in paths])
        return schema.save(merged, output)
    finally:
        for ds in datasets:
            ds.close()
