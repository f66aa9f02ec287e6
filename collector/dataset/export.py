"""From journal to dataset (docs/schema.md), and merging datasets.

:func:`to_dataset` builds the dataset of a journal: the grid of its spec (plus
the budgets refinement added), every recorded run in its cell (``order`` =
its place in the execution sequence, ``worker`` = the process that measured
it, ``process`` = its pass, and what the host was doing: ``load_avg``,
``cpu_freq``, ``torch_threads``), every other cell ``not_run``. :func:`export` writes it with
:func:`collector.dataset.schema.save` (validated, atomic). Device ``sim`` datasets get
``simulated=1``, the latency model in attr ``sim_model`` and the planted
truth in ``truth_anomalous``.

:func:`merge` combines datasets by the rules of :mod:`collector.dataset.combine`
(the same as ``analysis.open_dataset`` on several files): inputs of one origin
(host and protocol) over the union of their coordinates, inputs of different
origins side by side along a leading ``origin`` dim. A cell measured in two
inputs of one origin is a conflict: an error unless ``resolve`` says which
input wins (``first`` or ``last``), or ``as_trials`` appends repeated
collections of the same cells as new trials.
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

from collector.dataset import combine, schema
from collector.dataset.identity import check_distinct_files, check_distinct_runs
from collector.dataset.storage import check_output
from collector.shared.errors import ConfigError, JournalError, SchemaError
from collector.shared.factors import FACTORS
from collector.sweep.journal import Journal, output_beside
from collector.sweep.spec import SweepSpec

__all__ = ["RESOLVE", "spec_of", "to_dataset", "export", "merge_datasets", "merge"]

#: How :func:`merge` settles a cell measured in several inputs.
RESOLVE: tuple[str, ...] = ("error", "first", "last")

_RECORD_VARS = ("latency", "prefill_time", "decode_time", "mem_device_peak", "mem_device_driver", "mem_rss_peak",
                "mem_sys_available_min", "swap_used", "load_avg", "cpu_freq", "torch_threads")
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
    """The dataset of everything recorded in ``journal`` (not yet validated).

    A sweep whose runs were measured on more than one host (dask workers, :mod:`collector.sweep.cluster`)
    gives one origin per host: each host's runs as a dataset of their own with that host's environment
    attrs, combined as :func:`merge_datasets` combines files (a leading ``origin`` dim labelled with the
    host names; ``order`` and ``worker`` stay journal-wide). Runs of one host give one dataset with that
    host's environment; a journal whose runs were all measured by the sweep's own process (a local
    sweep), its environment.

    Raises
    ------
    JournalError
        The journal's spec or one of its rows is damaged (names the journal and the row).
    """
    spec = spec_of(journal)
    rows = list(journal.rows())
    budgets = sorted(set(spec.budgets) | {r.key.budget for r in rows})
    model_info = dict(journal.model_info())
    run_hosts = journal.run_hosts()
    if not run_hosts:  # every run measured by the sweep's own process
        return _dataset(journal, spec, list(enumerate(rows)), budgets, dict(journal.environment), model_info)
    env = dict(journal.environment)
    here = str(env.get("host", ""))
    hosts = journal.hosts()
    by_host: dict[str, list[tuple[int, Any]]] = {}
    for order, r in enumerate(rows):
        by_host.setdefault(run_hosts.get(r.id, here), []).append((order, r))
    envs = {h: {**env, **hosts.get(h, {}), "host": h} for h in by_host}
    if len(by_host) == 1:
        (host, placed), = by_host.items()
        return _dataset(journal, spec, placed, budgets, envs[host], _host_models(model_info, placed))
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    names = sorted(by_host)
    parts = [schema.validate(schema.normalize(_dataset(journal, spec, by_host[h], budgets, {**envs[h], "created": created},
                                                       _host_models(model_info, by_host[h])))) for h in names]
    command = str(journal.get("command", ""))
    out = merge_datasets(parts, names=names, command=command, title=spec.title)
    labels = [str(h) for h in out["host"].values.tolist()]  # one origin per host: label them with the host names
    out = out.assign_coords({combine.ORIGIN_DIM: (combine.ORIGIN_DIM, np.asarray(labels, dtype=str),
                                                  out[combine.ORIGIN_DIM].attrs)})
    out = out.isel({combine.ORIGIN_DIM: np.argsort(labels, kind="stable")})
    out = out.assign_coords(files=(combine.ORIGIN_DIM, np.asarray([json.dumps([journal.path.name])] * len(labels),
                                                                   dtype=str), out["files"].attrs))
    out.attrs.update(created=created, failures=_failures(rows))
    return out


def _host_models(model_info: dict[str, dict[str, Any]], placed: Sequence[tuple[int, Any]]) -> dict[str, dict[str, Any]]:
    """The model facts of one host's runs: those its first ok run of each model reported, else the journal's."""
    info = dict(model_info)
    seen: set[str] = set()
    for _, r in placed:
        if r.record.ok and r.key.model not in seen:
            seen.add(r.key.model)
            info[r.key.model] = {"n_params": r.record.n_params, "weights": r.record.weights,
                                 "architecture": r.record.architecture}
    return info


def _failures(rows: Sequence[Any]) -> str:
    """The ``failures`` attr: JSON list of the failed runs (at most :data:`_MAX_FAILURES`)."""
    return json.dumps([{"run": r.key._asdict(), "status": r.record.status, "error": r.record.error}
                       for r in rows if not r.record.ok][:_MAX_FAILURES])


def _dataset(journal: Journal, spec: SweepSpec, placed: Sequence[tuple[int, Any]], budgets: list[int],
             env: dict[str, Any], model_info: dict[str, dict[str, Any]]) -> xr.Dataset:
    """The dataset of the journal rows ``placed`` (``(order, row)`` pairs) measured in environment ``env``."""
    rows = [r for _, r in placed]
    simulated = "sim" in spec.devices
    model_info = dict(model_info)
    for r in rows:
        model_info.setdefault(r.key.model, {"n_params": r.record.n_params, "weights": r.record.weights,
                                            "architecture": r.record.architecture})
    attrs = dict(env)
    attrs.update(
        title=spec.title, engine=spec.engine, timing=spec.timing, warmup=spec.warmup, isolation=spec.isolation,
        run_order=spec.order, seed=_attr_int(spec.seed), sweep=spec.to_json(), command=str(journal.get("command", "")),
        simulated=int(simulated), memory=spec.memory, timeout=spec.timeout if spec.timeout is not None else "none",
        refine=spec.refine or 0, failures=_failures(rows), processes=spec.processes,
    )
    if simulated:
        attrs["sim_model"] = json.dumps(spec.latency_model.to_dict(), sort_keys=True)
    values = {f.setting: spec.values(f.name) for f in FACTORS if f.role != "trial"}
    values["budgets"] = tuple(budgets)
    ds = schema.empty_dataset(**values, trials=spec.trials, step_time=spec.timing in ("step", "events", "stream"),
                              model_info=model_info, attrs=attrs)
    index = {d: {v: i for i, v in enumerate(ds[d].values.tolist())} for d in schema.SWEEP_DIMS}
    arrays = {str(name): ds[name].values for name in ds.data_vars}
    for order, r in placed:
        try:
            _fill(arrays, index, order, r, spec.processes)
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise JournalError(f"journal {str(journal.path)!r} is damaged: run row id={r.id!r} cannot be used "
                               f"({type(exc).__name__}: {exc}); it was changed by hand or not written by this "
                               "package") from None
    if simulated:
        ds["truth_anomalous"] = (schema.SWEEP_DIMS, _truth(ds, spec).values, _TRUTH_ATTRS)
    if spec.http is not None:  # engine http: the endpoint's origin attrs and the server's own figures
        from collector.http.dataset import annotate

        annotate(ds, spec, rows, model_info)
    return ds


def _fill(arrays: dict[str, np.ndarray], index: dict[str, dict[Any, int]], order: int, r: Any,
          processes: int = 1) -> None:
    """Put one journal row (a :class:`collector.sweep.journal.JournalRow`) into the dataset's arrays.

    ``process``: the pass the record names; a record written before passes were recorded ran in the
    pass its trial gives (``trial % processes``: pass 0 with one process)."""
    idx = tuple(index[d][getattr(r.key, d)] for d in schema.SWEEP_DIMS)
    rec = r.record
    arrays["status"][idx] = schema.STATUS[rec.status]
    arrays["tokens"][idx] = rec.tokens
    arrays["order"][idx] = order
    arrays["worker"][idx] = r.worker
    arrays["process"][idx] = rec.process if rec.process >= 0 else int(r.key.trial) % max(int(processes), 1)
    arrays["started_at"][idx] = _utc64(rec.started_at)
    for name in _RECORD_VARS:
        arrays[name][idx] = getattr(rec, name)
    if rec.status in ("ok", "truncated") and "step_time" in arrays and rec.step_times:
        steps = np.asarray(rec.step_times, dtype=np.float32)
        arrays["step_time"][idx][: steps.size] = steps


def _attr_int(value: int) -> int | str:
    """An integer attr as netCDF can hold it: as is within int64, else as its decimal string (a seed
    from a journal written before seeds were bounded)."""
    return value if -(2**63) <= value < 2**63 else str(value)


def _truth(ds: xr.Dataset, spec: SweepSpec) -> xr.DataArray:
    """Planted-regime truth over the sweep dims (by name: a regime depends on model, device, cache, prompt_len, budget)."""
    lm = spec.latency_model
    lm = lm.restricted(seed=spec.seed)  # a regime of another sweep's processes is not in this one
    cells = xr.broadcast(*(ds[d] for d in ("model", "device", "cache", "prompt_len", "budget")))
    m, dev, cache, P, B = (np.asarray(c.values) for c in cells)
    hit = np.zeros(m.shape + (ds.sizes["attn"], ds.sizes["cache_impl"]), dtype=bool)
    for reg in lm.regimes:
        if reg.factor == 1.0:
            continue
        for idx in np.ndindex(*m.shape[:3]):  # (model, device, cache): the regime's filters are scalars
            if dev[idx].flat[0] != "sim":
                continue
            hit[idx] |= np.asarray(reg.active(model=str(m[idx].flat[0]), device="sim", cache=bool(cache[idx].flat[0]),
                                              prompt_len=P[idx], budget=B[idx]))[..., None, None] & _applies(reg, ds)
    truth = xr.DataArray(hit, dims=(*cells[0].dims, "attn", "cache_impl")).broadcast_like(ds["status"])
    return truth.transpose(*schema.SWEEP_DIMS) & (ds["status"] != schema.STATUS["not_applicable"])


def _applies(reg: Any, ds: xr.Dataset) -> np.ndarray:
    """Over (attn, cache_impl): where ``reg`` can act."""
    return np.array([[reg.applies(attn=str(a), cache_impl=str(c)) for c in ds["cache_impl"].values]
                     for a in ds["attn"].values], dtype=bool)


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
def merge_datasets(datasets: Sequence[xr.Dataset], *, resolve: str = "error",
                   names: Sequence[str] | None = None, as_trials: bool = False,
                   command: str | None = None, title: str | None = None) -> xr.Dataset:
    """Combine schema datasets: the rules of :mod:`collector.dataset.combine`, or repeated collections as new trials.

    Parameters
    ----------
    datasets
        Two or more valid datasets.
    resolve
        ``error`` (a cell measured in two inputs of one origin raises),
        ``first`` or ``last`` (that input's run is kept).
    names
        A label per input (file names) for messages and the ``merged_from`` attr.
    as_trials
        Append the inputs' trials one after the other (input 2's trial 0
        becomes trial T1, ...): repeated collections of the same cells. The
        inputs must come from one origin (:data:`collector.dataset.combine.ORIGIN_ATTRS`
        and the models' weights); ``order``, ``worker`` and ``process`` continue the
        previous input's numbering.
    command, title
        The ``command`` and ``title`` attrs of the result (default: this
        process's command line; "merged decode-regimes datasets").

    Returns
    -------
    xarray.Dataset
        Every schema variable plus ``source`` (int8: index of the input that
        measured the run, -1 where none did). Inputs of different origins
        (hosts, protocols) are kept apart by a leading ``origin`` dim whose
        coordinates hold each origin's settings. Attrs from the inputs (values
        that differ joined with " | ", ``"per origin"`` for an origin setting),
        ``sweep`` a JSON list of the inputs' sweeps, ``merged_from`` a JSON list
        describing each input.

    Raises
    ------
    ConfigError
        Fewer than two inputs, two inputs holding the same runs
        (:func:`collector.dataset.identity.check_distinct_runs`), an unknown ``resolve``, a cell measured twice in
        one origin (naming both inputs and the cell), or with ``as_trials``
        inputs whose protocols differ (naming the setting).
    """
    if resolve not in RESOLVE:
        raise ConfigError(f"unknown resolve {resolve!r}; choices: {', '.join(RESOLVE)}")
    if len(datasets) < 2:
        raise ConfigError(f"merge needs at least two datasets, got {len(datasets)}")
    if as_trials and resolve != "error":
        raise ConfigError(f"as_trials keeps every run as a trial; resolve={resolve!r} has nothing to choose")
    names = list(names) if names is not None else [f"input {i}" for i in range(len(datasets))]
    for ds in datasets:
        schema.validate(ds)
    check_distinct_runs(datasets, names)  # the same runs twice are not new trials (nor a conflict with themselves)
    inputs = _as_trials(datasets, names) if as_trials else list(datasets)
    hint = ("pass resolve='first' or 'last' (--resolve) to choose, or as_trials=True (--as-trials) to keep both "
            "as trials")
    try:
        out = combine.combine(inputs, names, resolve=resolve, provenance=True, hint=hint)
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    out.attrs.update(title=title or "merged decode-regimes datasets",
                     command=" ".join(sys.argv) if command is None else command)
    out.attrs.pop("failures", None)
    out.attrs["merged_from"] = json.dumps([
        {"source": name, **{k: str(ds.attrs.get(k, "")) for k in
                            ("title", "created", "platform", "processor", "gpu_name", "isolation", "run_order")}}
        for ds, name in zip(datasets, names)])
    if as_trials:
        out.attrs["history"] = (str(out.attrs.get("history", "")) + "\n" if out.attrs.get("history") else "") + \
            f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}: trials appended from " + \
            ", ".join(names)
    return schema.validate(schema.normalize(out))


def _as_trials(datasets: Sequence[xr.Dataset], names: Sequence[str]) -> list[xr.Dataset]:
    """The inputs with trials, ``order`` and ``worker`` renumbered to follow each other; refuses other origins."""
    first = datasets[0]
    for ds, name in zip(datasets, names):
        if combine.ORIGIN_DIM in ds.dims:
            raise ConfigError(f"cannot append {name} as trials: it combines {ds.sizes[combine.ORIGIN_DIM]} origins "
                              f"(dim {combine.ORIGIN_DIM!r}); trials must come from one host with one protocol")
    base = combine.origin_settings(first)
    base_info = {m: str(w) for m, w in zip(first["model"].values.tolist(), first["weights"].values.tolist())}
    for ds, name in zip(datasets[1:], names[1:]):
        settings = combine.origin_settings(ds)
        for key, value in settings.items():
            if value != base[key]:
                raise ConfigError(f"cannot append {name} as trials of {names[0]}: {key!r} differs ({base[key]!r} vs "
                                  f"{value!r}); trials must come from one host with one protocol (merge without "
                                  "--as-trials keeps them apart as origins)")
        for m, w in zip(ds["model"].values.tolist(), ds["weights"].values.tolist()):
            if m in base_info and base_info[m] != str(w):
                raise ConfigError(f"cannot append {name} as trials of {names[0]}: model {m!r} has weights "
                                  f"{base_info[m]!r} vs {str(w)!r}; trials must measure the same model")
    out: list[xr.Dataset] = []
    trial_offset = order_offset = worker_offset = process_offset = 0
    for ds in datasets:
        shifted = ds.assign_coords(trial=np.asarray(ds["trial"].values, dtype=np.int64) + trial_offset)
        for var, offset in (("order", order_offset), ("worker", worker_offset), ("process", process_offset)):
            values = np.asarray(ds[var].values)
            attrs = ds[var].attrs
            shifted[var] = (ds[var].dims, np.where(values >= 0, values + offset, values).astype(values.dtype), attrs)
        out.append(shifted)
        trial_offset += ds.sizes["trial"]
        order_offset += int(max(np.asarray(ds["order"].values).max(), -1)) + 1
        worker_offset += int(max(np.asarray(ds["worker"].values).max(), -1)) + 1
        process_offset += int(max(np.asarray(ds["process"].values).max(), -1)) + 1
    return out


def merge(paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, resolve: str = "error",
          as_trials: bool = False, command: str | None = None, title: str | None = None) -> Path:
    """Merge netCDF files into ``output`` (atomic); see :func:`merge_datasets`."""
    if resolve not in RESOLVE:
        raise ConfigError(f"unknown resolve {resolve!r}; choices: {', '.join(RESOLVE)}")
    check_output(output, inputs=paths)  # never over one of its inputs or a journal, before loading them
    check_distinct_files(paths)  # the same file twice (path, link or copy), before loading them
    datasets = [schema.load(p) for p in paths]  # each read whole and closed (schema.load closes on every error)
    merged = merge_datasets(datasets, resolve=resolve, names=[str(p) for p in paths], as_trials=as_trials,
                            command=command, title=title)
    return schema.save(merged, output)
