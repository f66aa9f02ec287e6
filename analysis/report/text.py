"""The words of the report: environment and protocol rows, and the glossary in plain language."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from analysis.core.labels import clean_text, is_simulated, scalar
from analysis.registry import ANALYSES, REGIMES

__all__ = ["GLOSSARY", "SECTIONS", "SECTION_INTROS", "environment_rows", "protocol_rows"]

_ENV = (("platform", "platform"), ("machine", "machine"), ("processor", "processor"), ("gpu_name", "GPU / chip"),
        ("os_version", "OS"), ("python_version", "Python"), ("torch_version", "torch"),
        ("transformers_version", "transformers"), ("package_version", "decode-regimes"), ("created", "created"),
        ("schema_version", "schema version"))
_PROTOCOL = (("engine", "engine"), ("timing", "timing"), ("warmup", "warm-up runs per cell"),
             ("isolation", "isolation"), ("run_order", "run order"), ("seed", "seed"), ("command", "command"))

#: Plain-language explanations of the statistical words the report uses.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("regime", "A run of consecutive budgets whose latency departs from the expected scaling by the same factor, "
               "reproducibly across trials. A regime starts at its first budget and ends at its last."),
    ("baseline / expected scaling", "What latency would be if nothing unusual happened: a smooth curve in the "
     "budget (linear with the KV cache, quadratic without), fitted robustly so that regimes do not bend it."),
    ("effect", "How much slower (or faster) a regime is: the median of its runs' latency divided by the baseline. "
               "x5.00 means five times the expected latency."),
    ("CI (confidence interval)", "The range the true value lies in with 95% confidence, given the noise between "
     "trials. Narrow means well measured; a ratio whose CI excludes 1 has changed."),
    ("p and q", "p is the probability of seeing a difference at least this large by chance alone. Many tests are "
                "made at once, so p is corrected into q (Benjamini-Hochberg): among the findings with q below 0.05, "
                "at most about 5% are expected to be false alarms."),
    ("boundary interval", "Where a regime's start or end could lie: every boundary whose step fits the runs "
     "about as well as the chosen one (a 95% confidence set). Shown as bars along the top of the figures."),
    ("reproducible", "The share of trials in which the regime shows up on its own. A single slow run, or one whole "
                     "trial that ran slow, is noise, not a regime."),
    ("confounded", "The runs of a regime were executed close together in time, so a slow period of the machine "
                   "(another job, heat, power state) would look exactly the same. Budget and time cannot be "
                   "separated; re-run those budgets interleaved in random order."),
    ("smallest detectable effect", "The ratio a regime of one (or four) budgets inside the sweep needs to be found "
     "80% of the time, simulated through the whole decision rule on the series' own noise, for a regime alone "
     "among the dataset's series. Smaller regimes are found less often (the power curve says how often), not never."),
    ("method", "Every interval of budgets is scanned for a step against a smooth curve; the strongest is tested "
               "against the same scan on noise drawn from the series' own runs, then the next, step by step."),
    ("KV speedup and collapse", "Latency without the KV cache divided by latency with it. A collapse is an "
     "interval where this speedup falls significantly below its trend."),
    ("decode share", "Of a regime's extra time, the part spent in the decode phase (the token-by-token steps) "
                     "rather than in the prefill (the prompt's forward pass)."),
    ("inversion", "A smaller budget that takes significantly longer than a larger one: generating more tokens "
                  "should never take less time."),
    ("simulated", "Data drawn from the package's latency model, not measured on a machine. Useful to check the "
                  "statistics, never evidence about hardware."),
)

#: Section id -> (title, the one sentence under it: the question it answers): the regimes, then the report's own
#: section on execution order, then every other analysis of :data:`analysis.registry.ANALYSES`.
SECTIONS: dict[str, tuple[str, str]] = {
    **{a.key: (a.title, a.intro) for a in ANALYSES if a.name == REGIMES},
    "drift": ("Execution order and drift", "Could a slow period of the machine explain a regime? Runs in execution "
              "order."),
    **{a.key: (a.title, a.intro) for a in ANALYSES if a.name != REGIMES},
}
#: Section id -> its question.
SECTION_INTROS: dict[str, str] = {k: intro for k, (_, intro) in SECTIONS.items()}


def _attr(ds: xr.Dataset, key: str) -> str:
    v = ds.attrs.get(key)
    return "" if v is None else clean_text(v)


def environment_rows(ds: xr.Dataset, sources: list[str]) -> list[tuple[str, str]]:
    """``(name, value)`` of the machine and software that measured ``ds`` (attrs that are present)."""
    rows = [("data", "SIMULATED (not a measurement)" if is_simulated(ds.attrs) else "measured")]
    if sources:
        rows.append(("files", ", ".join(clean_text(s) for s in sources)))
    if _attr(ds, "title"):
        rows.append(("title", _attr(ds, "title")))
    rows += [(label, _attr(ds, key)) for key, label in _ENV if _attr(ds, key)]
    return rows


def protocol_rows(ds: xr.Dataset) -> list[tuple[str, str]]:
    """``(name, value)`` of how ``ds`` was measured: protocol attrs, the grid, and the run counts."""
    rows = [(label, _attr(ds, key)) for key, label in _PROTOCOL if _attr(ds, key)]
    for d in ds.dims:
        if d == "step":
            continue
        values = ds[d].values if d in ds.coords else np.arange(ds.sizes[d])
        shown = [clean_text(scalar(v)) for v in values[:12]]
        more = f" ... ({len(values)} values)" if len(values) > 12 else ""
        rows.append((str(d), ", ".join(shown) + more))
    if "status" in ds:
        st = np.asarray(ds["status"].values)
        values = np.asarray(ds["status"].attrs.get("flag_values", [0, 1, 2, 3, 4])).tolist()
        names = str(ds["status"].attrs.get("flag_meanings", "ok error oom timeout not_run")).split()
        counts: dict[str, Any] = {n.replace("_", " "): int((st == v).sum()) for v, n in zip(values, names)}
        shown = [f"{c} {n}" for n, c in counts.items() if c or n == "ok"]
        rows.append(("runs", ", ".join(shown)))
    return rows
