"""Simulated sweeps with planted factor-dependent regimes, for the ``collector diagnose`` tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.dataset.export import to_dataset
from collector.dataset.schema import save
from collector.sweep.journal import Journal
from collector.sweep.runner import run_sweep
from collector.sweep.spec import build_spec

#: The planted regimes of each case (collector.shared.sim.Regime fields): budgets 150-250 at prompt 32, x2.5.
CASES: dict[str, list[dict[str, Any]]] = {
    "total": [{"start": 182, "end": 250, "factor": 2.5, "onset": "total"}],  # onset at total length 182
    "static": [{"start": 150, "end": 250, "factor": 2.5, "cache_impl": "dynamic"}],  # vanishes with a static cache
    "process": [{"start": 150, "end": 250, "factor": 2.5, "seed": 0}],  # only in the processes of the sweep seeded 0
    "attn": [{"start": 150, "end": 250, "factor": 2.5, "attn": "default"},  # x1.5 with eager attention
             {"start": 150, "end": 250, "factor": 1.5, "attn": "eager"}],
    "budget": [{"start": 150, "end": 250, "factor": 2.5}],  # on the budget, everywhere
}
#: The factor each case must be diagnosed by (verdict).
NAMED: dict[str, dict[str, str]] = {
    "total": {"prompt_len": "moved"},
    "static": {"cache_impl": "vanished"},
    "process": {"process": "vanished"},
    "attn": {"attn": "moved"},
    "budget": {},
}


def sweep_file(folder: Path, regimes: Sequence[dict[str, Any]], *, budgets: Sequence[int] = tuple(range(32, 385, 32)),
               name: str = "base", noise: str | None = None) -> Path:
    """A coarse simulated sweep (gpt2, cache on, prompt 32, 3 trials, seed 0) with ``regimes`` planted, as a file;
    ``noise``: a preset of :func:`collector.shared.sim.noise_presets` (noise fitted to real measurements) instead of the
    simulator's round defaults."""
    from collector.shared.sim import noise_presets

    out = folder / f"{name}.nc"
    sim = {"regimes": list(regimes), **(noise_presets()[noise] if noise else {})}
    spec = build_spec({"models": "gpt2", "devices": "sim", "budgets": list(budgets), "prompt_lens": [32],
                       "caches": "on", "trials": 3, "seed": 0, "sim": sim, "output": str(out)})
    with Journal.create(folder / f"{name}.journal", spec=spec.to_dict(), environment={}, command="test") as j:
        run_sweep(spec, j)
        ds = to_dataset(j)
    save(ds, out)
    return out
