"""Import what the MPS study's own benchmark harness writes: ``python -m collector import-study``.

The harness (its ``scripts/benchmark.py``) starts one fresh HTTP model server
per configuration, sends warm-up requests and then the timed requests, and
appends ONE aggregated row per configuration to
``benchmark_results_<timestamp>.csv`` (the same rows, as a JSON list, to
``benchmark_results_<timestamp>.json``). Per-run values are not stored, only
summaries over the runs. :func:`import_study` turns such files into a schema
dataset:

* a row is a cell: ``model``; ``execution_mode`` -> ``device`` (and
  ``mps-fp16`` -> dtype float16); ``prompt_name`` -> ``prompt_len`` through a
  mapping the user gives (``long_context``, the harness's ~65-token paragraph,
  defaults to 65); ``use_cache`` -> ``cache``; ``max_tokens`` -> ``budget``.
  The same configuration in several rows (repeated collections) becomes
  trials 0, 1, ... in row order;
* ``latency`` is the server-side generation time ``avg_prefill_time +
  avg_decode_time`` where the harness reports both (``latency_source`` 0),
  else the client's mean HTTP round trip ``avg_latency`` with no phase split
  (``latency_source`` 1, attr ``phase_split``);
* the spread is kept: ``n_runs`` (``samples``), ``success_rate`` and
  ``request_latency`` along a small ``stat`` dim (mean, p50, p95, std, min,
  max of the client round trip); every other numeric column is kept as
  ``harness_<column>``;
* a configuration with no successful timed request (``samples`` 0 or no
  latency) is ``status`` error and listed in attr ``failures``;
* the protocol goes into attrs: ``isolation = cell`` (fresh server per
  configuration), ``run_order = sequential`` with ``order`` = the row's place
  in the files (rows are appended as configurations finish), attr
  ``protocol`` (HTTP round trip).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector.dataset import schema
from collector.dataset.foreign import read_json, read_text, shorten
from collector.dataset.identity import check_distinct_files
from collector.dataset.storage import input_problem
from collector.shared.errors import ConfigError
from collector.sweep.parsing import MAX_BUDGET, parse_int
from collector.sweep.spec import MAX_SEED, MAX_WARMUP

__all__ = [
    "DEFAULT_PROMPT_LENS",
    "MODES",
    "REQUIRED",
    "STATS",
    "StudyRow",
    "parse_prompt_lens",
    "read_harness",
    "import_study",
]

#: Prompt names of the study's configs with a known length (override with ``--prompt-lens``).
DEFAULT_PROMPT_LENS: dict[str, int] = {"long_context": 65}
#: ``execution_mode`` -> (device, dtype).
MODES: dict[str, tuple[str, str]] = {
    "cpu": ("cpu", "float32"),
    "mps": ("mps", "float32"),
    "cuda": ("cuda", "float32"),
    "mps-fp16": ("mps", "float16"),
}
#: Columns without which a file cannot be imported.
REQUIRED: tuple[str, ...] = ("model", "execution_mode", "prompt_name", "max_tokens", "use_cache")
#: ``stat`` coordinate of ``request_latency`` and the harness column of each.
STATS: dict[str, str] = {"mean": "avg_latency", "p50": "p50_latency", "p95": "p95_latency", "std": "std_latency",
                         "min": "min_latency", "max": "max_latency"}
#: Units of the numeric harness columns kept as ``harness_<column>``.
_UNITS = {"startup_latency": "s", "first_request_latency": "s", "avg_prefill_time": "s", "avg_decode_time": "s",
          "avg_step_time": "s", "p95_step_time": "s", "max_step_time": "s", "avg_seq_length": "1",
          "offered_load": "1", "samples": "1", "success_rate": "%"}
_KNOWN = set(REQUIRED) | set(STATS.values()) | {"samples", "success_rate", "offered_load"}
_ARCH = (("distilgpt2", "GPT2LMHeadModel"), ("gpt2", "GPT2LMHeadModel"), ("bloom", "BloomForCausalLM"),
         ("opt", "OPTForCausalLM"))
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NOT_RECORDED = "not recorded by the harness"
#: Most timed runs a row may summarise (``n_runs`` is int32).
MAX_RUNS = 2**31 - 1


@dataclass(frozen=True)
class StudyRow:
    """One aggregated harness row (one configuration) with its source."""

    source: str  # "file:row"
    values: Mapping[str, Any]

    def text(self, column: str) -> str:
        """The column as stripped text ("" when missing or null)."""
        v = self.values.get(column)
        return "" if v is None else str(v).strip()

    def number(self, column: str) -> float:
        """The column as a float (NaN when missing, null or empty)."""
        t = self.text(column)
        if t == "" or t.lower() in ("nan", "none", "null"):
            return math.nan
        try:
            return float(t)
        except ValueError:
            raise ConfigError(f"{self.source}: column {column!r} is {shorten(t)}; expected a number") from None


def parse_prompt_lens(items: Sequence[str] | Mapping[str, int] | None) -> dict[str, int]:
    """``["long_context=65", "short=3"]`` (or a mapping) -> ``{name: length}``, over the defaults.

    Raises
    ------
    ConfigError
        An item is not ``NAME=N`` with N a positive integer.
    """
    out = dict(DEFAULT_PROMPT_LENS)
    if items is None:
        return out
    pairs: Iterable[tuple[str, Any]] = items.items() if isinstance(items, Mapping) else []
    if not isinstance(items, Mapping):
        parsed: list[tuple[str, Any]] = []
        for item in items:
            for part in str(item).split(","):
                name, eq, n = part.partition("=")
                if not eq or not name.strip():
                    raise ConfigError(f"--prompt-lens item {part!r} is not NAME=N (e.g. long_context=65)")
                parsed.append((name.strip(), n.strip()))
        pairs = parsed
    for name, n in pairs:
        try:
            length = int(n)
        except (TypeError, ValueError):
            raise ConfigError(f"prompt length of {name!r} is {n!r}; expected a positive integer") from None
        if length < 1:
            raise ConfigError(f"prompt length of {name!r} is {length!r}; expected a positive integer")
        out[str(name)] = length
    return out


def _read_csv(path: Path) -> tuple[list[dict[str, Any]], list[str], str]:
    """Rows (dicts by header), header and encoding of a CSV; a broken row or header raises ``ConfigError``."""
    text, encoding = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = [(reader.line_num, r) for r in reader if r]  # line_num: where the record ends (blank lines skipped)
    except csv.Error as exc:
        raise ConfigError(f"{str(path)!r} line {reader.line_num + 1} is not CSV: {exc} (a harness field is a name or a "
                          "number)") from None
    if not records:
        raise ConfigError(f"{str(path)!r} holds no result rows")
    (_, header), body = records[0], records[1:]
    header = [h.strip() for h in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ConfigError(f"{str(path)!r} names column {shorten(repeated[0])} more than once; each column must be named "
                          "once")
    rows: list[dict[str, Any]] = []
    for line, r in body:
        if len(r) != len(header):
            raise ConfigError(f"{path.name}:{line}: the row has {len(r)} field(s) and the header {len(header)}; a "
                              "truncated or broken row (a harness row has a value, maybe empty, for every column)")
        rows.append(dict(zip(header, r)))
    return rows, header, encoding


def _read_one(path: Path) -> tuple[list[StudyRow], str]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows, columns, encoding = _read_csv(path)
        sources = [f"{path.name}:{i + 2}" for i in range(len(rows))]
    elif suffix == ".json":
        data, encoding = read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConfigError(f"{str(path)!r} holds a {type(data).__name__}; expected a JSON list of result rows")
        rows = data
        columns = list(dict.fromkeys(k for r in rows for k in r))
        sources = [f"{path.name}:{i}" for i in range(len(rows))]
    else:
        raise ConfigError(f"{str(path)!r} is neither .csv nor .json (the harness writes benchmark_results_*.csv/.json)")
    if not rows:
        raise ConfigError(f"{str(path)!r} holds no result rows")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ConfigError(f"{str(path)!r} lacks column(s) {missing!r}; a harness file has at least {list(REQUIRED)!r}")
    if "avg_latency" not in columns and not {"avg_prefill_time", "avg_decode_time"} <= set(columns):
        raise ConfigError(f"{str(path)!r} has no latency: neither 'avg_latency' nor 'avg_prefill_time' + "
                          "'avg_decode_time'")
    return [StudyRow(src, r) for src, r in zip(sources, rows)], encoding


def read_harness(paths: Sequence[str | os.PathLike[str]], encodings: dict[str, str] | None = None) -> list[StudyRow]:
    """Rows of every file, files in the order given, rows in file order.

    ``encodings``, when given, receives the text encoding each file was read
    in (:func:`collector.dataset.foreign.read_text`).

    Raises
    ------
    ConfigError
        No file, a missing or unreadable file, a file given twice (same
        path, link or bytes), not text in any encoding tried
        (:func:`collector.dataset.foreign.read_text`), not CSV/JSON, a truncated row,
        a column named twice, no rows, or a required column missing.
    """
    if not paths:
        raise ConfigError("import-study needs at least one benchmark_results_*.csv or .json file")
    for p in paths:
        problem = input_problem(p, "harness file")
        if problem is not None:
            raise ConfigError(problem)  # a folder, a FIFO, a link loop: said as such
        if not Path(p).is_file():
            raise ConfigError(f"no such harness file: {str(p)!r}")
    check_distinct_files(paths)  # one collection given twice is not new trials
    encodings = {} if encodings is None else encodings
    rows: list[StudyRow] = []
    for p in paths:
        got, encodings[str(p)] = _read_one(Path(p))
        rows.extend(got)
    return rows


def _bool(row: StudyRow, column: str) -> bool:
    t = row.text(column).lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ConfigError(f"{row.source}: column {column!r} is {shorten(row.text(column))}; expected true or false")


def _int(row: StudyRow, column: str, minimum: int, maximum: int) -> int:
    x = row.number(column)
    if not math.isfinite(x) or x != int(x) or not minimum <= x <= maximum:
        raise ConfigError(f"{row.source}: column {column!r} is {shorten(row.text(column))}; expected an integer in "
                          f"{minimum}..{maximum}")
    return int(x)


def _architecture(model: str) -> str:
    base = model.rsplit("/", 1)[-1].lower()
    return next((arch for prefix, arch in _ARCH if base.startswith(prefix)), "")


def _key(row: StudyRow, prompt_lens: Mapping[str, int]) -> tuple[str, str, str, bool, int, int]:
    model = row.text("model")
    if not model:
        raise ConfigError(f"{row.source}: column 'model' is empty")
    mode = row.text("execution_mode")
    if mode not in MODES:
        raise ConfigError(f"{row.source}: execution_mode {shorten(mode)} is not one of {sorted(MODES)!r}")
    device, dtype = MODES[mode]
    prompt = row.text("prompt_name")
    if prompt not in prompt_lens:
        flag = prompt if len(prompt) <= 40 and prompt.isprintable() and " " not in prompt else "NAME"
        raise ConfigError(f"{row.source}: prompt {shorten(prompt)} has no length; give it with --prompt-lens {flag}=N "
                          f"(known: {sorted(prompt_lens)!r})")
    load = row.number("offered_load")
    if math.isfinite(load) and load != 1:
        raise ConfigError(f"{row.source}: offered_load is {row.text('offered_load')!r}; only sequential requests "
                          "(offered_load 1, every paper config) measure one generation at a time")
    return (model, device, dtype, _bool(row, "use_cache"), prompt_lens[prompt], _int(row, "max_tokens", 1, MAX_BUDGET))


def _check_values(row: StudyRow) -> None:
    """Refuse values no harness run can have: a count out of range, a percent outside 0..100, a time <= 0."""
    if math.isfinite(row.number("samples")):
        _int(row, "samples", 0, MAX_RUNS)
    rate = row.number("success_rate")
    if not (math.isnan(rate) or 0 <= rate <= 100):
        raise ConfigError(f"{row.source}: column 'success_rate' is {shorten(row.text('success_rate'))}; expected a "
                          "percent in 0..100")
    for column in (*STATS.values(), "avg_prefill_time", "avg_decode_time"):
        x = row.number(column)
        if not math.isnan(x) and not (math.isfinite(x) and x >= 0):
            raise ConfigError(f"{row.source}: column {column!r} is {shorten(row.text(column))}; a time in seconds is "
                              "finite and >= 0")
    pre, dec, avg = row.number("avg_prefill_time"), row.number("avg_decode_time"), row.number("avg_latency")
    total = pre + dec if math.isfinite(pre) and math.isfinite(dec) else avg
    if total == 0:
        which = "avg_prefill_time + avg_decode_time" if math.isfinite(pre) and math.isfinite(dec) else "avg_latency"
        raise ConfigError(f"{row.source}: {which} is 0; a generation that ran takes a positive time (a missing "
                          "value is empty, not 0)")


def _status_of(row: StudyRow) -> tuple[str, str]:
    """("ok", "") or ("error", why)."""
    samples = row.number("samples")
    if math.isfinite(samples) and samples < 1:
        rate = row.number("success_rate")
        return "error", f"no successful timed request (samples {row.text('samples')}" + (
            f", success_rate {rate:g}%)" if math.isfinite(rate) else ")")
    pre, dec, avg = row.number("avg_prefill_time"), row.number("avg_decode_time"), row.number("avg_latency")
    if not (math.isfinite(avg) or (math.isfinite(pre) and math.isfinite(dec))):
        return "error", "no latency reported"
    return "ok", ""


def import_study(
    paths: Sequence[str | os.PathLike[str]],
    *,
    prompt_lens: Sequence[str] | Mapping[str, int] | None = None,
    warmup: int | str = 3,
    seed: int | str = 42,
    title: str | None = None,
    command: str = "",
) -> xr.Dataset:
    """A schema dataset from the study harness's ``benchmark_results_*.csv`` / ``.json`` files.

    Parameters
    ----------
    paths
        Harness files, in the order they were written (their rows give ``order``).
    prompt_lens
        ``NAME=N`` items or a mapping: the length in tokens of each
        ``prompt_name`` (``long_context`` defaults to 65).
    warmup, seed
        The harness's warm-up requests per configuration and seed (the paper's
        configs: 3 and 42); recorded in attrs.
    title, command
        Attrs ``title`` and ``command``.

    Returns
    -------
    xarray.Dataset
        Valid schema dataset (see the module docstring) with extra variables
        ``n_runs`` (int32, -1 unknown), ``success_rate`` (%),
        ``latency_source`` (int8 flags: -1 none, 0 server prefill + decode,
        1 client round trip), ``request_latency`` (dims ``stat`` + sweep,
        seconds) and ``harness_<column>`` for the other numeric columns.

    Raises
    ------
    ConfigError
        Unreadable input, a missing required column, a bad value, an unknown
        execution mode or a prompt without a length (each names the file and
        row).
    """
    warmup = parse_int(warmup, "warmup", 0, MAX_WARMUP)
    seed = parse_int(seed, "seed", 0, MAX_SEED)
    encodings: dict[str, str] = {}
    rows = read_harness(paths, encodings)
    lens = parse_prompt_lens(prompt_lens)
    keys = [_key(r, lens) for r in rows]
    for r in rows:
        _check_values(r)
    trial_of = _trial_numbers(keys)
    models = list(dict.fromkeys(k[0] for k in keys))
    numeric = _numeric_columns(rows)
    used_prompts = _used_prompts(rows, lens)
    ds = schema.empty_dataset(models=models, devices=_levels(keys, 1), dtypes=_levels(keys, 2),
                              caches=_levels(keys, 3), prompt_lens=_levels(keys, 4), budgets=_levels(keys, 5),
                              trials=max(trial_of) + 1, step_time=False, model_info=_model_info(models),
                              attrs=_attrs(paths, used_prompts, warmup, seed, title, command))
    ds.attrs["source_encodings"] = json.dumps({Path(p).name: enc for p, enc in encodings.items()})
    harness = _HarnessArrays.empty(tuple(ds.sizes[d] for d in schema.SWEEP_DIMS), numeric)
    index = {d: {v: i for i, v in enumerate(ds[d].values.tolist())} for d in schema.SWEEP_DIMS}
    arrays = {name: ds[name].values for name in ds.data_vars}
    for order, (row, key, trial) in enumerate(zip(rows, keys, trial_of)):
        _fill_row(ds, arrays, harness, row, key, _at(index, key, trial), order)
    return schema.validate(_with_harness_variables(ds, harness))


def _trial_numbers(keys: Sequence[tuple[Any, ...]]) -> list[int]:
    """The trial of each row: the same configuration in several rows is trial 0, 1, ... in row order."""
    trial_of: list[int] = []
    seen: dict[tuple[Any, ...], int] = {}
    for k in keys:
        trial_of.append(seen.get(k, 0))
        seen[k] = trial_of[-1] + 1
    return trial_of


def _levels(keys: Sequence[tuple[Any, ...]], i: int) -> list[Any]:
    """The sorted distinct values of item ``i`` of the cell keys (a coordinate of the dataset)."""
    return sorted({k[i] for k in keys})


def _model_info(models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``n_params`` (-1 unknown), ``weights`` and ``architecture`` of each model, for :func:`schema.empty_dataset`."""
    from collector.shared.sim import MODEL_COSTS

    return {m: {"n_params": MODEL_COSTS[m].n_params if m in MODEL_COSTS else -1, "weights": "pretrained",
                "architecture": _architecture(m)} for m in models}


def _numeric_columns(rows: Sequence[StudyRow]) -> list[str]:
    """The columns beyond the known ones with a number in some row (kept as ``harness_<column>``), in file order."""
    extra_cols = [c for c in dict.fromkeys(c for r in rows for c in r.values) if c not in _KNOWN]
    return [c for c in extra_cols if any(math.isfinite(_safe_number(r, c)) for r in rows)]


def _used_prompts(rows: Sequence[StudyRow], lens: Mapping[str, int]) -> dict[str, int]:
    """The prompt lengths of the prompts the rows use; refuse two prompts of one length.

    Raises
    ------
    ConfigError
        When two used prompts have the same length (their rows would be replicates of one cell).
    """
    used_prompts = {name: n for name, n in lens.items() if any(r.text("prompt_name") == name for r in rows)}
    by_length: dict[int, str] = {}
    for name, n in used_prompts.items():
        if n in by_length:
            raise ConfigError(f"prompts {by_length[n]!r} and {name!r} both have length {n}: their rows would become "
                              "replicates of one cell; give each prompt its own length (--prompt-lens NAME=N)")
        by_length[n] = name
    return used_prompts


@dataclass
class _HarnessArrays:
    """What :func:`import_study` keeps beyond the schema's variables, filled row by row."""

    n_runs: np.ndarray  # int32 over the sweep dims, -1 unknown
    rate: np.ndarray  # success_rate, %
    source: np.ndarray  # latency_source flags, int8
    request: np.ndarray  # request_latency: stat + sweep dims
    extra: dict[str, np.ndarray]  # harness column -> values over the sweep dims
    failures: list[dict[str, Any]] = field(default_factory=list)
    no_split: list[str] = field(default_factory=list)  # sources of ok rows without a prefill / decode split

    @classmethod
    def empty(cls, shape: tuple[int, ...], numeric: Sequence[str]) -> _HarnessArrays:
        """Arrays of ``shape`` (the sweep dims) holding "not reported" (-1 / NaN), one per numeric column."""
        return cls(n_runs=np.full(shape, -1, dtype=np.int32), rate=np.full(shape, np.nan),
                   source=np.full(shape, -1, dtype=np.int8), request=np.full((len(STATS), *shape), np.nan),
                   extra={c: np.full(shape, np.nan) for c in numeric})


def _fill_row(ds: xr.Dataset, arrays: Mapping[Hashable, np.ndarray], harness: _HarnessArrays, row: StudyRow,
              key: tuple[Any, ...], i: tuple[int, ...], order: int) -> None:
    """Write one harness row into its cell ``i`` of the schema ``arrays`` (views of ``ds``) and of ``harness``."""
    status, why = _status_of(row)
    arrays["status"][i] = schema.STATUS[status]
    arrays["order"][i] = order
    arrays["worker"][i] = order  # one fresh server process per configuration
    samples = row.number("samples")
    harness.n_runs[i] = int(samples) if math.isfinite(samples) else -1
    harness.rate[i] = row.number("success_rate")
    for c, values in harness.extra.items():
        values[i] = _safe_number(row, c)
    arrays["mem_device_peak"][i] = row.number("peak_mps_allocated_mb") * 2**20 if key[1] == "mps" else math.nan
    arrays["mem_rss_peak"][i] = row.number("peak_cpu_rss_mb") * 2**20
    if status != "ok":
        run = {d: ds[d].values[j].item() for d, j in zip(schema.SWEEP_DIMS, i)}  # like the collector's failures
        harness.failures.append({"run": run, "status": status, "error": f"{row.source}: {why}"})
        return
    for s, col in enumerate(STATS.values()):
        at = (s, *i)
        harness.request[at] = row.number(col)
    arrays["tokens"][i] = key[5]
    pre, dec = row.number("avg_prefill_time"), row.number("avg_decode_time")
    if math.isfinite(pre) and math.isfinite(dec):
        arrays["latency"][i], arrays["prefill_time"][i], arrays["decode_time"][i] = pre + dec, pre, dec
        harness.source[i] = 0
    else:
        arrays["latency"][i] = row.number("avg_latency")
        harness.source[i] = 1
        harness.no_split.append(row.source)


def _with_harness_variables(ds: xr.Dataset, harness: _HarnessArrays) -> xr.Dataset:
    """``ds`` with attrs ``failures`` (and ``phase_split``), the ``stat`` coordinate and the harness's variables."""
    ds.attrs["failures"] = json.dumps(harness.failures)
    if harness.no_split:
        ds.attrs["phase_split"] = ("prefill_time / decode_time NaN where the harness reported no server-side split "
                                   f"(latency_source 1: latency is the HTTP round trip mean): rows {harness.no_split!r}")
    ds["n_runs"] = (schema.SWEEP_DIMS, harness.n_runs, {"long_name": "successful timed runs summarised in the cell "
                                                                     "(harness 'samples'; -1 unknown)", "units": "1"})
    ds["success_rate"] = (schema.SWEEP_DIMS, harness.rate, {"long_name": "percent of timed requests that succeeded",
                                                            "units": "%"})
    ds["latency_source"] = (schema.SWEEP_DIMS, harness.source, {
        "long_name": "what latency is: server prefill + decode means, or the client's mean HTTP round trip",
        "units": "1", "flag_values": np.array([-1, 0, 1], dtype=np.int8),
        "flag_meanings": "none server_prefill_plus_decode client_round_trip"})
    ds["request_latency"] = (("stat", *schema.SWEEP_DIMS), harness.request, {
        "long_name": "client-side request latency over the timed runs (HTTP round trip, includes server overhead)",
        "units": "s"})
    ds = ds.assign_coords(stat=np.asarray(list(STATS), dtype=str))
    ds["stat"].attrs["long_name"] = "summary over the runs of a configuration (harness columns " + ", ".join(
        STATS.values()) + ")"
    for c, name in _variable_names(list(harness.extra)).items():
        ds[name] = (schema.SWEEP_DIMS, harness.extra[c], {"long_name": f"harness column {c!r}", "units": _unit(c)})
    return ds


def _variable_names(columns: Sequence[str]) -> dict[str, str]:
    """``harness_<column>`` for each column, characters other than letters, digits and _ as _; one name per column.

    Columns that map to one name (``my-col``, ``my_col``) get ``_2``, ``_3``...
    in column order, so none is dropped; the ``long_name`` of each variable
    holds its column as written.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for c in columns:
        base = "harness_" + re.sub(r"[^0-9A-Za-z_]", "_", c)
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        out[c] = name
    return out


def _at(index: Mapping[str, Mapping[Any, int]], key: tuple[Any, ...], trial: int) -> tuple[int, ...]:
    """Position of a cell; a sweep dim the harness does not vary (attn, cache_impl...) has one default value."""
    cell = dict(zip(("model", "device", "dtype", "cache", "prompt_len", "budget"), key), trial=trial)
    return tuple(index[d][cell[d]] if d in cell else 0 for d in schema.SWEEP_DIMS)


def _safe_number(row: StudyRow, column: str) -> float:
    try:
        return row.number(column)
    except ConfigError:
        return math.nan


def _unit(column: str) -> str:
    if column in _UNITS:
        return _UNITS[column]
    if column.endswith("_mb"):
        return "MB"
    if "tokens_per_sec" in column:
        return "1/s"
    return "1"


def _attrs(paths: Sequence[Any], prompts: Mapping[str, int], warmup: int, seed: int, title: str | None,
           command: str) -> dict[str, Any]:
    names = [Path(p).name for p in paths]
    return {
        "title": title or "imported results of the MPS study's benchmark harness",
        "source": "imported from the study's benchmark harness output: " + ", ".join(names),
        "values": "summaries over the timed runs of each configuration, no per-run values: latency is a mean over "
                  "n_runs runs; a trial is one collection (one harness row) of a configuration",
        "protocol": "the study's harness: every timed request is an HTTP round trip to a model server "
                    "(request_latency includes the server overhead), one fresh server process per configuration, "
                    "configurations one after another (order = row order in the files), warm-up requests first",
        "latency_measure": "latency = avg_prefill_time + avg_decode_time (server side) where both are reported "
                           "(latency_source 0), else avg_latency (client round trip, latency_source 1)",
        "prompt_lens": json.dumps(dict(prompts), sort_keys=True),
        "timing_note": "timing 'ends': the file holds whole-generation times only (no step_time); the harness's own "
                       "per-step summaries, where it wrote them, are the harness_*step_time variables",
        "platform": _NOT_RECORDED,
        "machine": _NOT_RECORDED,
        "host": "",  # not recorded by the harness (base_attrs would put this machine's name)
        "processor": _NOT_RECORDED,
        "gpu_name": _NOT_RECORDED,
        "os_version": _NOT_RECORDED,
        "python_version": _NOT_RECORDED,
        "torch_version": _NOT_RECORDED,
        "transformers_version": _NOT_RECORDED,
        "engine": "loop",
        "timing": "ends",  # the file holds no per-step times (step_time); see timing_note
        "warmup": int(warmup),
        "isolation": "cell",
        "run_order": "sequential",
        "seed": int(seed),
        "sweep": json.dumps({"imported": names, "prompt_lens": dict(prompts)}, sort_keys=True),
        "command": command,
        "simulated": 0,
    }
