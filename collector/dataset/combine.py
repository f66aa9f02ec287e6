"""Combining datasets from several files, hosts and protocols into one (torch-free).

The one rule behind ``analysis.open_dataset`` on several files and
``python -m collector merge``:

* Every input belongs to an *origin*: one host measuring with one protocol.
  Its key is the global attrs of :data:`ORIGIN_ATTRS` (host and hardware,
  versions, engine, timing, warm-up, isolation, run order, memory readings,
  simulated, what a value is) plus the weights its models used (``pretrained``,
  ``random`` or both: a preset and a hub checkpoint of one name are different
  models). A file that already has an ``origin`` dim (a merged file) brings
  its origins as they are.
* Inputs of one origin are combined along their coordinates (outer join; a
  cell no input measured is ``not_run``). A cell measured by two of them is
  refused, naming both inputs and the cell, unless ``resolve`` says which run
  to keep (or ``collector merge --as-trials`` appends them as new trials).
* Inputs of different origins are kept apart by a leading dim ``origin``
  (labels from the file names, sorted). Each origin's settings become
  coordinates on ``origin`` named like the attrs (``values`` is
  ``value_kind``), plus ``files``; a global attr whose value differs between
  origins holds ``"per origin"``. The model coordinates ``n_params``,
  ``weights`` and ``architecture`` get dims ``(origin, model)`` (``-1`` /
  ``""`` where the origin did not measure the model). So the same cell
  measured on two hosts, with two timings or with pretrained and random
  weights stays two cells, and the difference stays visible.
* An extra dim (such as ``experiment``) that some inputs lack is added to them
  with the single label ``"none"``.
* Coordinates are sorted; their dtypes are the schema's whatever the inputs stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector.dataset import schema
from collector.shared.errors import SchemaError

__all__ = [
    "ORIGIN_DIM",
    "ORIGIN_ATTRS",
    "PER_ORIGIN",
    "MISSING_LABEL",
    "origin_settings",
    "combine",
    "combine_attrs",
    "differences",
    "origin_labels",
]

#: The dim that keeps inputs of different origins (host + protocol) apart.
ORIGIN_DIM = schema.ORIGIN_DIM
#: Global attrs that make an origin, and the name of the coordinate on ``origin`` that holds each.
ORIGIN_ATTRS: dict[str, str] = {
    "host": "host",
    "platform": "platform",
    "machine": "machine",
    "processor": "processor",
    "gpu_name": "gpu_name",
    "os_version": "os_version",
    "python_version": "python_version",
    "torch_version": "torch_version",
    "transformers_version": "transformers_version",
    "package_version": "package_version",
    "engine": "engine",
    "timing": "timing",
    "warmup": "warmup",
    "isolation": "isolation",
    "run_order": "run_order",
    "memory": "memory",
    "simulated": "simulated",
    "values": "value_kind",
    "protocol": "protocol",
}
#: Value of a global attr that differs between origins (the coordinate of the same name holds each value).
PER_ORIGIN = schema.PER_ORIGIN
#: Label of an extra string dim's single value in inputs that lack that dim.
MISSING_LABEL = "none"


@dataclass
class _Unit:
    """One input, or one origin of an input that has an ``origin`` dim."""

    ds: xr.Dataset
    name: str
    index: int
    settings: dict[str, str]
    files: list[str]
    label: str | None = None
    info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        weights = "+".join(sorted({str(v["weights"]) for v in self.info.values()}))
        return (*(self.settings[k] for k in ORIGIN_ATTRS), weights)


def origin_settings(ds: xr.Dataset) -> dict[str, str]:
    """The origin settings of a dataset without an ``origin`` dim: :data:`ORIGIN_ATTRS` from its attrs ("" absent)."""
    return {k: str(ds.attrs.get(k, "")) for k in ORIGIN_ATTRS}


def differences(ds: xr.Dataset) -> dict[str, list[str]]:
    """The origin settings that differ between the origins of ``ds``: coordinate name -> value per origin.

    ``ds`` may also hold its series stacked on one dim (``analysis.open_dataset`` of several files), with
    ``origin`` and the settings as coordinates along it: the origins are then its distinct ``origin`` values,
    in order of appearance.

    Returns
    -------
    dict
        Empty when ``ds`` has no ``origin`` dim (or stacked ``origin`` coordinate) or its origins share every
        setting.
    """
    labels, first = origin_labels(ds)
    if not labels:
        return {}
    dim = ds[ORIGIN_DIM].dims[0]
    out: dict[str, list[str]] = {}
    for coord in ORIGIN_ATTRS.values():
        if coord in ds.coords and ds[coord].dims == (dim,):
            vals = [str(v) for v in np.asarray(ds[coord].values)[first].tolist()]
            if len(set(vals)) > 1:
                out[coord] = vals
    return out


def origin_labels(ds: xr.Dataset) -> tuple[list[str], np.ndarray]:
    """The origins of ``ds`` and, for each, the position of its first entry along the dim that holds them.

    Returns
    -------
    labels : list of str
        The ``origin`` dim's labels, or the distinct values of a 1-D ``origin`` coordinate on another dim (a
        level of stacked series) in order of appearance; empty when ``ds`` has neither.
    first : numpy.ndarray
        Integer positions along that dim, one per label.
    """
    if ORIGIN_DIM not in ds.coords or ds[ORIGIN_DIM].ndim != 1:
        return [], np.zeros(0, dtype=np.intp)
    values = [str(v) for v in np.asarray(ds[ORIGIN_DIM].values).tolist()]
    first = {v: i for i, v in reversed(list(enumerate(values)))}
    labels = list(dict.fromkeys(values))
    return labels, np.asarray([first[v] for v in labels], dtype=np.intp)


def _model_info(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(ds["model"].values.tolist()):
        info[str(m)] = {k: ds[k].values[i].item() for k in schema.MODEL_COORDS}
    return info


def _units(datasets: Sequence[xr.Dataset], names: Sequence[str]) -> list[_Unit]:
    units: list[_Unit] = []
    for i, (ds, name) in enumerate(zip(datasets, names)):
        if ORIGIN_DIM not in ds.dims:
            units.append(_Unit(ds, name, i, origin_settings(ds), [name], info=_model_info(ds)))
            continue
        per_origin = [c for c in ds.coords if ds[c].dims == (ORIGIN_DIM,)]
        for j, label in enumerate(ds[ORIGIN_DIM].values.tolist()):
            sub = ds.isel({ORIGIN_DIM: j}).drop_vars([*per_origin])
            measured = [m for k, m in enumerate(sub["model"].values.tolist()) if str(sub["weights"].values[k])]
            sub = sub.sel(model=measured)
            settings = {k: str(ds[c].values[j]) if c in ds.coords else str(ds.attrs.get(k, ""))
                        for k, c in ORIGIN_ATTRS.items()}
            files = json.loads(str(ds["files"].values[j])) if "files" in ds.coords else [name]
            sub.attrs = {**ds.attrs, **{k: v for k, v in settings.items() if k in ds.attrs or v}}
            units.append(_Unit(sub, name, i, settings, files, label=str(label), info=_model_info(sub)))
    return units


def _fill_of(var: xr.DataArray, name: str) -> Any:
    spec = schema.VARIABLES.get(name)
    if spec is not None:
        return spec.fill
    kind = var.dtype.kind
    if kind == "f":
        return np.nan
    if kind == "b":
        return False
    if kind in "iu":
        return -1
    if kind == "M":
        return np.datetime64("NaT", "ns")
    return ""


def _union(values: Sequence[np.ndarray]) -> np.ndarray:
    out = values[0]
    for v in values[1:]:
        out = np.union1d(out, v)
    return np.unique(out)


def _cell(dims: Sequence[str], coords: dict[str, np.ndarray], pos: Sequence[np.ndarray],
          flat: int, shape: tuple[int, ...]) -> dict[str, Any]:
    idx = np.unravel_index(flat, shape)
    return {d: coords[d][p[i]].item() for d, p, i in zip(dims, pos, idx)}


@dataclass
class _Placed:
    """Where one input's cells go: positions along each status dim, and the cells it contributes."""

    unit: _Unit
    group: int
    pos: list[np.ndarray]
    take: np.ndarray
    inapplicable: np.ndarray


#: Variables larger than this many values per origin are assembled lazily (dask) when the inputs are dask-backed.
_LAZY_SIZE = 2_000_000


def _place(units: list[_Unit], group_of: list[int], n_groups: int, status_dims: list[str],
           coords: dict[str, np.ndarray], resolve: str, hint: str) -> tuple[list[_Placed], np.ndarray]:
    """Which input measured which cell, per origin; refuses a cell measured twice in one origin."""
    shape = tuple(len(coords[d]) for d in status_dims)
    source = np.full((n_groups, *shape), -1, dtype=np.int64)
    not_run, not_applicable = schema.STATUS["not_run"], schema.STATUS["not_applicable"]
    placed: list[_Placed] = []
    for u, g in zip(units, group_of):
        status = np.asarray(u.ds["status"].transpose(*status_dims).values)
        pos = [np.searchsorted(coords[d], np.asarray(u.ds[d].values)) for d in status_dims]
        grid = np.ix_(*pos)
        measured = (status != not_run) & (status != not_applicable)
        taken = source[g][grid] >= 0
        clash = measured & taken
        if clash.any() and resolve == "error":
            flat = int(np.flatnonzero(clash)[0])
            first = units[int(source[g][grid].flat[flat])].name
            cell = _cell(status_dims, coords, pos, flat, status.shape)
            raise SchemaError(f"cannot combine: cell {cell!r} was measured in {first!r} and in {u.name!r} "
                              f"(same origin: one host, one protocol); {hint}")
        take = measured & ~taken if resolve == "first" else measured
        sub = source[g][grid]
        sub[take] = units.index(u)
        source[g][grid] = sub
        placed.append(_Placed(u, g, pos, take, status == not_applicable))
    return placed, source


def _assemble(name: str, tmpl: xr.DataArray, placed: list[_Placed], status_dims: list[str],
              coords: dict[str, np.ndarray], groups: list[int], model_index: int | None) -> np.ndarray:
    """One variable over the given origins (and one model, or all): fill, then each input's cells."""
    trailing = [d for d in tmpl.dims if d not in status_dims]
    sizes = {d: len(coords[d]) if d in coords else tmpl.sizes[d] for d in (*status_dims, *trailing)}
    if model_index is not None:
        sizes["model"] = 1
    fill = _fill_of(tmpl, name)
    out = np.full((len(groups), *(sizes[d] for d in (*status_dims, *trailing))), fill, dtype=tmpl.dtype)
    mi = status_dims.index("model")
    for p in placed:
        if p.group not in groups or name not in p.unit.ds.data_vars:
            continue
        pos, take, inapplicable = list(p.pos), p.take, p.inapplicable
        src = p.unit.ds[name].transpose(*status_dims, *trailing)
        if model_index is not None:
            rows = np.flatnonzero(pos[mi] == model_index)
            if rows.size == 0:
                continue
            pos[mi] = np.zeros(1, dtype=np.intp)
            take, inapplicable = take.take(rows, axis=mi), inapplicable.take(rows, axis=mi)
            src = src.isel(model=rows)
        values = np.asarray(src.values)
        tail = [np.arange(sizes[d]) if d not in coords else np.searchsorted(coords[d], np.asarray(src[d].values))
                for d in trailing]
        grid = np.ix_(*pos, *tail)
        dst = out[groups.index(p.group)]
        sub = dst[grid]
        sub[take] = values[take]
        if name == "status":
            sub[inapplicable & ~take & (sub == schema.STATUS["not_run"])] = schema.STATUS["not_applicable"]
        dst[grid] = sub
    return out


def combine_attrs(attrs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Global attrs of combined inputs: equal values kept, others joined by `` | ``.

    ``sweep`` becomes a JSON list of the distinct sweeps and ``simulated`` is 1
    if any input's is.
    """
    merged: dict[str, Any] = {}
    keys: list[str] = []
    for a in attrs:
        keys.extend(k for k in a if k not in keys)
    for key in keys:
        values = [a[key] for a in attrs if key in a]
        unique = list(dict.fromkeys(str(v) for v in values))
        if len(unique) == 1:
            merged[key] = values[0]
        elif key == "simulated":
            merged[key] = int(max(int(v) for v in values))
        elif key == "sweep":
            sweeps: list[Any] = []
            for u in unique:
                parsed = json.loads(u)
                sweeps.extend(parsed if isinstance(parsed, list) else [parsed])
            merged[key] = json.dumps(sweeps)
        else:
            merged[key] = " | ".join(unique)
    merged["schema_version"] = schema.SCHEMA_VERSION
    return merged


def _labels(groups: list[list[_Unit]]) -> list[str]:
    labels: list[str] = []
    for g in groups:
        if len(g) == 1 and g[0].label is not None:
            base = g[0].label
        else:
            stems = [Path(u.name).stem for u in g]
            base = stems[0] + (f"+{len(stems) - 1}" if len(stems) > 1 else "")
        label, n = base, 2
        while label in labels:
            label, n = f"{base}#{n}", n + 1
        labels.append(label)
    return labels


def _check_models(group: list[_Unit]) -> dict[str, dict[str, Any]]:
    infos: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for u in group:
        for m, info in u.info.items():
            if m in infos and infos[m] != info:
                raise SchemaError(f"cannot combine: model {m!r} is {infos[m]!r} in {owner[m]!r} and {info!r} in "
                                  f"{u.name!r} (same origin); rename one of them")
            infos.setdefault(m, info)
            owner.setdefault(m, u.name)
    return infos


def combine(datasets: Sequence[xr.Dataset], names: Sequence[str], *, resolve: str = "error",
            provenance: bool = False, hint: str = "pass resolve='first' or 'last' to choose",
            lazy: bool | None = None) -> xr.Dataset:
    """Combine schema datasets (several files, hosts, protocols) into one; the rules are this module's docstring.

    Parameters
    ----------
    datasets
        Schema-valid datasets (normalised as :func:`collector.dataset.schema.load` returns them).
    names
        A label per input (a file name) for messages and the ``files`` coordinate.
    resolve
        ``error`` (a cell measured by two inputs of one origin raises), ``first`` or ``last`` (that input's run is kept).
    provenance
        Add variable ``source`` (int8: index of the input that measured the run, -1 none).
    hint
        What the refusal of a doubly measured cell suggests.
    lazy
        Assemble the large variables (``step_time``) with dask, one block per
        origin and model (None: when any input is dask-backed).

    Returns
    -------
    xarray.Dataset
        The combined dataset; with a leading ``origin`` dim and the per-origin
        coordinates when the inputs come from more than one origin.

    Raises
    ------
    SchemaError
        Naming the two inputs and the conflict: a cell measured twice in one
        origin, a model described differently in one origin, an extra dim
        with numeric labels that some inputs lack.
    """
    if len(datasets) != len(names):
        raise SchemaError(f"combine() got {len(datasets)} datasets and {len(names)} names")
    units = _units(datasets, names)
    if lazy is None:
        lazy = any(v.chunks is not None for u in units for v in u.ds.data_vars.values())
    status_dims = [*_align_extra_dims(units), *schema.SWEEP_DIMS]
    coords = _union_coords(units)
    templates = _templates(units, status_dims)
    groups, labels = _origin_groups(units)
    infos = [_check_models(g) for g in groups]
    group_of = [next(i for i, g in enumerate(groups) if any(v is u for v in g)) for u in units]
    placed, source = _place(units, group_of, len(groups), status_dims, coords, resolve, hint)
    layout = _Layout(status_dims=status_dims, coords=coords, groups=groups, labels=labels, placed=placed)
    data_vars = {name: _combined_variable(name, tmpl, layout, lazy) for name, tmpl in templates.items()}
    if provenance:
        data_vars["source"] = _provenance(units, source, layout)
    dim_coords: dict[str, Any] = {}
    for d, values in coords.items():
        if any(d in v.dims for v in data_vars.values()):
            attrs = next(u.ds[d].attrs for u in units if d in u.ds.coords)
            dim_coords[d] = xr.Variable(d, values, attrs)
    out = _with_model_coords(xr.Dataset(data_vars, coords=dim_coords), infos, layout.multi)
    if not layout.multi:
        out.attrs = combine_attrs([u.ds.attrs for u in units])
        return out
    return _with_origins(out, groups, labels)


@dataclass
class _Layout:
    """Where the combined data go: the status dims and their coordinates, the origins, each input's cells."""

    status_dims: list[str]  # the extra dims, then the sweep dims
    coords: dict[str, np.ndarray]  # the combined labels of every dim with a coordinate (origin aside)
    groups: list[list[_Unit]]  # the inputs of each origin, in the order of the labels
    labels: list[str]  # the origin labels, sorted
    placed: list[_Placed]  # each input's cells

    @property
    def multi(self) -> bool:
        """True when the inputs come from more than one origin (the result has an ``origin`` dim)."""
        return len(self.groups) > 1


def _align_extra_dims(units: list[_Unit]) -> list[str]:
    """The dims beyond the sweep dims; each is added with :data:`MISSING_LABEL` to the inputs that lack it.

    Raises
    ------
    SchemaError
        When an input lacks an extra dim whose labels are numeric.
    """
    sweep_like = set(schema.SWEEP_DIMS) | {schema.STEP_DIM, ORIGIN_DIM}
    extra: list[str] = []
    for u in units:
        extra.extend(str(d) for d in u.ds["status"].dims if d not in sweep_like and d not in extra)
    for d in extra:
        have = [u for u in units if d in u.ds.dims]
        lacking = [u for u in units if d not in u.ds.dims]
        if lacking and have[0].ds[d].dtype.kind not in "UO":
            raise SchemaError(f"cannot combine: {have[0].name!r} has dim {d!r} with numeric labels and "
                              f"{lacking[0].name!r} has no such dim; give it one before combining")
    for u in units:  # the extra dims an input lacks, added in one go (in the order of the inputs that have them)
        missing = [d for d in extra if d not in u.ds.dims]
        if missing:
            u.ds = u.ds.expand_dims({d: np.asarray([MISSING_LABEL]) for d in missing})
    return extra


def _union_coords(units: list[_Unit]) -> dict[str, np.ndarray]:
    """The sorted union of the inputs' labels along each dim with a coordinate (``origin`` aside)."""
    coords: dict[str, np.ndarray] = {}
    for u in units:
        for d in map(str, u.ds.dims):
            if d in u.ds.coords and d != ORIGIN_DIM:
                coords[d] = _union([coords[d], np.asarray(u.ds[d].values)]) if d in coords else \
                    np.unique(np.asarray(u.ds[d].values))
    if schema.STEP_DIM in coords:  # the schema wants steps 0..max(budget) wherever step_time is
        coords[schema.STEP_DIM] = np.arange(max(int(coords[schema.STEP_DIM].max()), int(coords["budget"].max())) + 1)
    return coords


def _templates(units: list[_Unit], status_dims: list[str]) -> dict[str, xr.DataArray]:
    """The first input's copy of each variable (its dims, dtype and attrs).

    Raises
    ------
    SchemaError
        When a variable lacks one of ``status_dims``.
    """
    templates: dict[str, xr.DataArray] = {}
    for u in units:
        for name, var in u.ds.data_vars.items():
            if not set(status_dims) <= set(var.dims):
                raise SchemaError(f"cannot combine: variable {name!r} of {u.name!r} has dims {var.dims!r}; only "
                                  f"variables over every sweep dim ({status_dims!r}) can be combined")
            templates.setdefault(str(name), var)
    return templates


def _origin_groups(units: list[_Unit]) -> tuple[list[list[_Unit]], list[str]]:
    """The inputs grouped by origin, and the origin labels; both in the order of the labels."""
    keyed: dict[tuple[str, ...], list[_Unit]] = {}
    for u in units:
        keyed.setdefault(u.key, []).append(u)
    unsorted = list(keyed.values())
    labels0 = _labels(unsorted)
    order = sorted(range(len(unsorted)), key=lambda i: labels0[i])
    return [unsorted[i] for i in order], [labels0[i] for i in order]


def _combined_variable(name: str, tmpl: xr.DataArray, layout: _Layout, lazy: bool) -> xr.Variable:
    """Variable ``name`` over every origin (dims ``origin`` first when several), dask-backed when large and lazy."""
    status_dims, coords, n_groups = layout.status_dims, layout.coords, len(layout.groups)
    mi = status_dims.index("model")
    trailing = [d for d in tmpl.dims if d not in status_dims]
    sizes = [len(coords[d]) if d in coords else tmpl.sizes[d] for d in (*status_dims, *trailing)]
    per_origin = int(np.prod(sizes, dtype=np.int64))
    if lazy and per_origin > _LAZY_SIZE:
        import dask
        import dask.array as dsa

        block = list(sizes)
        block[mi] = 1
        rows = []
        for g in range(n_groups):
            parts = [dsa.from_delayed(dask.delayed(_assemble)(name, tmpl, layout.placed, status_dims, coords, [g], m),
                                      shape=(1, *block), dtype=tmpl.dtype) for m in range(sizes[mi])]
            rows.append(dsa.concatenate(parts, axis=1 + mi))
        arr: Any = dsa.concatenate(rows, axis=0)
    else:
        arr = _assemble(name, tmpl, layout.placed, status_dims, coords, list(range(n_groups)), None)
    dims = [ORIGIN_DIM, *status_dims, *trailing]
    variable = xr.Variable(dims, arr, attrs=tmpl.attrs)
    return variable.transpose(ORIGIN_DIM, *tmpl.dims) if layout.multi else variable[0].transpose(*tmpl.dims)


def _provenance(units: list[_Unit], source: np.ndarray, layout: _Layout) -> xr.Variable:
    """Variable ``source``: the index of the input that measured each run (-1 none)."""
    index = np.asarray([u.index for u in units] + [-1])
    src = index[np.where(source >= 0, source, -1)].astype(np.int8)
    return xr.Variable([ORIGIN_DIM, *layout.status_dims] if layout.multi else layout.status_dims,
                       src if layout.multi else src[0],
                       {"long_name": "index of the merged input that measured the run "
                                     "(attr merged_from); -1 not run", "units": "1"})


def _with_model_coords(out: xr.Dataset, infos: list[dict[str, dict[str, Any]]], multi: bool) -> xr.Dataset:
    """``out`` with the model coordinates: on ``model``, or on ``(origin, model)`` when ``multi``."""
    models = out["model"].values.tolist()
    for k, (kind, meaning) in schema.MODEL_COORDS.items():
        fill: Any = -1 if kind == "int" else ""
        arr2 = np.asarray([[info.get(m, {}).get(k, fill) for m in models] for info in infos],
                          dtype=np.int64 if kind == "int" else str)
        attrs = {"long_name": meaning}
        if multi:
            out = out.assign_coords({k: ((ORIGIN_DIM, "model"), arr2, {"long_name": f"{meaning}, per origin "
                                                                       "(-1 or empty: not measured there)"})})
        else:
            out = out.assign_coords({k: ("model", arr2[0], attrs)})
    return out


def _with_origins(out: xr.Dataset, groups: list[list[_Unit]], labels: list[str]) -> xr.Dataset:
    """``out`` of several origins with the ``origin`` labels, each origin's settings and files, and its attrs."""
    out = out.assign_coords({ORIGIN_DIM: (ORIGIN_DIM, np.asarray(labels, dtype=str), {
        "long_name": "where and how the data were measured: one host with one protocol"})})
    for k, c in ORIGIN_ATTRS.items():
        out = out.assign_coords({c: (ORIGIN_DIM, np.asarray([g[0].settings[k] for g in groups], dtype=str),
                                     {"long_name": f"global attr {k!r} of the origin"})})
    files = [json.dumps([f for u in g for f in u.files]) for g in groups]
    out = out.assign_coords(files=(ORIGIN_DIM, np.asarray(files, dtype=str),
                                   {"long_name": "JSON list of the files the origin's data come from"}))
    attrs = combine_attrs([combine_attrs([u.ds.attrs for u in g]) for g in groups])
    for k, c in ORIGIN_ATTRS.items():
        if len(set(out[c].values.tolist())) > 1 and (k in attrs or k in schema.GLOBAL_ATTRS):
            attrs[k] = PER_ORIGIN
    if any(g[0].settings["simulated"] == "1" for g in groups):
        attrs["simulated"] = 1
    out.attrs = attrs
    return out
