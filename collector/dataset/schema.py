"""Schema v3: the contract between the collector and the analysis.

Pure xarray/numpy (never imports torch). It defines the names, dims, units and
attributes of a decode-regimes dataset, builds an all-``not_run`` dataset for a
sweep (:func:`empty_dataset`), checks a dataset (:func:`validate`), writes it
atomically (:func:`save`) and reads it back, refusing files written by a newer
schema (:func:`load`). ``docs/schema.md`` is rendered from these definitions by
:func:`collector.dataset.schemadoc.render_markdown`, so the reference cannot drift.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector.shared.errors import SchemaError
from collector.shared.factors import BY_NAME, FACTORS, SERIES_DIMS, applicable
from collector.shared.factors import SWEEP_DIMS as _FACTOR_DIMS
from collector.shared.protocol import ENGINES as _ENGINES
from collector.shared.protocol import ISOLATIONS as _ISOLATIONS
from collector.shared.protocol import ORDERS as _ORDERS
from collector.shared.protocol import TIMINGS as _TIMINGS

__all__ = [
    "SCHEMA_VERSION",
    "ORIGIN_DIM",
    "PER_ORIGIN",
    "READABLE_VERSIONS",
    "FORMAT_HISTORY",
    "SWEEP_DIMS",
    "STEP_DIM",
    "STATUS",
    "STATUS_NAMES",
    "DEVICES",
    "DTYPES",
    "WEIGHTS",
    "VARIABLES",
    "MODEL_COORDS",
    "GLOBAL_ATTRS",
    "OPTIONAL_ATTRS",
    "EXTRA_VARIABLES",
    "TIMING_VARS",
    "MEASURED_STATUSES",
    "PHASE_VARS",
    "VarSpec",
    "SchemaError",
    "empty_dataset",
    "base_attrs",
    "validate",
    "check_version",
    "save",
    "load",
    "upgrade",
    "normalize",
    "bool_attrs",
]

SCHEMA_VERSION = "4"
#: Range of an integer a file can store (netCDF int64 attrs and coordinates).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Leading dim of a dataset combining several origins (hosts or protocols); see collector.dataset.combine.
ORIGIN_DIM = "origin"
#: Value of a global attr that differs between the origins of such a dataset (a coordinate on ``origin`` holds each).
PER_ORIGIN = "per origin"
#: The CF conventions version the files follow (global attr ``Conventions``).
CONVENTIONS = "CF-1.11"
#: Schema versions :func:`load` reads (older ones are upgraded on read by :func:`upgrade`).
READABLE_VERSIONS: tuple[str, ...] = ("1", "2", "3", "4")
#: What each version changed (rendered into docs/schema.md).
FORMAT_HISTORY: dict[str, str] = {
    "1": "seven sweep dims (model, device, dtype, cache, prompt_len, budget, trial); status flags 0-4.",
    "2": "sweep dims declared once in collector.shared.factors; new factor dims attn (after dtype) and cache_impl "
         "(after cache); status flag 5 not_applicable (a static cache with the cache off); CF-1.11 conventions "
         "(Conventions, history, host attrs; counts in units '1'; no units on flag variables; cache with "
         "flag_values/flag_meanings; _FillValue instead of prose sentinels); coordinates sorted. Files of "
         "version 1 are upgraded on read (attn='default', cache_impl='dynamic', attr 'upgraded' says so).",
    "3": "where runs execute (issue 21): per-run variables process (the pass of --processes that measured the "
         "run), load_avg, cpu_freq and torch_threads (what the host was doing as the run started); isolation "
         "'run'; sweep attrs processes, cpu_count, code_commit. Files of version 2 (and 1) are upgraded on read: "
         "the new variables hold their fill values (unknown), attr 'upgraded' says so.",
    "4": "status flag 6 truncated (issue 24): the run finished but produced fewer tokens than its budget (a server "
         "that stops at an end-of-sequence token); its times are kept, measured for the tokens it produced "
         "(variable tokens, below budget). Files of version 3 (and older) are upgraded on read: only the flags "
         "of status change.",
}

#: The sweep dims, in this order, on every sweep variable (from :data:`collector.shared.factors.FACTORS`).
SWEEP_DIMS: tuple[str, ...] = _FACTOR_DIMS
#: Extra dim of per-step variables: 0 is the prefill (which yields the first token), k the k-th decode step.
STEP_DIM = "step"

#: Run status codes (CF flag_values / flag_meanings on ``status``).
STATUS: dict[str, int] = {"ok": 0, "error": 1, "oom": 2, "timeout": 3, "not_run": 4, "not_applicable": 5,
                          "truncated": 6}
STATUS_NAMES: dict[int, str] = {v: k for k, v in STATUS.items()}

DEVICES: tuple[str, ...] = tuple(BY_NAME["device"].choices or ())
DTYPES: tuple[str, ...] = tuple(BY_NAME["dtype"].choices or ())
WEIGHTS: tuple[str, ...] = ("pretrained", "random")

_DIM_KINDS = {**{f.name: f.kind for f in FACTORS}, "step": "int"}
_DIM_MEANINGS = {
    **{f.name: f.meaning for f in FACTORS},
    "step": "0 = prefill (yields the first token), k = k-th decode step; NaN past the budget",
}


@dataclass(frozen=True)
class VarSpec:
    """Specification of one data variable."""

    dims: str  # "sweep" or "sweep+step"
    dtype: str  # numpy dtype name; "datetime64[ns]" for started_at
    units: str
    long_name: str
    fill: Any  # value of a cell that was not measured


VARIABLES: dict[str, VarSpec] = {
    "latency": VarSpec("sweep", "float64", "s", "whole generation, device-synchronised at both ends", np.nan),
    "prefill_time": VarSpec("sweep", "float64", "s", "prompt forward + first token (time to first token)", np.nan),
    "decode_time": VarSpec("sweep", "float64", "s", "latency - prefill_time", np.nan),
    "step_time": VarSpec("sweep+step", "float32", "s", "per-step time (step 0 is the prefill)", np.nan),
    "tokens": VarSpec("sweep", "int32", "1", "new tokens produced (equals budget when status is ok, below it when "
                      "truncated)", 0),
    "mem_device_peak": VarSpec(
        "sweep",
        "float64",
        "bytes",
        "peak allocator memory in the run (cuda: max_memory_allocated; mps: sampled current_allocated_memory; cpu: NaN)",
        np.nan,
    ),
    "mem_device_driver": VarSpec(
        "sweep", "float64", "bytes", "mps driver_allocated_memory / cuda memory_reserved, end of run", np.nan
    ),
    "mem_rss_peak": VarSpec("sweep", "float64", "bytes", "process resident set, peak in the run", np.nan),
    "mem_sys_available_min": VarSpec(
        "sweep", "float64", "bytes", "lowest system available memory in the run", np.nan
    ),
    "swap_used": VarSpec("sweep", "float64", "bytes", "system swap in use at end of run", np.nan),
    "started_at": VarSpec("sweep", "datetime64[ns]", "-", "start of the run (UTC)", np.datetime64("NaT", "ns")),
    "order": VarSpec("sweep", "int32", "1", "position in the execution sequence (_FillValue -1: not run)", -1),
    "worker": VarSpec("sweep", "int32", "1", "which process measured the run (_FillValue -1: not run)", -1),
    "process": VarSpec("sweep", "int32", "1", "the pass (process replicate of --processes) that measured the run: "
                       "trial t in pass t % processes, each pass in its own fresh processes (_FillValue -1: not "
                       "run or unknown)", -1),
    "load_avg": VarSpec("sweep", "float64", "1", "1-minute system load average as the run started (NaN: unknown)",
                        np.nan),
    "cpu_freq": VarSpec("sweep", "float64", "MHz", "current CPU frequency as the run started (psutil; NaN: not "
                        "readable)", np.nan),
    "torch_threads": VarSpec("sweep", "int32", "1", "torch.get_num_threads() of the measuring process (_FillValue "
                             "-1: unknown, or no torch, e.g. device sim)", -1),
    "status": VarSpec("sweep", "int8", "", "run status", STATUS["not_run"]),
}

#: Integer variables whose not-measured value is a sentinel, stored as CF ``_FillValue``.
_FILLED: tuple[str, ...] = ("order", "worker", "process", "torch_threads")

#: Statuses whose runs carry measured times: ``ok`` (exactly ``budget`` tokens) and ``truncated`` (fewer: the times
#: are those of the tokens produced, not comparable with the budget's ok runs).
MEASURED_STATUSES: tuple[int, ...] = (STATUS["ok"], STATUS["truncated"])
#: Variables that must be NaN wherever a run has no measured times (status neither ok nor truncated).
TIMING_VARS: tuple[str, ...] = ("latency", "prefill_time", "decode_time", "step_time")
#: Phase variables that may be NaN in an ok run when global attr ``phase_split`` says where the split was not
#: measured (published means, imported summaries); both or neither, and latency never.
PHASE_VARS: tuple[str, ...] = ("prefill_time", "decode_time")
#: Variables that may be absent (step_time only when per-step timing is on).
OPTIONAL_VARS: tuple[str, ...] = ("step_time",)

#: Coordinates on the model dim: name -> (kind, meaning).
MODEL_COORDS: dict[str, tuple[str, str]] = {
    "n_params": ("int", "number of parameters"),
    "weights": ("str", "pretrained | random"),
    "architecture": ("str", "transformers architecture class, e.g. GPT2LMHeadModel"),
}

#: Required global attributes and what they hold.
GLOBAL_ATTRS: dict[str, str] = {
    "schema_version": f'schema version of the file ("{SCHEMA_VERSION}")',
    "title": "human title of the dataset",
    "created": "ISO 8601 UTC time the file was written",
    "package_version": "decode-regimes version that wrote it",
    "platform": "platform.platform()",
    "machine": "platform.machine()",
    "processor": "CPU name (chip name on macOS)",
    "gpu_name": "GPU name (cuda) or chip (mps); empty when none",
    "os_version": "operating system release",
    "python_version": "Python version",
    "torch_version": "torch version (empty when torch was not used, e.g. sim)",
    "transformers_version": "transformers version (empty when not used)",
    "engine": "loop | generate | http",
    "timing": "step | events | ends | stream",
    "warmup": "unrecorded warm-up runs per cell",
    "isolation": "none | model | cell | run",
    "run_order": "random | sequential",
    "seed": "seed of prompts and run order",
    "sweep": "the full sweep spec as JSON",
    "command": "command line that produced the data",
    "simulated": "1 when the data are simulated (device sim, analysis.synthetic), else 0",
    "Conventions": f"CF conventions followed ({CONVENTIONS!r})",
    "history": "one line per change: ISO 8601 time and what was done (created by ..., upgraded ...)",
    "host": "the machine that measured the data: DECODE_REGIMES_HOST where set, else its network name (empty "
            "when unknown, e.g. upgraded v1 files)",
}

#: Global attributes some files carry besides :data:`GLOBAL_ATTRS`: name -> (who writes it, what it holds).
OPTIONAL_ATTRS: dict[str, tuple[str, str]] = {
    "memory": ("collector sweeps", "memory readings: off | endpoints | sampled"),
    "timeout": ("collector sweeps", "per-run time limit in seconds, or 'none'"),
    "refine": ("collector sweeps", "refinement resolution in tokens (0: no refinement)"),
    "processes": ("collector sweeps", "passes (process replicates) the trials were spread over (variable process)"),
    "cpu_count": ("collector sweeps", "logical CPUs of the host (os.cpu_count()) and, after a slash, those this "
                  "process may use (its affinity), e.g. '8/8'"),
    "code_commit": ("collector sweeps", "git commit of the working directory the sweep ran in ('-dirty' when "
                    "tracked files were changed; empty: not a git repository)"),
    "failures": ("collector sweeps, import-study", "JSON list of the failed runs (at most 200): {'run': {dim: value}, "
                 "'status', 'error'}"),
    "sim_model": ("device sim, analysis.synthetic", "the simulated latency model as JSON (regimes planted, costs, noise)"),
    "merged_from": ("collector merge", "JSON list, one object per input: 'source' (file), title, created, platform, "
                    "processor, gpu_name, isolation, run_order"),
    "upgraded": ("files of an older schema, on read", "what the upgrade assumed (e.g. attn='default', "
                 "cache_impl='dynamic' for version 1)"),
    "source": ("import-study, published tables", "how the values were produced (CF 'source'), e.g. the files imported"),
    "references": ("published tables", "citation of the publication the values come from (CF 'references')"),
    "values": ("import-study, published tables", "what a value is when it is not one run: a mean over runs"),
    "runs_per_value": ("published tables", "measured runs behind each published mean"),
    "phase_split": ("import-study, published tables", "where prefill_time / decode_time are missing in ok runs and "
                    "why; its presence lets them be NaN there"),
    "protocol": ("import-study, engine http", "the HTTP protocol: the study harness's (HTTP round trip, a fresh server per "
                 "configuration), or engine http's (the server software and version, the endpoint's host, API, streamed, a "
                 "fresh server per configuration or not)"),
    "latency_measure": ("import-study", "which harness columns latency comes from (latency_source)"),
    "prompt_lens": ("import-study", "JSON: prompt name -> length in tokens"),
    "source_encodings": ("import-study", "JSON: file name -> the text encoding it was read in (collector.dataset.foreign)"),
    "timing_note": ("import-study", "why timing is 'ends' (whole-generation times only) and where the harness's own "
                    "per-step summaries are"),
    "endpoint": ("engine http", "scheme, host and port of the OpenAI-compatible endpoint (never a path, query or key)"),
    "api": ("engine http", "completions (/v1/completions) or chat (/v1/chat/completions)"),
    "streaming": ("engine http", "1: every request was streamed, the client timing each chunk"),
    "server_software": ("engine http", "the server as it names itself (/v1/models owned_by, version routes, Server "
                        "header)"),
    "server_version": ("engine http", "the server's version where a route tells it, else empty"),
    "server_header": ("engine http", "the Server header of the server's answers"),
    "server_cmd": ("engine http", "the --server-cmd template that started a fresh server per configuration (empty: "
                   "none)"),
    "prompt_tokenizer": ("engine http", "how prompts were sized: the server's /tokenize, or approximate (words)"),
    "not_controlled": ("engine http", "the factors the client cannot control (their coordinates are placeholders)"),
    "stated_spread": ("published tables", "spread the publication states in words (no per-cell value)"),
    "experiments": ("published tables", "what each value of the extra dim 'experiment' is"),
    "overlaps": ("published tables", "JSON list of cells measured by several experiments, with every value"),
    "memory_source": ("published tables", "where mem_device_peak comes from"),
    "unpublished": ("published tables", "variables the publication does not give (left at their fill values)"),
    "hosts": ("published tables", "which machine measured which cells"),
}

#: Data variables some files carry besides :data:`VARIABLES` (a trailing ``*`` is a name prefix):
#: name -> (who writes it, what it holds).
EXTRA_VARIABLES: dict[str, tuple[str, str]] = {
    "truth_anomalous": ("device sim, analysis.synthetic", "bool: the cell lies inside a planted regime"),
    "truth_run_state": ("analysis.synthetic", "bool: the run was drawn in the slow run state"),
    "source": ("collector merge", "int8: index of the input (attr merged_from) that measured the run, -1 none"),
    "n_runs": ("import-study", "int32: timed runs summarised in the cell (-1 unknown)"),
    "success_rate": ("import-study", "percent of timed requests that succeeded"),
    "latency_source": ("import-study", "int8 flags: latency is -1 none, 0 server prefill + decode, 1 the client's "
                       "round trip"),
    "request_latency": ("import-study", "s, dims stat + sweep: client round-trip mean, p50, p95, std, min, max"),
    "harness_*": ("import-study", "every other numeric column of the harness, as written"),
    "server_start_time": ("engine http", "s: seconds the run's --server-cmd server took to answer GET /v1/models "
                          "(NaN: none started)"),
    "server_prompt_tokens": ("engine http", "int32: the server's usage.prompt_tokens (-1: not sent)"),
    "server_completion_tokens": ("engine http", "int32: the server's usage.completion_tokens (-1: not sent)"),
    "server_prefill_time": ("engine http", "s: the server's own prompt time (llama.cpp timings; NaN: not sent)"),
    "server_decode_time": ("engine http", "s: the server's own generation time (llama.cpp timings; NaN: not sent)"),
    "study_label": ("published tables", "int8 flags: the publication's own label, -1 none, 0 normal, 1 anomalous"),
}



# --------------------------------------------------------------------------- construction


def base_attrs(**overrides: Any) -> dict[str, Any]:
    """Global attributes with the torch-free environment filled in.

    Values that need torch or the sweep (``torch_version``, ``engine``, ...)
    get neutral defaults; pass them as keyword arguments to override.
    """
    from collector import __version__

    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "title": "decode-regimes latency sweep",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "gpu_name": "",
        "os_version": platform.release(),
        "python_version": platform.python_version(),
        "torch_version": "",
        "transformers_version": "",
        "engine": "loop",
        "timing": "ends",
        "warmup": 1,
        "isolation": "none",
        "run_order": "random",
        "seed": 0,
        "sweep": "{}",
        "command": " ".join(sys.argv),
        "simulated": 0,
        "Conventions": CONVENTIONS,
        "host": platform.node(),
    }
    attrs.update(overrides)
    if "history" not in attrs:
        attrs["history"] = f"{attrs['created']}: created by {attrs['command'] or 'decode-regimes'}"
    return attrs


def empty_dataset(
    *,
    trials: int,
    step_time: bool = True,
    model_info: Mapping[str, Mapping[str, Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    **values: Sequence[Any],
) -> xr.Dataset:
    """An all-``not_run`` schema dataset for a sweep.

    Parameters
    ----------
    trials
        Number of replicates T (trial coordinate 0..T-1).
    step_time
        Include the per-step variable ``step_time`` (step 0..max(budget)).
    model_info
        Per model name: ``n_params``, ``weights``, ``architecture``
        (defaults: -1, "random", "").
    attrs
        Global attributes; missing ones come from :func:`base_attrs`.
    **values
        Coordinate values of each factor but the trial, by its setting name
        (``models``, ``devices``, ``dtypes``, ``attns``, ``caches``,
        ``cache_impls``, ``prompt_lens``, ``budgets``: :data:`collector.shared.factors.FACTORS`).
        ``models``, ``devices``, ``prompt_lens`` and ``budgets`` are required;
        a factor not given gets its default values (``attns``: ``("default",)``...).

    Returns
    -------
    xarray.Dataset
        Every variable of :data:`VARIABLES` (``step_time`` only when asked)
        filled with its not-measured value, ``status`` = not_run, or
        not_applicable in cells no run can have (:func:`collector.shared.factors.applicable`).
    """
    if trials < 1:
        raise SchemaError(f"trials must be >= 1, got {trials!r}")
    model_info = model_info or {}
    settings = {f.setting: f for f in FACTORS if f.role != "trial"}
    unknown = sorted(set(values) - set(settings))
    if unknown:
        raise SchemaError(f"unknown sweep values {unknown[0]!r}; expected settings {sorted(settings)!r}")
    numpy_kind = {"str": str, "bool": bool, "int": np.int64}
    coords: dict[str, Any] = {}
    for setting, f in settings.items():
        if setting in values:
            given = list(values[setting])
        elif f.default is not None and f.name not in ("prompt_len", "budget"):
            given = list(f.default)
        else:
            raise SchemaError(f"empty_dataset() needs {setting}= (values of dim {f.name!r})")
        coords[f.name] = _coord_array(given, f.name, numpy_kind[f.kind])
    coords["trial"] = np.arange(trials, dtype=np.int64)
    for name, vals in coords.items():
        if vals.size == 0:
            raise SchemaError(f"dim {name!r} needs at least one value, got an empty list")
    shape = tuple(coords[d].size for d in SWEEP_DIMS)
    data_vars: dict[str, Any] = {}
    for name, spec in VARIABLES.items():
        if spec.dims == "sweep+step":
            if not step_time:
                continue
            n_step = int(coords["budget"].max()) + 1
            data = np.full(shape + (n_step,), spec.fill, dtype=spec.dtype)
            data_vars[name] = ((*SWEEP_DIMS, STEP_DIM), data, _var_attrs(name))
        else:
            data = np.full(shape, spec.fill, dtype=spec.dtype)
            data_vars[name] = (SWEEP_DIMS, data, _var_attrs(name))
    data_vars["status"][1][...] = np.where(_applicable_mask(coords), STATUS["not_run"], STATUS["not_applicable"])
    if step_time:
        coords[STEP_DIM] = np.arange(int(coords["budget"].max()) + 1, dtype=np.int64)
    names = list(coords["model"])
    coords["n_params"] = ("model", np.array([int(model_info.get(m, {}).get("n_params", -1)) for m in names], np.int64))
    coords["weights"] = ("model", np.array([str(model_info.get(m, {}).get("weights", "random")) for m in names], str))
    coords["architecture"] = (
        "model",
        np.array([str(model_info.get(m, {}).get("architecture", "")) for m in names], str),
    )
    all_attrs = base_attrs(**dict(attrs or {}))
    ds = xr.Dataset(data_vars, coords=coords, attrs=all_attrs)
    for name, (_, meaning) in MODEL_COORDS.items():
        ds[name].attrs["long_name"] = meaning
    for dim in (*SWEEP_DIMS, STEP_DIM):
        if dim in ds.coords:
            ds[dim].attrs.update(_coord_attrs(dim))
    return ds


def _coord_array(given: Sequence[Any], name: str, kind: Any) -> np.ndarray:
    """Coordinate values as an array of ``kind``; an integer outside int64 is a ``SchemaError``, not an overflow."""
    if kind is np.int64:
        for v in given:
            if isinstance(v, (int, np.integer)) and not INT64_MIN <= int(v) <= INT64_MAX:
                raise SchemaError(f"dim {name!r} value {_short(v)} does not fit a 64-bit integer")
    try:
        return np.asarray(given, dtype=kind)
    except (OverflowError, ValueError, TypeError) as exc:
        raise SchemaError(f"dim {name!r} values {_short(list(given))} are not {kind.__name__} ({exc})") from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def bool_attrs(long_name: str) -> dict[str, Any]:
    """CF attrs of a boolean variable (stored as int8 0/1): long_name and flag_values/flag_meanings, no units."""
    return {"long_name": long_name, "flag_values": np.array([0, 1], dtype=np.int8), "flag_meanings": "false true"}


def _coord_attrs(dim: str) -> dict[str, Any]:
    """CF attrs of a sweep dim's coordinate: long_name; units for counts; flag attrs for booleans."""
    attrs: dict[str, Any] = {"long_name": _DIM_MEANINGS[dim]}
    f = BY_NAME.get(dim)
    if dim == STEP_DIM or (f is not None and f.units):
        attrs["units"] = "1"
    if f is not None and f.kind == "bool":
        attrs["flag_values"] = np.array([0, 1], dtype=np.int8)
        attrs["flag_meanings"] = "off on"
    return attrs


def _applicable_mask(coords: Mapping[str, Any]) -> np.ndarray:
    """Bool over the sweep dims: True where a run can exist (:func:`collector.shared.factors.applicable`)."""
    shape = tuple(len(coords[d]) for d in SWEEP_DIMS)
    mask = np.ones(shape, dtype=bool)
    series_shape = tuple(len(coords[d]) for d in SERIES_DIMS)
    for idx in np.ndindex(*series_shape):
        cell = {d: np.asarray(coords[d])[i].item() for d, i in zip(SERIES_DIMS, idx)}
        if not applicable(cell):
            where = tuple(idx[SERIES_DIMS.index(d)] if d in SERIES_DIMS else slice(None) for d in SWEEP_DIMS)
            mask[where] = False
    return mask


def _var_attrs(name: str) -> dict[str, Any]:
    spec = VARIABLES[name]
    attrs: dict[str, Any] = {"units": spec.units, "long_name": spec.long_name}
    if not spec.units:
        attrs.pop("units")  # a flag variable has no units (CF)
    if name == "status":
        attrs["flag_values"] = np.array(sorted(STATUS.values()), dtype=np.int8)
        attrs["flag_meanings"] = " ".join(STATUS_NAMES[v] for v in sorted(STATUS_NAMES))
    if spec.units == "-" and name == "started_at":
        attrs.pop("units")  # time units are set by the netCDF time encoding
    return attrs


# --------------------------------------------------------------------------- validation


def check_version(ds: xr.Dataset, source: str = "dataset") -> None:
    """Refuse a dataset with no, or a newer, ``schema_version``."""
    version = ds.attrs.get("schema_version")
    if version is None:
        raise SchemaError(f"{source}: global attr 'schema_version' is missing; expected {SCHEMA_VERSION!r}")
    try:
        number = int(str(version))
    except ValueError:
        raise SchemaError(
            f"{source}: global attr 'schema_version' is {version!r}; expected an integer string such as {SCHEMA_VERSION!r}"
        ) from None
    if number > int(SCHEMA_VERSION):
        raise SchemaError(
            f"{source} was written by schema version {version!r}, newer than the {SCHEMA_VERSION!r} this "
            "package reads; upgrade decode-regimes to read it"
        )
    if number < 1:
        raise SchemaError(f"{source}: schema_version {version!r} is not a known version; expected {SCHEMA_VERSION!r}")


def validate(ds: xr.Dataset, *, check_values: bool = True) -> xr.Dataset:
    """Check that ``ds`` follows the schema (:data:`SCHEMA_VERSION`); return it unchanged.

    Dims other than the sweep dims may precede them (extra series dims, e.g.
    after merging hosts); the sweep dims themselves must appear in order.

    Parameters
    ----------
    ds
        Dataset to check.
    check_values
        Also check data values (status codes, NaN timing where status != ok,
        tokens == budget where ok, latency = prefill + decode). This loads
        the values; pass False for a quick structural check of a lazy dataset.

    Raises
    ------
    SchemaError
        Naming the offending variable, dim or attr and what was expected.
    """
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"expected an xarray.Dataset, got {type(ds).__name__!r}")
    simulated = _check_global_attrs(ds)
    _check_sweep_dims(ds)
    _check_factor_values(ds, simulated)
    _check_model_coords(ds)
    _check_variables(ds)
    _check_status_flags(ds)
    if check_values:
        _check_values(ds)
    return ds


def _check_global_attrs(ds: xr.Dataset) -> int:
    """Check the version, the required and the storable global attrs; return attr ``simulated`` (0 or 1)."""
    check_version(ds)
    if str(ds.attrs["schema_version"]) != SCHEMA_VERSION:
        raise SchemaError(f"dataset has schema_version {ds.attrs['schema_version']!r}; expected {SCHEMA_VERSION!r} "
                          "(collector.dataset.schema.upgrade(ds) upgrades an older one; load() does it on read)")
    for attr in GLOBAL_ATTRS:
        if attr not in ds.attrs:
            raise SchemaError(f"global attr {attr!r} is missing ({GLOBAL_ATTRS[attr]})")
    _check_protocol_attrs(ds)
    _check_storable(ds)
    simulated = _as_int(ds.attrs["simulated"], "simulated")
    if simulated not in (0, 1):
        raise SchemaError(f"global attr 'simulated' is {ds.attrs['simulated']!r}; expected 0 or 1")
    try:
        json.loads(str(ds.attrs["sweep"]))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"global attr 'sweep' is not valid JSON ({exc.msg}): {str(ds.attrs['sweep'])[:80]!r}") from None
    return simulated


def _check_protocol_attrs(ds: xr.Dataset) -> None:
    """``engine``, ``timing``, ``isolation`` and ``run_order`` hold allowed values (per origin where combined)."""
    for attr, choices in (("engine", _ENGINES), ("timing", _TIMINGS), ("isolation", _ISOLATIONS), ("run_order", _ORDERS)):
        per_origin = ORIGIN_DIM in ds.dims and attr in ds.coords and ds[attr].dims == (ORIGIN_DIM,)
        if per_origin:  # combined origins: the coordinate holds each origin's value (collector.dataset.combine)
            bad = sorted(set(map(str, ds[attr].values)) - set(choices))
            if bad:
                raise SchemaError(f"coordinate {attr!r} has {bad[0]!r}; expected values in {list(choices)}")
        if str(ds.attrs[attr]) not in choices and not (per_origin and str(ds.attrs[attr]) == PER_ORIGIN):
            raise SchemaError(f"global attr {attr!r} is {ds.attrs[attr]!r}; expected one of {list(choices)}")


def _check_sweep_dims(ds: xr.Dataset) -> None:
    """Every sweep dim is present, with a non-empty coordinate of its kind and no duplicate value."""
    for dim in SWEEP_DIMS:
        if dim not in ds.dims:
            raise SchemaError(f"dim {dim!r} is missing; schema v{SCHEMA_VERSION} needs all of {list(SWEEP_DIMS)}")
        if dim not in ds.coords:
            raise SchemaError(f"dim {dim!r} has no coordinate")
        if ds.sizes[dim] == 0:
            raise SchemaError(f"dim {dim!r} is empty (length 0); a dataset holds at least one value of every sweep dim")
        _check_coord_kind(ds, dim)
        values = ds[dim].values
        if len(np.unique(values)) != values.size:
            raise SchemaError(f"coordinate {dim!r} has duplicate values: {values.tolist()!r}")


def _check_factor_values(ds: xr.Dataset, simulated: int) -> None:
    """The factor coordinates hold declared choices / values >= their minimum; device ``sim`` only if simulated."""
    for f in FACTORS:
        if f.kind == "str" and f.choices is not None:
            bad = sorted(set(map(str, ds[f.name].values)) - set(f.choices))
            if bad:
                raise SchemaError(f"coordinate {f.name!r} has {bad[0]!r}; expected values in {list(f.choices)}")
        if f.kind == "int" and f.minimum is not None and f.role != "trial" and int(ds[f.name].min()) < f.minimum:
            raise SchemaError(f"coordinate {f.name!r} has {int(ds[f.name].min())!r}; {f.setting} must be "
                              f">= {f.minimum}")
    if "sim" in set(map(str, ds["device"].values)) and simulated != 1:
        raise SchemaError("device 'sim' is present but global attr 'simulated' is 0; simulated data must say so (1)")


def _check_model_coords(ds: xr.Dataset) -> None:
    """The coordinates on ``model`` (per origin where combined) are present, of their kind, weights known."""
    for name, (kind, _) in MODEL_COORDS.items():
        if name not in ds.coords:
            raise SchemaError(f"coordinate {name!r} on dim 'model' is missing")
        if ds[name].dims != ("model",) and not (ORIGIN_DIM in ds.dims and ds[name].dims == (ORIGIN_DIM, "model")):
            raise SchemaError(f"coordinate {name!r} has dims {ds[name].dims!r}; expected ('model',) "
                              f"(or ({ORIGIN_DIM!r}, 'model') in a dataset combining several origins)")
        _check_coord_kind(ds, name, kind)
    # per origin, a model that origin did not measure has weights ""
    bad = sorted(set(map(str, ds["weights"].values.ravel())) - set(WEIGHTS) - ({""} if ds["weights"].ndim == 2 else set()))
    if bad:
        raise SchemaError(f"coordinate 'weights' has {bad[0]!r}; expected values in {list(WEIGHTS)}")


def _check_variables(ds: xr.Dataset) -> None:
    """Every required variable is present with its dims (extra dims first), attrs and dtype; ``step`` fits budget."""
    for name, spec in VARIABLES.items():
        if name not in ds.data_vars:
            if name in OPTIONAL_VARS:
                continue
            raise SchemaError(f"variable {name!r} is missing ({spec.long_name})")
        var = ds[name]
        expected = SWEEP_DIMS + ((STEP_DIM,) if spec.dims == "sweep+step" else ())
        if tuple(var.dims[-len(expected):]) != expected or set(var.dims[: -len(expected)]) & set(expected):
            raise SchemaError(f"variable {name!r} has dims {var.dims!r}; expected {expected!r} (extra dims first)")
        if "long_name" not in var.attrs:
            raise SchemaError(f"variable {name!r} has no 'long_name' attr")
        if name != "started_at" and var.attrs.get("units", "") != spec.units:
            raise SchemaError(f"variable {name!r} has units {var.attrs.get('units')!r}; expected {spec.units!r}")
        _check_var_dtype(var, spec)
    if "step_time" in ds.data_vars:
        if STEP_DIM not in ds.coords:
            raise SchemaError(f"dim {STEP_DIM!r} has no coordinate")
        if ds.sizes[STEP_DIM] < int(ds["budget"].max()) + 1:
            raise SchemaError(
                f"dim {STEP_DIM!r} has length {ds.sizes[STEP_DIM]}; expected max(budget) + 1 = {int(ds['budget'].max()) + 1}"
            )


def _check_status_flags(ds: xr.Dataset) -> None:
    """Variable ``status`` carries the CF flag attrs of :data:`STATUS`."""
    status = ds["status"]
    meanings = str(status.attrs.get("flag_meanings", "")).split()
    expected_meanings = [STATUS_NAMES[v] for v in sorted(STATUS_NAMES)]
    if meanings != expected_meanings:
        raise SchemaError(f"variable 'status' has flag_meanings {meanings!r}; expected {expected_meanings!r}")
    flags = np.asarray(status.attrs.get("flag_values", [])).tolist()
    if flags != sorted(STATUS.values()):
        raise SchemaError(f"variable 'status' has flag_values {flags!r}; expected {sorted(STATUS.values())!r}")


def _check_storable(ds: xr.Dataset) -> None:
    """What every writer must hold to: integer attrs within int64, no NUL in a text (netCDF ends a string there).

    A Python integer past int64 made the netCDF library raise ``TypeError:
    illegal data type for attribute``; a NUL in a model name wrote a file
    whose names were cut at the NUL (``duplicate values ['gpt2', 'gpt2']``
    on reading it back).
    """
    for key, value in ds.attrs.items():
        items = value.ravel().tolist() if isinstance(value, np.ndarray) else [value]
        for v in items:
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and not INT64_MIN <= int(v) <= INT64_MAX:
                raise SchemaError(f"global attr {key!r} is {_short(v)}; an integer attr must fit 64 bits "
                                  f"({INT64_MIN}..{INT64_MAX})")
            if isinstance(v, str) and "\x00" in v:
                raise SchemaError(f"global attr {key!r} holds a NUL character ({_short(v)}); a file cannot store it")
    for name in (*ds.coords, *ds.data_vars):
        var = ds[name]
        if var.dtype.kind in "UO" and var.chunks is None:  # a lazy (dask) variable's text is not read here
            for v in np.asarray(var.values).ravel().tolist():
                if isinstance(v, str) and "\x00" in v:
                    raise SchemaError(f"{'coordinate' if name in ds.coords else 'variable'} {str(name)!r} holds "
                                      f"{_short(v)} with a NUL character; a file cannot store it (names are cut "
                                      "there: two names would become one)")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SchemaError(f"global attr {name!r} is {value!r}; expected an integer") from None


def _check_coord_kind(ds: xr.Dataset, name: str, kind: str | None = None) -> None:
    kind = kind or _DIM_KINDS[name]
    dt = ds[name].dtype
    ok = {
        "str": dt.kind in "UO",
        "bool": dt.kind == "b",
        "int": dt.kind in "iu",
    }[kind]
    if ok and dt.kind == "O":
        ok = all(isinstance(v, str) for v in ds[name].values.ravel().tolist())
    if not ok:
        raise SchemaError(f"coordinate {name!r} has dtype {str(dt)!r}; expected {kind}")


def _check_var_dtype(var: xr.DataArray, spec: VarSpec) -> None:
    dt = var.dtype
    if spec.dtype.startswith("datetime64"):
        ok = dt.kind == "M"
    elif spec.dtype.startswith("float"):
        ok = dt.kind == "f"
    else:
        ok = dt.kind in "iu"
    if not ok:
        raise SchemaError(f"variable {var.name!r} has dtype {str(dt)!r}; expected {spec.dtype}")


def _check_values(ds: xr.Dataset) -> None:
    status = np.asarray(ds["status"].values)
    bad = sorted(set(np.unique(status).tolist()) - set(STATUS.values()))
    if bad:
        raise SchemaError(f"variable 'status' has value {bad[0]!r}; expected codes {STATUS!r}")
    ok = status == STATUS["ok"]
    truncated = status == STATUS["truncated"]
    timed = ok | truncated
    for name in TIMING_VARS:
        if name not in ds.data_vars:
            continue
        values = np.asarray(ds[name].values)
        mask = ~timed if values.ndim == timed.ndim else ~timed[..., None]
        if np.any(np.isfinite(values) & mask):
            raise SchemaError(f"variable {name!r} has values where status is neither ok nor truncated; timing must "
                              "be NaN there")
        if name != "step_time" and np.any(np.isinf(values[ok])):
            inf = float(values[ok][np.isinf(values[ok])][0])
            raise SchemaError(f"variable {name!r} is {inf!r} where status == ok; a measured time must be finite")
        if name != "step_time" and np.any(np.isnan(values[ok])):
            if name not in PHASE_VARS or "phase_split" not in ds.attrs:
                raise SchemaError(f"variable {name!r} is NaN where status == ok")
        if name != "step_time" and np.any(values[ok] < 0):
            raise SchemaError(f"variable {name!r} has negative times")
    if truncated.any():
        budget = np.broadcast_to(ds["budget"].values.reshape((1,) * (ds["tokens"].ndim - 2) + (-1, 1)), ok.shape)
        tokens = np.asarray(ds["tokens"].values)
        if np.any(tokens[truncated] >= budget[truncated]):
            first = int(np.flatnonzero(tokens[truncated] >= budget[truncated])[0])
            raise SchemaError(
                f"variable 'tokens' is {int(tokens[truncated][first])!r} where status == truncated and budget is "
                f"{int(budget[truncated][first])!r}; a truncated run produced fewer tokens than its budget"
            )
    if ok.any():
        budget = np.broadcast_to(ds["budget"].values.reshape((1,) * (ds["tokens"].ndim - 2) + (-1, 1)), ok.shape)
        tokens = np.asarray(ds["tokens"].values)
        if np.any(tokens[ok] != budget[ok]):
            first = int(np.flatnonzero(tokens[ok] != budget[ok])[0])
            raise SchemaError(
                f"variable 'tokens' is {int(tokens[ok][first])!r} where status == ok and budget is "
                f"{int(budget[ok][first])!r}; ok runs must produce exactly budget tokens"
            )
        lat = np.asarray(ds["latency"].values)[ok]
        pre = np.asarray(ds["prefill_time"].values)[ok]
        dec = np.asarray(ds["decode_time"].values)[ok]
        if np.any(np.isfinite(pre) != np.isfinite(dec)):
            raise SchemaError("variables 'prefill_time' and 'decode_time' must be both measured or both NaN in a run")
        split = np.isfinite(pre)
        if not np.allclose(lat[split], pre[split] + dec[split], rtol=1e-6, atol=1e-9):
            raise SchemaError("variable 'decode_time' != latency - prefill_time where status == ok")


# --------------------------------------------------------------------------- files


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for key, var in ds.data_vars.items():
        name = str(key)
        if var.dtype.kind in "fiub":
            enc[name] = {"zlib": True, "complevel": 4}
            if name == "step_time":
                enc[name]["dtype"] = "float32"
        if name == "started_at":
            enc[name] = {"units": "microseconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64",
                         "_FillValue": np.iinfo(np.int64).min}
        spec = VARIABLES.get(name)
        if spec is not None and spec.dtype.startswith("int") and spec.fill is not None and name in _FILLED:
            enc[name]["_FillValue"] = np.array(spec.fill, dtype=spec.dtype)
            enc[name]["dtype"] = spec.dtype
    return enc


def save(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Validate and write ``ds`` to netCDF4 atomically (temp file + rename), coordinates normalised and sorted.

    Numeric variables are zlib-compressed and ``step_time`` is stored as
    float32. A reader never sees a half-written file: the data go to a
    temporary file in the target's folder (``.NAME.PID-XXXXXXXX.tmp``), which
    then replaces the target; such files that a killed save left are removed
    first (:func:`collector.dataset.storage.remove_stale_temps`). A sweep journal is
    never overwritten.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    OutputError
        The path names no file, its folder is not writable, or the disk (or the
        file size limit) is full; the message names the path and the cause, and
        nothing is left behind.
    """
    from collector.dataset.storage import check_output, remove_stale_temps, temp_prefix, write_error

    ds = validate(normalize(ds))
    target = check_output(path, "dataset")  # also: never over a sweep journal
    needed = int(ds.nbytes)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target)  # left beside it by an earlier save that was killed
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc, "dataset", needed=needed) from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a published dataset gets the usual mode
        ds.load().to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))
        os.replace(tmp, target)
    except (OSError, RuntimeError) as exc:  # the netCDF library says "HDF error" or "Permission denied" when full
        error = write_error(target, exc, "dataset", needed=needed)  # while the partial file still takes the room
        Path(tmp).unlink(missing_ok=True)
        raise error from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def upgrade(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """The current-schema version of a dataset written by an older schema (unchanged when current).

    Each step upgrades one version (:func:`_upgrade_1_to_2` ... :func:`_upgrade_3_to_4`), so a v1
    file goes through each; global attr ``upgraded`` says what each step assumed (joined with
    "; ") and ``history`` records each. Lazy (dask) input stays lazy.

    Raises
    ------
    SchemaError
        An unknown or newer version.
    """
    check_version(ds, source)
    version = str(ds.attrs["schema_version"])
    if version == SCHEMA_VERSION:
        return ds
    out = ds
    notes: list[str] = []
    for step in _UPGRADES[_UPGRADES.index(version):] if version in _UPGRADES else ():
        out, note = _STEPS[step](out)
        notes.append(note)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    previous = str(ds.attrs.get("upgraded", ""))
    out.attrs = dict(ds.attrs, schema_version=SCHEMA_VERSION, Conventions=CONVENTIONS,
                     upgraded="; ".join([*([previous] if previous else []), *notes]))
    out.attrs.setdefault("host", "")
    out.attrs["history"] = "\n".join([*([str(ds.attrs["history"])] if ds.attrs.get("history") else []),
                                      *(f"{stamp}: {n}" for n in notes)])
    return out


def _upgrade_1_to_2(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """Schema v1 -> v2: each factor v1 lacks (``attn``, ``cache_impl``) becomes a length-1 dim holding
    its ``v1_value`` (what v1 sweeps ran: transformers' default attention, the dynamic cache), placed
    where the declaration puts it; ``status`` gets the v2 flags."""
    assumed = {f.name: f.v1_value for f in FACTORS if f.name not in ds.dims and f.v1_value is not None}
    out = ds
    for name, value in assumed.items():
        out = out.expand_dims({name: np.asarray([value], dtype=str if BY_NAME[name].kind == "str" else None)})
        out[name].attrs["long_name"] = _DIM_MEANINGS[name]
    for name in [str(v) for v in out.data_vars]:
        var = out[name]
        if set(SWEEP_DIMS) <= set(var.dims):
            lead = [d for d in var.dims if d not in SWEEP_DIMS and d != STEP_DIM]
            out[name] = var.transpose(*lead, *SWEEP_DIMS, *([STEP_DIM] if STEP_DIM in var.dims else []))
    if "status" in out.data_vars:
        out["status"].attrs.update(_var_attrs("status"))
        out["status"].attrs.pop("units", None)
    for dim in SWEEP_DIMS:
        out[dim].attrs.update(_coord_attrs(dim))
    said = ", ".join(f"{k}={v!r}" for k, v in assumed.items())
    return out, (f"schema v1 -> v2 on read: {said} assumed (v1 files predate these factors; their runs used "
                 "transformers' default attention and the dynamic KV cache)")


#: Variables schema v3 added, which an upgraded v2 file holds at their fill values.
_V3_VARIABLES: tuple[str, ...] = ("process", "load_avg", "cpu_freq", "torch_threads")


def _upgrade_2_to_3(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """Schema v2 -> v3: the per-run variables of where runs execute (``process``, ``load_avg``,
    ``cpu_freq``, ``torch_threads``) are added at their fill values (unknown: v2 sweeps did not record
    them), shaped like ``status`` (lazy when it is)."""
    out = ds
    added = [n for n in _V3_VARIABLES if n not in ds.data_vars]
    if "status" in ds.data_vars:
        for name in added:
            spec = VARIABLES[name]
            var = xr.full_like(ds["status"], spec.fill, dtype=spec.dtype)
            var.attrs, var.encoding = _var_attrs(name), {}
            out[name] = var
    return out, (f"schema v2 -> v3 on read: {', '.join(added) or 'nothing'} added as unknown (fill values; v2 "
                 "files predate them)")


def _upgrade_3_to_4(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """Schema v3 -> v4: ``status`` gets the v4 flags (6 ``truncated``, which no v3 run has)."""
    out = ds
    if "status" in ds.data_vars:
        out = ds.copy(deep=False)
        out["status"] = ds["status"].copy(deep=False)
        out["status"].attrs.update(_var_attrs("status"))
        out["status"].attrs.pop("units", None)
    return out, "schema v3 -> v4 on read: status flags gain 6 truncated (no v3 run has it)"


#: Upgrade steps in order: the version each starts from.
_UPGRADES: tuple[str, ...] = ("1", "2", "3")
_STEPS = {"1": _upgrade_1_to_2, "2": _upgrade_2_to_3, "3": _upgrade_3_to_4}


def normalize(ds: xr.Dataset) -> xr.Dataset:
    """Coordinates with the dtypes the schema fixes (whatever dtype a file stored) and sorted sweep dims.

    String coordinates become numpy unicode, ``cache`` bool, integer dims and
    ``n_params`` int64 (a float ``n_params`` with NaN becomes -1); every sweep
    dim's coordinate is sorted ascending (files may store them in any order).
    Lazy input stays lazy.
    """
    fixed: dict[str, Any] = {}
    kinds = {**_DIM_KINDS, **{name: kind for name, (kind, _) in MODEL_COORDS.items()}}
    for name, kind in kinds.items():
        if name not in ds.coords:
            continue
        values = np.asarray(ds[name].values)
        if kind == "str" and values.dtype.kind != "U":
            fixed[name] = (ds[name].dims, values.astype(str), ds[name].attrs)
        elif kind == "bool" and values.dtype.kind != "b":
            fixed[name] = (ds[name].dims, values.astype(bool), ds[name].attrs)
        elif kind == "int" and values.dtype.kind != "i":
            fixed[name] = (ds[name].dims, _as_int64(name, values), ds[name].attrs)
    if fixed:
        ds = ds.assign_coords(fixed)
    for name in _FILLED:  # CF readers mask _FillValue to NaN; the schema keeps the integer sentinel
        spec = VARIABLES[name]
        if name in ds.data_vars and ds[name].dtype.kind == "f":
            var = ds[name]
            ds[name] = var.fillna(spec.fill).astype(spec.dtype)
            ds[name].attrs, ds[name].encoding = var.attrs, var.encoding
    unsorted = [d for d in (ORIGIN_DIM, *SWEEP_DIMS) if d in ds.indexes and not ds.indexes[d].is_monotonic_increasing]
    return ds.sortby(unsorted) if unsorted else ds


def _as_int64(name: str, values: np.ndarray) -> np.ndarray:
    """Integer coordinate values as int64: NaN of a model coordinate (a CF reader's fill) becomes -1; NaN
    in a sweep coordinate, inf, a fraction or a value past int64 is refused instead of cast to garbage."""
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        bad = finite & ((np.abs(values) >= 2.0**63) | (values != np.floor(values)))
        if bad.any():
            raise SchemaError(f"coordinate {name!r} holds {values[bad].ravel()[0].item()!r}; expected integers")
        # NaN is a CF reader's fill of a model coordinate (n_params: unknown, -1); a sweep coordinate has no
        # unknown values, and inf is nobody's fill: both are named as they are, not as the -1 they would become
        wrong = np.isinf(values) | (np.isnan(values) if name in SWEEP_DIMS else np.zeros(values.shape, bool))
        if wrong.any():
            raise SchemaError(f"coordinate {name!r} holds {values[wrong].ravel()[0].item()!r}; expected finite "
                              "integers")
        return np.where(finite, values, -1).astype(np.int64)
    try:
        return values.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        raise SchemaError(f"coordinate {name!r} has values {values.ravel()[:3].tolist()!r}; expected integers") from None


def load(path: str | os.PathLike[str], *, chunks: Any = None) -> xr.Dataset:
    """Open one schema netCDF file (version 1 upgraded on read), refusing newer schema versions.

    Parameters
    ----------
    path
        The file.
    chunks
        Passed to :func:`xarray.open_dataset` (``None``: eager numpy).

    Raises
    ------
    SchemaError
        When the file's schema is newer than this package's, or invalid.
    FileNotFoundError
        When the file does not exist.
    """
    from collector.dataset.storage import input_problem

    p = Path(path)
    problem = input_problem(p, "dataset")
    if problem is not None:
        raise FileNotFoundError(problem)  # a folder, a FIFO, a link loop: said as such
    if not p.is_file():
        raise FileNotFoundError(f"no such dataset file: {str(p)!r}")
    try:
        with xr.open_dataset(p, engine="netcdf4", decode_cf=False) as raw:
            attrs = dict(raw.attrs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SchemaError(f"{str(p)!r} is not a readable netCDF file ({exc})") from None
    check_version(xr.Dataset(attrs=attrs), source=repr(str(p)))
    ds: xr.Dataset | None = None
    try:  # every error path closes the file: a handle left open by a failed read can crash a later open
        ds = xr.open_dataset(p, engine="netcdf4", chunks=chunks)
        if chunks is None:
            ds.load()
            ds.close()
        out = normalize(upgrade(ds, source=repr(str(p))))
        return validate(out, check_values=chunks is None)
    except SchemaError as exc:
        if ds is not None:
            ds.close()
        text = str(exc)
        raise SchemaError(text if str(p) in text else f"{str(p)!r}: {text}") from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # e.g. "NetCDF: HDF error" from a corrupt block
        if ds is not None:
            ds.close()
        raise SchemaError(f"{str(p)!r} cannot be read: {type(exc).__name__}: {exc} (a corrupt or truncated "
                          "file? a copy from the source may help)") from None
    except BaseException:
        if ds is not None:
            ds.close()
        raise
