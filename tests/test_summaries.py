"""Summaries that say what the data hold: no memory split without memory data, no empty budget in a collapse."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

import analysis
from analysis import synthetic


def _quiet(fn, *a, **kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def test_memory_effect_without_memory_data_says_so() -> None:
    # failed before: "memory explains 0% of the excess; the regime adds 98%" with no memory reading in the series
    ds = synthetic.make_dataset(seed=0)
    for name in analysis.questions.memory.MEMORY_VARS:
        if name in ds:
            ds[name] = ds[name] * np.nan
    mem = _quiet(analysis.memory_effect, ds)
    assert bool(mem["has_regime"].any())
    text = mem.attrs["summary"]
    assert text.startswith("memory_effect: no usable memory data in the ") and "no covariate of" in text
    assert "memory explains 0%" not in text and "no memory data in its runs" in text


def test_memory_effect_on_the_study_names_series_with_and_without_readings() -> None:
    mem = _quiet(analysis.memory_effect, analysis.open_dataset("mps-m3max-study"))
    lines = mem.attrs["summary"].splitlines()
    assert "1 with readings the fit could not use, 6 without readings" in lines[0]  # 7 series with a regime
    assert "memory explains 0%" not in mem.attrs["summary"]
    kv_on = [ln for ln in lines if ln.startswith("experiment=kv_ablation/gpt2-medium/mps/cache=True")]
    assert len(kv_on) == 1 and "memory readings, but too few runs" in kv_on[0]


def test_kv_speedup_collapse_counts_only_measured_budgets() -> None:
    # failed before: on the study file the kv_ablation collapse listed 512..624 (8 budgets), though that
    # experiment measured only 512 among them; the others are the probe's budgets, empty in this series
    kv = _quiet(analysis.kv_speedup, analysis.open_dataset("mps-m3max-study"))
    one = kv.sel(experiment="kv_ablation", model="gpt2-medium", device="mps", prompt_len=65).squeeze(drop=True)
    assert int(one["n_collapsed"]) == 1 and bool(one["collapse"].sel(budget=512))
    assert not bool((one["collapse"] & one["speedup"].isnull()).any())
    assert float(one["collapse_start"]) == float(one["collapse_end"]) == 512.0
    assert "collapses to 1.9x at budgets 512\n" in kv.attrs["summary"] + "\n"


def test_kv_speedup_summary_counts_series_with_runs_only() -> None:
    # failed before: "(95 more series lack cache on or off at every budget)" on the study, counting the
    # experiment x model x device combinations that hold no run at all
    kv = _quiet(analysis.kv_speedup, analysis.open_dataset("mps-m3max-study"))
    head = kv.attrs["summary"].splitlines()[0]
    lat = analysis.open_dataset("mps-m3max-study")["latency"]
    per_cache = lat.notnull().any(["budget", "trial"])
    one_side = int((per_cache.any("cache") & ~per_cache.all("cache")).sum())
    assert head == (f"KV-cache speedup: 1 of 1 series collapse below their trend ({one_side} more series lack "
                    "cache on or off at every budget)")
    assert isinstance(kv, xr.Dataset)
