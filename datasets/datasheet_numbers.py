"""Recompute the numbers that datasets/README.md quotes for the measured datasets.

    python datasets/datasheet_numbers.py                  # every published sweep of ours
    python datasets/datasheet_numbers.py cuda-h200-gpt2   # one, by short name

Data numbers (pure arithmetic on the file, no statistics):

* noise: per cell, the coefficient of variation over trials (sample standard
  deviation, ddof 1, over the mean of the ok runs); per series its median over
  budgets; the range of that median over the series;
* per-token decode time: per cell the median over trials of
  ``decode_time / (budget - 1)`` (the prefill yields the first token); its
  range over the cells of each model (both cache settings, every budget);
* KV-cache ratio: per cell ``mean(latency, cache off) / mean(latency, cache
  on)`` over trials (the ratio :func:`analysis.kv_speedup` reports); its range.

Then the analyses' own summaries (regimes, monotonicity, kv_speedup,
compare_backends, step_regimes) with their defaults, which move with the
statistics.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import xarray as xr

__all__ = ["DataNumbers", "data_numbers", "main"]

#: Published sweeps of ours (the study's tables have their own document, docs/reproduce-study.md).
SWEEPS: tuple[str, ...] = ("cuda-h200-gpt2", "cuda-h200-opt-bloom", "cpu-xeon16-gpt2-opt")


@dataclass(frozen=True)
class DataNumbers:
    """The data numbers of one dataset (see the module docstring)."""

    n_ok: int
    n_trials: int
    cv_range: tuple[float, float]  # fractions
    per_token_ms: dict[str, tuple[float, float]]
    kv_ratio: tuple[float, float]


def data_numbers(ds: xr.Dataset) -> DataNumbers:
    """The data numbers of ``ds`` (a schema dataset with cache on and off)."""
    ok = ds["status"] == 0
    lat = ds["latency"].where(ok)
    cv = (lat.std("trial", ddof=1) / lat.mean("trial")).median("budget")
    tok = (ds["decode_time"].where(ok) / (ds["budget"] - 1)).median("trial")
    per_token = {str(m): (float(tok.sel(model=m).min()) * 1e3, float(tok.sel(model=m).max()) * 1e3)
                 for m in ds["model"].values.tolist()}
    mean = lat.mean("trial")
    kv = mean.sel(cache=False) / mean.sel(cache=True)
    return DataNumbers(
        n_ok=int(ok.sum()), n_trials=int(ds.sizes["trial"]), cv_range=(float(cv.min()), float(cv.max())),
        per_token_ms=per_token, kv_ratio=(float(kv.min()), float(kv.max())),
    )


def report(name: str) -> str:
    """The data numbers and the analyses' summaries of the published dataset ``name``."""
    import analysis

    ds = analysis.open_dataset(name)
    n = data_numbers(ds)
    lines = [f"== {name}: {n.n_ok} ok runs, {n.n_trials} trials",
             f"median per-cell CV over trials (ddof 1), range over series: {n.cv_range[0]:.1%} - {n.cv_range[1]:.1%}"]
    lines += [f"per-token decode time, {m}: {lo:.1f}-{hi:.1f} ms" for m, (lo, hi) in n.per_token_ms.items()]
    lines.append(f"cache off / cache on (trial means): {n.kv_ratio[0]:.2f}-{n.kv_ratio[1]:.2f}x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = analysis.regimes(ds)
        for title, result in (("regimes", reg), ("monotonicity", analysis.monotonicity(ds)),
                              ("kv_speedup", analysis.kv_speedup(ds, reg=reg)),
                              ("compare_backends", analysis.compare_backends(ds, reg=reg)),
                              ("step_regimes", analysis.step_regimes(ds))):
            lines += [f"-- {title}", str(result.attrs.get("summary", ""))]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the numbers of the named (default: every) published sweep."""
    parser = argparse.ArgumentParser(prog="python datasets/datasheet_numbers.py", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(SWEEPS), help="published dataset names (default: ours)")
    args = parser.parse_args(argv)
    for name in args.names:
        print(report(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
