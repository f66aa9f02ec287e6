"""The summary counts the trials each series has, not the length of a combined file's trial axis."""

from __future__ import annotations

import warnings

import numpy as np

from analysis import regimes
from analysis.synthetic import make_dataset


def test_trials_per_series_are_counted_from_the_runs_with_a_value() -> None:
    ds = make_dataset(1, models=("gpt2",), caches=(False, True), trials=3, step_time=False)
    lat = ds["latency"].copy()
    lat.loc[{"cache": False, "trial": [1, 2]}] = np.nan  # that series ran once per cell
    ds["latency"] = lat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = regimes(ds, n_perm=20)
    assert (r.attrs["n_trials"], r.attrs["trials_min"], r.attrs["trials_max"]) == (3, 1, 3)
    first = r.attrs["summary"].splitlines()[0]
    assert "1-3 trials per series" in first
    assert any(line.startswith("Fewer than 3 trials") for line in r.attrs["summary"].splitlines())
