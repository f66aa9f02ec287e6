"""Build ``datasets/mps-m3max-study.nc`` from the study's published tables.

The tables of W. F. Hendria, "Non-Monotonic Latency in Apple MPS Decoding"
(arXiv 2605.08913), copied as printed into ``datasets/study/*.csv`` (see
``datasets/study/README.md``), become one schema dataset with one trial: every
value is a published mean over 5 measured runs, not a raw run.

Run from the repository root::

    python datasets/build_study.py            # writes datasets/mps-m3max-study.nc
    python datasets/build_study.py -o OUT.nc  # somewhere else

How the tables map to the schema (also in the file's attrs and in
``datasets/README.md``):

* The study ran separate experiments (sessions). They are kept apart by an
  extra leading dim ``experiment`` (schema: extra dims before the sweep dims
  are more independent series), so no published number is dropped or chosen
  over another: ``main_crossover`` (the 128-token baseline, the spikes of the
  anomaly summary and the MPS column of the CUDA comparison, all from the main
  4-model sweep, plus the CUDA T4 baseline of the same configurations as
  device ``cuda``), ``instability_probe``, ``kv_ablation`` and
  ``prompt_ablation``. A cell that two experiments measured (gpt2-medium, mps,
  cache on, 65-token prompt at budgets 128, 384, 496, 512, 624, 640) appears
  once in each; attr ``overlaps`` lists them side by side. Within one
  experiment, tables that repeat a value must agree (they do).
* The memory profile was a separate memory-instrumented run of the KV
  ablation's grid (gpt2-medium, mps, cache on, budgets 128..768 step 128): its
  peaks go into ``mem_device_peak`` of the ``kv_ablation`` cells with the
  cache on (MB = 2**20 bytes).
* ``prefill_time`` / ``decode_time`` exist only where the study states them
  (the probe at 496 and 512 tokens); elsewhere the phase split was not
  published and both are NaN.
* ``order``, ``worker`` and ``started_at`` were not published (the protocol
  was sequential in grid order, attr ``run_order``): -1 / NaT.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from collector.dataset import schema

__all__ = [
    "EXPERIMENTS",
    "EXPERIMENT_DIM",
    "TABLE_FILES",
    "Cell",
    "Tables",
    "read_tables",
    "build",
    "main",
]

HERE = Path(__file__).resolve().parent
#: The copy of the published tables that this script reads.
STUDY_DIR = HERE / "study"
#: The dataset it writes.
OUTPUT = HERE / "mps-m3max-study.nc"

#: The extra leading dim that keeps the study's experiments apart.
EXPERIMENT_DIM = "experiment"
#: The study's experiments that published latencies (values of :data:`EXPERIMENT_DIM`).
EXPERIMENTS: tuple[str, ...] = ("main_crossover", "instability_probe", "kv_ablation", "prompt_ablation")
#: Every CSV of the copy, its experiment and what it holds.
TABLE_FILES: dict[str, tuple[str, str]] = {
    "baseline_128.csv": ("main_crossover", "latency at 128 new tokens, cpu vs mps, 4 models"),
    "anomaly_summary.csv": ("main_crossover", "the two spikes named in the paper with reference points (mps)"),
    "cuda_comparison.csv": ("main_crossover", "mps vs the CUDA T4 baseline at the spikes and neighbours"),
    "instability_probe.csv": ("instability_probe", "gpt2-medium, mps, budgets 480..656 step 16, with regime labels"),
    "kv_ablation.csv": ("kv_ablation", "gpt2-medium, mps, cache on vs off, budgets 128..768 step 128"),
    "memory_profile.csv": ("kv_ablation", "peak MPS-allocated memory of gpt2-medium, a separate memory-instrumented "
                                          "run of the kv_ablation grid (cache on)"),
    "prompt_ablation.csv": ("prompt_ablation", "gpt2-medium, mps, prompts of 3 and 65 tokens at 496, 512, 624, 640"),
}
MODELS: tuple[str, ...] = ("distilgpt2", "gpt2", "gpt2-medium", "gpt2-large")
#: Parameter counts of the hub models (the collector's presets have the same architectures).
N_PARAMS: dict[str, int] = {"distilgpt2": 81_912_576, "gpt2": 124_439_808, "gpt2-medium": 354_823_168,
                            "gpt2-large": 774_030_080}
#: Prompt of every table but the prompt ablation: the ~65-token paragraph.
LONG_PROMPT = 65
RUNS_PER_VALUE = 5
WARMUP = 3
SEED = 42
MIB = 2**20
#: Prefill times the paper states for the probe (gpt2-medium, mps, cache on, 65-token prompt).
STATED_PREFILL: dict[int, float] = {496: 0.08, 512: 0.11}
#: The stated spread of the probe at 512 tokens (5 runs), which no table gives per cell.
STATED_SPREAD = "standard deviation 8-14 s at 512 tokens over the 5 runs (instability probe)"

CITATION = ('W. F. Hendria, "Non-Monotonic Latency in Apple MPS Decoding", arXiv:2605.08913 (tables of the paper; '
            "protocol from the configs/paper/*.yaml files of the study's repository)")
LABEL_MEANINGS = "unlabelled normal anomalous"

Key = tuple[str, str, str, bool, int, int]  # experiment, model, device, cache, prompt_len, budget


@dataclass(frozen=True)
class Cell:
    """One published latency: a cell of an experiment and the table that printed it."""

    experiment: str
    table: str
    model: str
    device: str
    cache: bool
    prompt_len: int
    budget: int
    latency: float
    label: int = -1  # the paper's label: 1 anomalous, 0 normal, -1 none

    @property
    def key(self) -> Key:
        """``(experiment, model, device, cache, prompt_len, budget)``."""
        return (self.experiment, self.model, self.device, self.cache, self.prompt_len, self.budget)


@dataclass
class Tables:
    """Everything read from the copy: latency cells (one per printed value) and memory peaks."""

    cells: list[Cell] = field(default_factory=list)
    memory: dict[Key, float] = field(default_factory=dict)


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"published table {name!r} is missing from {str(folder)!r}")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _on(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(f"cache column is {text!r}; expected 'on' or 'off'")
    return text == "on"


def _yes(text: str) -> int:
    if text not in ("yes", "no"):
        raise ValueError(f"anomalous_on_mps is {text!r}; expected 'yes' or 'no'")
    return int(text == "yes")


def read_tables(folder: str | Path = STUDY_DIR) -> Tables:
    """Read the published tables: one :class:`Cell` per printed latency.

    Parameters
    ----------
    folder
        The folder holding the CSV copy (default: ``datasets/study``).

    Returns
    -------
    Tables
        ``cells``: a value printed by several tables of one experiment appears
        once per table; ``memory``: peak allocated bytes per cell key.
    """
    folder = Path(folder)
    out = Tables()
    main, add = "main_crossover", out.cells.append
    for r in _rows(folder, "baseline_128.csv"):
        add(Cell(main, "baseline_128", r["model"], r["device"], True, LONG_PROMPT, int(r["budget"]),
                 float(r["latency_s"])))
    for r in _rows(folder, "anomaly_summary.csv"):
        add(Cell(main, "anomaly_summary", r["model"], r["device"], True, LONG_PROMPT, int(r["anomalous_budget"]),
                 float(r["spike_latency_s"]), 1))
        add(Cell(main, "anomaly_summary", r["model"], r["device"], True, LONG_PROMPT, int(r["reference_budget"]),
                 float(r["reference_latency_s"]), 0))
    for r in _rows(folder, "cuda_comparison.csv"):
        add(Cell(main, "cuda_comparison", r["model"], "mps", True, LONG_PROMPT, int(r["budget"]),
                 float(r["mps_latency_s"]), _yes(r["anomalous_on_mps"])))
        add(Cell(main, "cuda_comparison", r["model"], "cuda", True, LONG_PROMPT, int(r["budget"]),
                 float(r["cuda_t4_latency_s"])))
    for r in _rows(folder, "instability_probe.csv"):
        add(Cell("instability_probe", "instability_probe", r["model"], r["device"], _on(r["cache"]),
                 int(r["prompt_tokens"]), int(r["budget"]), float(r["latency_s"]), int(r["regime"] == "anomalous")))
    for r in _rows(folder, "kv_ablation.csv"):
        for cache, col in ((True, "cache_on_latency_s"), (False, "cache_off_latency_s")):
            add(Cell("kv_ablation", "kv_ablation", r["model"], r["device"], cache, int(r["prompt_tokens"]),
                     int(r["budget"]), float(r[col])))
    for r in _rows(folder, "prompt_ablation.csv"):
        add(Cell("prompt_ablation", "prompt_ablation", r["model"], r["device"], _on(r["cache"]),
                 int(r["prompt_tokens"]), int(r["budget"]), float(r["latency_s"])))
    for r in _rows(folder, "memory_profile.csv"):
        key = ("kv_ablation", r["model"], r["device"], True, LONG_PROMPT, int(r["budget"]))
        out.memory[key] = float(r["peak_allocated_mb"]) * MIB
    return out


def _unique(cells: Sequence[Cell]) -> dict[Key, Cell]:
    """One cell per key; a value repeated by tables of one experiment must be the same."""
    kept: dict[Key, Cell] = {}
    for c in cells:
        old = kept.setdefault(c.key, c)
        if old.latency != c.latency:
            raise ValueError(f"tables {old.table!r} and {c.table!r} print {old.latency!r} and {c.latency!r} s for "
                             f"cell {c.key!r} of one experiment")
        if old.label < 0 <= c.label:
            kept[c.key] = Cell(**{**old.__dict__, "label": c.label})
        elif 0 <= old.label != c.label >= 0:
            raise ValueError(f"the tables label cell {c.key!r} both {old.label!r} and {c.label!r}")
    return kept


def _overlaps(kept: dict[Key, Cell]) -> list[dict[str, Any]]:
    """Cells measured by more than one experiment, with every experiment's value."""
    by_cell: dict[tuple[Any, ...], dict[str, float]] = {}
    for key, c in kept.items():
        by_cell.setdefault(key[1:], {})[key[0]] = c.latency
    out = []
    for (m, d, cache, p, b), values in sorted(by_cell.items()):
        if len(values) > 1:
            out.append({"model": m, "device": d, "cache": cache, "prompt_len": p, "budget": b, "latency_s": values})
    return out


def _sweep_json() -> str:
    grids = {
        "main_crossover": {"models": list(MODELS), "devices": ["cpu", "mps"], "cache": [True],
                           "prompt_len": [LONG_PROMPT], "budgets": "128:768:128",
                           "published": "budget 128 for every model and device; mps and the CUDA T4 baseline at "
                                        "the spikes and their neighbours"},
        "instability_probe": {"models": ["gpt2-medium"], "devices": ["mps"], "cache": [True],
                              "prompt_len": [LONG_PROMPT], "budgets": "480:656:16"},
        "kv_ablation": {"models": ["gpt2-medium"], "devices": ["mps"], "cache": [True, False],
                        "prompt_len": [LONG_PROMPT], "budgets": "128:768:128",
                        "memory": "separate memory-instrumented run, cache on"},
        "prompt_ablation": {"models": ["gpt2-medium"], "devices": ["mps"], "cache": [True],
                            "prompt_len": [3, LONG_PROMPT], "budgets": [496, 512, 624, 640]},
    }
    return json.dumps({"experiments": grids, "dtype": "float32", "runs": RUNS_PER_VALUE, "warmup": WARMUP,
                       "seed": SEED, "order": "sequential"}, sort_keys=True)


def _attrs(overlaps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "title": "Non-Monotonic Latency in Apple MPS Decoding: the published tables (5-run means)",
        "references": CITATION,
        "source": "published tables of the study, copied as printed (seconds rounded to 0.1 s, the 128-token "
                  "baseline to 0.01 s; memory in MB); not measured with decode-regimes",
        "values": "published means, not raw runs: each value is the mean of 5 measured runs after 3 warm-up runs; "
                  "trial 0 holds that mean and no per-run value was published",
        "runs_per_value": RUNS_PER_VALUE,
        "stated_spread": STATED_SPREAD,
        "experiments": "extra dim 'experiment': the study's separate experiments (sessions); main_crossover holds "
                       "the 128-token baseline, the anomaly summary and the CUDA comparison (its cuda cells are the "
                       "study's T4 baseline of the same configurations)",
        "overlaps": json.dumps(overlaps, sort_keys=True),
        "memory_source": "mem_device_peak (kv_ablation, cache on): the study's separate memory-instrumented run "
                         "of that grid, peak MPS-allocated MB x 2**20",
        "phase_split": "prefill_time / decode_time only where the study states them (instability_probe, budgets "
                       "496 and 512); NaN elsewhere",
        "unpublished": "order, worker and started_at (-1 / NaT): not published; the study ran configurations one "
                       "after another in grid order, one fresh server process per configuration",
        "hosts": "mps and cpu cells: Apple M3 Max; cuda cells: an NVIDIA T4 host (the study's CUDA baseline)",
        "platform": "macOS on Apple M3 Max (details not published)",
        "machine": "arm64",
        "host": "",  # not published (base_attrs would put this machine's name)
        "processor": "Apple M3 Max",
        "gpu_name": "Apple M3 Max (mps); NVIDIA T4 (cuda cells)",
        "os_version": "not published",
        "python_version": "not published",
        "torch_version": "2.8",
        "transformers_version": "4.57",
        "engine": "loop",
        "timing": "ends",  # whole-generation times only: the study's own per-step timings were not published
        "timing_note": "timing 'ends': the file holds the study's published whole-generation times (no step_time); "
                       "its harness timed decode steps, but only prefill / decode totals at two budgets were "
                       "published (phase_split)",
        "warmup": WARMUP,
        "isolation": "cell",
        "run_order": "sequential",
        "seed": SEED,
        "sweep": _sweep_json(),
        "command": "python datasets/build_study.py -o datasets/mps-m3max-study.nc",
        "simulated": 0,
    }


def build(folder: str | Path = STUDY_DIR) -> xr.Dataset:
    """The study as a schema dataset (validated, not written).

    Parameters
    ----------
    folder
        The folder of the CSV copy (default: ``datasets/study``).

    Returns
    -------
    xarray.Dataset
        Every schema variable with an extra leading dim ``experiment`` and
        one trial; ``status`` ok where a table gives a latency, ``not_run``
        elsewhere; extra variable ``study_label`` (int8 flags: the paper's own
        label of the cell, -1 unlabelled, 0 normal, 1 anomalous).
    """
    tables = read_tables(folder)
    kept = _unique(tables.cells)
    keys = list(kept)
    devices = sorted({k[2] for k in keys})
    prompt_lens = sorted({k[4] for k in keys})
    budgets = sorted({k[5] for k in keys})
    model_info = {m: {"n_params": N_PARAMS[m], "weights": "pretrained", "architecture": "GPT2LMHeadModel"}
                  for m in MODELS}
    one = schema.empty_dataset(models=sorted(MODELS), devices=devices, dtypes=["float32"], caches=[False, True],
                               prompt_lens=prompt_lens, budgets=budgets, trials=1, step_time=False,
                               model_info=model_info, attrs=_attrs(_overlaps(kept)))
    ds = xr.concat([one] * len(EXPERIMENTS), dim=EXPERIMENT_DIM, data_vars="all", coords="minimal",
                   compat="override", combine_attrs="override")
    ds = ds.assign_coords({EXPERIMENT_DIM: np.asarray(EXPERIMENTS, dtype=str)})
    ds[EXPERIMENT_DIM].attrs["long_name"] = "the study's experiment (measurement session) that published the value"
    for name in one.data_vars:  # concat keeps variable attrs, but be explicit about the dims' order
        ds[name] = ds[name].transpose(EXPERIMENT_DIM, *schema.SWEEP_DIMS).copy(data=ds[name].values.copy())
        ds[name].attrs = dict(one[name].attrs)
    label = np.full(tuple(ds.sizes[d] for d in (EXPERIMENT_DIM, *schema.SWEEP_DIMS)), -1, dtype=np.int8)
    arrays = {name: ds[name].values for name in ds.data_vars}
    dims = (EXPERIMENT_DIM, *schema.SWEEP_DIMS)
    index = {d: {v: i for i, v in enumerate(ds[d].values.tolist())} for d in dims}

    def at(key: Key) -> tuple[int, ...]:
        e, m, d, cache, p, b = key
        cell = {EXPERIMENT_DIM: e, "model": m, "device": d, "dtype": "float32", "cache": cache, "prompt_len": p,
                "budget": b, "trial": 0}
        # a factor the tables do not vary (e.g. attn, cache_impl of schema v2) has its one default value
        return tuple(index[dim][cell[dim]] if dim in cell else 0 for dim in dims)

    for key, cell in kept.items():
        i = at(key)
        arrays["status"][i] = schema.STATUS["ok"]
        arrays["tokens"][i] = cell.budget
        arrays["latency"][i] = cell.latency
        label[i] = cell.label
        if key == ("instability_probe", "gpt2-medium", "mps", True, LONG_PROMPT, cell.budget) \
                and cell.budget in STATED_PREFILL:
            arrays["prefill_time"][i] = STATED_PREFILL[cell.budget]
            arrays["decode_time"][i] = cell.latency - STATED_PREFILL[cell.budget]
    for key, peak in tables.memory.items():
        if key not in kept:
            raise ValueError(f"memory profile cell {key!r} has no published latency")
        arrays["mem_device_peak"][at(key)] = peak
    ds["study_label"] = (dims, label, {
        "long_name": "the paper's own label of the cell", "units": "1",
        "flag_values": np.array([-1, 0, 1], dtype=np.int8), "flag_meanings": LABEL_MEANINGS})
    ds.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return schema.validate(ds)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the dataset and write it through :func:`collector.dataset.schema.save`."""
    parser = argparse.ArgumentParser(prog="python datasets/build_study.py",
                                     description="Build the study's dataset from its published tables.")
    parser.add_argument("-o", "--output", default=None, help="netCDF file to write (default: datasets/mps-m3max-study.nc)")
    parser.add_argument("--tables", default=None, help="folder of the CSV copy (default: datasets/study)")
    args = parser.parse_args(argv)
    try:
        ds = build(args.tables or STUDY_DIR)
        path = schema.save(ds, args.output or OUTPUT)
    except (OSError, ValueError, schema.SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
