"""analysis.regimes judged on real measurements: null rate, p-value calibration, regimes planted into real noise.

Data: every measured file of the real null corpus (``tests/data/real/*.nc``,
collected with ``benchmarks/corpus/collect_*.sh``) and the published measured
CUDA sweeps (``datasets/cuda-*.nc``). None of them has a regime (CPU and CUDA
show none), so

* **null rate**: share of series with any anomalous budget (and their count);
* **calibration**: share of series whose scan p-value (``p_series``: is there a
  step anywhere?) is below 0.05 and 0.01, on the files as measured and after
  shuffling each series' runs over its cells (exchangeable noise with the
  file's own run distribution: an exact test gives uniform p-values there);
* **short sweeps**: the same for ``tests/data/real/quick/*.nc`` (the test
  suite's sweep of the tiny preset, 6 budgets, 2 trials), reported apart;
* **semi-synthetic accuracy**: a regime is planted into every series of a file
  (:func:`analysis.planting.plant`: the decode phase of every trial inside the
  interval is multiplied by the factor; onset on the budget from step 0, or
  onset on the total length from half-way through each generation), at a random
  position, for factors 1.2, 1.5, 2, 5, 21 and widths 1-8 budgets (at most just under
  half the series' budgets: a regime is a minority of the sweep). Boundary F1
  (+-1 budget step) and cell F1 against the planted truth (cells whose latency the plant
  moved by less than half the factor, in log units, are not scored), by trial count,
  with the median minimum detectable ratio (``mde``, ``mde_4``) that
  :func:`analysis.regimes` reported for those series.

Usage::

    python benchmarks/regimes_real.py [--reps 1] [--jobs 2] [--write]

``--write`` puts the tables into docs/performance.md ("## Regimes on real measurements") and the
p-value QQ plot into docs/figures/regimes-real-pvalues.png.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402
from regimes_accuracy import boundaries, match  # noqa: E402  (the same scoring as the sim table)

FACTORS = (1.2, 1.5, 2.0, 5.0, 21.0)
WIDTHS = (1, 2, 4, 8)
MODES = (("budget", 0), ("total", 0.5))
COMMAND = "python benchmarks/regimes_real.py --reps {reps} --jobs {jobs} --write"
#: Bins of the series' own minimum detectable ratio over one budget for the table by noise.
MDE_BINS: tuple[tuple[float, float], ...] = ((0.0, 1.3), (1.3, 1.5), (1.5, 2.0), (2.0, float("inf")))
#: A file is quiet when the median minimum detectable ratio (one budget) of its series is at most this.
QUIET_MDE = 1.3
#: Shuffles per file for the exactness check (runs permuted over the cells of their series).
PERMUTED_REPS = 2
#: The p-value QQ figure, relative to docs/performance.md.
QQ_FIGURE = "figures/regimes-real-pvalues.png"


def corpus_files() -> list[str]:
    """The measured null files: the corpus and the published CUDA sweeps."""
    return sorted(glob.glob(str(ROOT / "tests" / "data" / "real" / "*.nc"))) + sorted(
        glob.glob(str(ROOT / "datasets" / "cuda-*.nc")) + glob.glob(str(ROOT / "datasets" / "cpu-*.nc")))


def quick_files() -> list[str]:
    """The short sweeps of the tiny preset (``tests/data/real/quick/``): a stress case, reported apart."""
    return sorted(glob.glob(str(ROOT / "tests" / "data" / "real" / "quick" / "*.nc")))


def _open(path: str):
    import analysis

    ds = analysis.open_dataset(path)
    return ds.load()


def null_stats(path: str) -> dict:
    """Regimes on one measured null file: flagged series and every series' scan p-value."""
    from analysis.detect.summary import iter_segments, segment_line
    from analysis.regimes import regimes

    warnings.simplefilter("ignore")
    ds = _open(path)
    r = regimes(ds)
    flagged = r["anomalous"].any("budget")
    lines = [segment_line(r, i, j) for i, j in iter_segments(r, only_anomalous=True)]
    return {
        "file": Path(path).name, "series": int(flagged.size), "flagged": int(flagged.sum()), "lines": lines,
        "p": np.asarray(r["p_series"].values, dtype=float).ravel().tolist(),
        "noise": np.asarray(r["noise"].values, dtype=float).ravel().tolist(),
        "mde": np.asarray(r["mde"].values, dtype=float).ravel().tolist(),
        "trials": int(ds.sizes["trial"]),
    }


def permuted_p(job: tuple[str, int]) -> list[float]:
    """Scan p-values of a file's series after permuting each series' runs over its cells, ``reps`` times.

    The runs' log ratios to the baseline ``regimes`` fitted are shuffled over the (budget, trial) cells of
    their series and put back on that baseline: noise that is exchangeable by construction, with the
    file's own run distribution (tails, slow states). An exact test gives uniform p-values here.
    """
    from analysis.regimes import regimes

    warnings.simplefilter("ignore")
    path, reps = job
    ds = _open(path)
    base = regimes(ds)["baseline"]
    e = np.log(ds["latency"] / base).transpose(..., "budget", "trial")
    E = e.values.reshape(-1, e.sizes["budget"] * e.sizes["trial"])
    rng = np.random.default_rng(list(Path(path).name.encode()))
    out: list[float] = []
    for _ in range(reps):
        shuffled = E.copy()
        for row in shuffled:
            ok = np.isfinite(row)
            row[ok] = rng.permutation(row[ok])
        again = ds.copy()
        again["latency"] = (base * np.exp(e.copy(data=shuffled.reshape(e.shape)))).transpose(*ds["latency"].dims)
        out += np.asarray(regimes(again)["p_series"].values, dtype=float).ravel().tolist()
    return out


def plant_stats(job: tuple[str, float, int, str, float, int]) -> dict:
    """Plant one regime per series of a file at a seeded random position; score the detection."""
    from analysis.planting import plant
    from analysis.regimes import regimes

    warnings.simplefilter("ignore")
    path, factor, width, onset, from_step, rep = job
    ds = _open(path)
    budgets = ds["budget"].values
    nb = budgets.size
    rng = np.random.default_rng([rep, int(factor * 100), width, MODES.index((onset, from_step)), nb])
    # a regime is a minority of the sweep: with half the budgets or more slow, which part is the baseline
    # cannot be told from the data (a width-8 plant at one end of 16 budgets is a 50/50 split)
    w = min(width, (nb - 1) // 2)
    i0 = int(rng.integers(0, nb - w + 1))
    lo, hi = int(budgets[i0]), int(budgets[i0 + w - 1])
    if onset == "total":
        pl = ds["prompt_len"].values
        lo, hi = lo + int(pl.min()), hi + int(pl.min())  # one prompt length per series in the corpus
    planted = plant(ds, lo, hi, factor, onset=onset, from_step=from_step)
    r = regimes(planted)
    truth = planted["truth_anomalous"].any("trial").transpose(*r["anomalous"].dims).values
    # the plant multiplies the decode phase only: where the decode is a small share of a run (budget 2: one
    # decode token after the prefill) a planted cell's latency barely moves. Such cells are not scored
    # (neither a miss nor a false alarm): a cell is planted truth when its mean latency moved by at least
    # half the factor in log units (x2.24 of x5, x1.22 of x1.5, x1.10 of x1.2).
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = np.log(planted["latency"].mean("trial") / ds["latency"].mean("trial"))
    moved = moved.transpose(*r["anomalous"].dims).values
    weak = truth & ~(moved >= 0.5 * np.log(factor))
    truth = truth & ~weak
    found = r["anomalous"].values & ~weak
    T = truth.reshape(-1, nb)
    F = found.reshape(-1, nb)
    keep = T.any(axis=1)  # series whose planted cells have data
    T, F = T[keep], F[keep]
    btp = bfp = bfn = 0
    for t, f in zip(T, F):
        tb, fb = boundaries(t), boundaries(f)
        m = match(tb, fb)
        btp, bfp, bfn = btp + m, bfp + len(fb) - m, bfn + len(tb) - m
    return {
        "file": Path(path).name, "trials": int(ds.sizes["trial"]), "factor": factor, "width": width,
        "mode": f"{onset}/{from_step:g}", "edge": bool(i0 == 0 or i0 + w == nb), "ctp": int((T & F).sum()),
        "cfp": int((~T & F).sum()), "cfn": int((T & ~F).sum()), "btp": btp, "bfp": bfp, "bfn": bfn, "series": int(keep.sum()),
        "weak": int(weak.sum()),
        # every cell of the file has all its trials (no run stopped at a deadline or missing)
        "complete": bool(np.isfinite(ds["latency"].values).all()),
        "found": int(F.any(axis=1).sum()),
        "mde": np.asarray(r["mde"].values, dtype=float).reshape(-1)[keep].tolist(),
        "mde_4": np.asarray(r["mde_4"].values, dtype=float).reshape(-1)[keep].tolist(),
        # per series (tp, fp, fn) of cells, for the F1 of the series whose reported mde says it could be seen
        "per_series": [(int((t & f).sum()), int((~t & f).sum()), int((t & ~f).sum())) for t, f in zip(T, F)],
    }


def reachable(rows: list[dict]) -> tuple[float, int, int]:
    """Cell F1 over the planted series whose own ``mde`` (one budget for widths below 4, four budgets
    from 4 on) is at most the planted factor, with their count and the count of all series."""
    tp = fp = fn = n = total = 0
    for r in rows:
        for k, (a, b, c) in enumerate(r["per_series"]):
            total += 1
            limit = (r["mde"] if r["width"] < 4 else r["mde_4"])[k]
            if np.isfinite(limit) and limit <= r["factor"]:
                tp, fp, fn, n = tp + a, fp + b, fn + c, n + 1
    return f1(tp, fp, fn), n, total


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else float("nan")


def _group(rows: list[dict], key) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _cell_f1(rows: list[dict]) -> str:
    """Cell F1 of the pooled rows, two decimals."""
    return f"{f1(sum(r['ctp'] for r in rows), sum(r['cfp'] for r in rows), sum(r['cfn'] for r in rows)):.2f}"


def _cell(rows: list[dict]) -> str:
    """Boundary F1 / cell F1 of the pooled rows."""
    b = f1(sum(r["btp"] for r in rows), sum(r["bfp"] for r in rows), sum(r["bfn"] for r in rows))
    return f"{b:.2f} / {_cell_f1(rows)}"


def _shares(p: list[float] | np.ndarray, count: bool = True) -> str:
    """The shares of the finite p-values below 0.05 and 0.01 (and their count)."""
    a = np.asarray(p, dtype=float)
    a = a[np.isfinite(a)]
    text = f"{np.mean(a < 0.05):.3f} below 0.05 and {np.mean(a < 0.01):.3f} below 0.01"
    return f"{text} ({a.size} p-values)" if count else text


def render(nulls: list[dict], plants: list[dict], elapsed: float, reps: int, jobs: int,
           quick: list[dict] | None = None, permuted: tuple[list[float], list[float]] | None = None) -> str:
    out = _null_section(nulls, elapsed, reps, jobs, permuted)
    out += _quick_section(quick)
    out += _planted_intro(plants)
    out += _planted_tables(plants, reps)
    out += _complete_files(plants)
    out += _by_trials(nulls, plants)
    out += _by_noise(plants)
    out += _quiet_files(nulls, plants)
    out += _by_device_position_mode(plants)
    return "\n".join(out)


def _null_section(nulls: list[dict], elapsed: float, reps: int, jobs: int,
                  permuted: tuple[list[float], list[float]] | None) -> list[str]:
    """The data, the null rate per file, the scan p-values (QQ plot), flagged series and the permuted check."""
    n_series = sum(n["series"] for n in nulls)
    n_flag = sum(n["flagged"] for n in nulls)
    p = np.array([x for n in nulls for x in n["p"]], dtype=float)
    p = p[np.isfinite(p)]
    noise = np.array([x for n in nulls for x in n["noise"]], dtype=float)
    out = [
        f"Measured with `{COMMAND.format(reps=reps, jobs=jobs)}` ({elapsed / 60:.1f} min on a shared 2-core VM). "
        "Data: every measured null file, none with a regime: the corpus in `tests/data/real/` (collected with "
        "`benchmarks/corpus/collect_gpu.sh` on 4 H100s and, for the 10-trial files, 2 H200s, "
        "`benchmarks/corpus/collect_cpu.sh` here and "
        "`benchmarks/corpus/collect_cpu_host.sh` on a 16-core Xeon; see tests/data/real/README.md) and the "
        "published sweeps `datasets/cuda-*.nc` and `datasets/cpu-*.nc`. The noise is real: "
        f"per-run sd of log latency {np.nanmin(noise):.3f} to {np.nanmax(noise):.3f} (median {np.nanmedian(noise):.3f}) "
        "over the series, with run-level slow states, drift and missing runs.",
        "",
        "### Null rate and calibration",
        "",
        "| file | trials | series | flagged | median mde (1 budget) |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in nulls:
        out.append(f"| {n['file']} | {n['trials']} | {n['series']} | {n['flagged']} | x{np.nanmedian(n['mde']):.2f} |")
    out += [
        f"| **all** | | **{n_series}** | **{n_flag}** ({n_flag / max(n_series, 1):.1%}) | |",
        "",
        f"Scan p-values of the {p.size} series (`p_series`, the test of \"a step anywhere\"): "
        f"{_shares(p, count=False)} (uniform: 0.05 and 0.01). "
        f"Against the uniform distribution (`analysis.plot.pvalue_qq`; points above the band would be a liberal "
        f"test):",
        "",
        f"![QQ plot of the {p.size} scan p-values of the null corpus against the uniform distribution]({QQ_FIGURE})",
    ]
    flagged = [line for n in nulls for line in n["lines"]]
    if flagged:
        out += ["", "Flagged null series:", ""] + [f"- {line}" for line in flagged]
    if permuted and permuted[0]:
        out += ["", "Is the test exact? The same analysis after shuffling each series' runs over its cells (log "
                f"ratios to the fitted baseline, {PERMUTED_REPS} shuffles per file: exchangeable noise with the file's own "
                f"tails and slow states): corpus {_shares(permuted[0])}"
                + (f"; short tiny-preset sweeps (below) {_shares(permuted[1])}." if permuted[1] else ".")]
    return out


def _quick_section(quick: list[dict] | None) -> list[str]:
    """The short sweeps of the tiny preset, reported apart (nothing when there are none)."""
    if not quick:
        return []
    q_series = sum(n["series"] for n in quick)
    q_flag = sum(n["flagged"] for n in quick)
    q_files = sum(1 for n in quick if n["flagged"])
    out = [
        "",
        "#### Short sweeps of the tiny preset (a stress case, reported apart)",
        "",
        f"`tests/data/real/quick/`: {len(quick)} sweeps as the test suite runs them (`tiny-gpt2`, budgets 4-24, "
        "2 trials, cache on and off, runs of 3 to 20 ms, one process each), every other one beside a busy loop "
        "(`bash benchmarks/corpus/collect_cpu.sh OUTDIR quick`). Series flagged: "
        f"**{q_flag} of {q_series}** ({q_flag / max(q_series, 1):.1%}), in {q_files} of the {len(quick)} sweeps; "
        f"scan p-values {_shares([x for n in quick for x in n['p']])}. Why these are not in the table above "
        "and what a single sweep cannot tell: docs/methods.md (\"Cell effects within one process\").",
    ]
    lines = [f"{n['file']}: {line}" for n in quick for line in n["lines"]]
    if lines:
        out += ["", "Flagged:", ""] + [f"- {line}" for line in lines]
    return out


def _planted_intro(plants: list[dict]) -> list[str]:
    """The heading and what the tables of planted regimes show."""
    return [
        "",
        "### Regimes planted into real noise",
        "",
        "Boundary F1 / cell F1, by planted factor (rows) and width in budgets (columns); both plant modes "
        "(onset on the budget from step 0; onset on the total length from half-way through each generation) "
        "pooled; `mde` is the median minimum "
        "detectable ratio that `regimes` reported for the same series (one budget / four budgets). The last "
        "column keeps only the planted series whose own reported `mde` (over one budget for widths 1-2, over "
        "four from width 4) is at most the planted factor: where `regimes` said a regime of that size could be "
        "seen, was it? (Onset on the total length from half-way multiplies only part of each run's decode, so "
        "its effect on latency is smaller than the factor: those plants are harder than the column assumes.) "
        "A planted cell whose mean latency moved by less than half the factor in log units (the decode is a "
        f"small share of its runs, as at budget 2) is not scored: {sum(r['weak'] for r in plants)} such cells "
        f"of {sum(r['weak'] + r['ctp'] + r['cfn'] for r in plants)} planted.",
        "",
    ]


def _planted_tables(plants: list[dict], reps: int) -> list[str]:
    """Boundary / cell F1 by factor and width, for files of 2 trials and of 3 or more."""
    out: list[str] = []
    for label, sel in (("2 trials", lambda r: r["trials"] == 2), ("3 or more trials", lambda r: r["trials"] >= 3)):
        rows = [r for r in plants if sel(r)]
        if not rows:
            continue
        files = sorted({r["file"] for r in rows})
        n_ser = sum(r["series"] for r in rows if r["factor"] == FACTORS[0] and r["width"] == WIDTHS[0]
                    and r["mode"] == "budget/0")
        mde = np.nanmedian([x for r in rows for x in r["mde"]])
        mde4 = np.nanmedian([x for r in rows for x in r["mde_4"]])
        out += [f"**{label}** ({len(files)} files, {n_ser} series per plant, x{reps} positions; median mde "
                f"x{mde:.2f} over one budget, x{mde4:.2f} over four):", ""]
        out.append("| factor | " + " | ".join(f"w={w}" for w in WIDTHS)
                   + " | all widths | series found | cell F1 where mde <= factor (series) |")
        out.append("|---|" + "---|" * (len(WIDTHS) + 3))
        for fac in FACTORS:
            fr = [r for r in rows if r["factor"] == fac]
            by_w = _group(fr, lambda r: r["width"])
            found = sum(r["found"] for r in fr) / max(sum(r["series"] for r in fr), 1)
            rf, rn, rt = reachable(fr)
            out.append(f"| {fac:g}x | " + " | ".join(_cell(by_w.get(w, [])) if w in by_w else "" for w in WIDTHS)
                       + f" | **{_cell(fr)}** | {found:.0%} | {rf:.2f} ({rn} of {rt}) |")
        out.append("")
    return out


def _complete_files(plants: list[dict]) -> list[str]:
    """Cell F1 by factor over the files in which every cell has all its trials."""
    full = [r for r in plants if r["trials"] >= 3 and r["complete"]]
    if not full:
        return []
    return [f"Complete files only (every cell has all its trials: {len({r['file'] for r in full})} of the "
            "files with 3 or more trials; in the others, sweeps stopped at a deadline left cells with one or "
            "two runs, and one slow run landing in a one-run cell is as likely by chance as a regime there), "
            "cell F1 by factor, all widths: " + "; ".join(
                f"{fac:g}x {_cell_f1([r for r in full if r['factor'] == fac])}" for fac in FACTORS)
            + ".", ""]


def _by_trials(nulls: list[dict], plants: list[dict]) -> list[str]:
    """Cell F1 by factor and the trial count of the file, with the noise and mde of its series."""
    by_trials = _group(plants, lambda r: r["trials"])
    out = ["What more trials buy: cell F1 (all widths, both plant modes) by the trial count of the file, with the "
           "median per-run noise (sd of log latency) and `mde` of those series; the 10-trial files were measured "
           "on a host whose per-run noise was 0.16-0.24.", "",
           "| trials | files | series | noise | mde (1 / 4 budgets) | " + " | ".join(f"{f:g}x" for f in FACTORS) + " |",
           "|---:|---:|---:|---:|---|" + "---:|" * len(FACTORS)]
    for t, rows in sorted(by_trials.items()):
        names = {r["file"] for r in rows}
        n_ser = sum(n["series"] for n in nulls if n["file"] in names)
        noise_t = np.nanmedian([x for n in nulls if n["file"] in names for x in n["noise"]])
        mde1 = np.nanmedian([x for r in rows for x in r["mde"]])
        mde4 = np.nanmedian([x for r in rows for x in r["mde_4"]])
        out.append(f"| {t} | {len(names)} | {n_ser} | {noise_t:.3f} | x{mde1:.2f} / x{mde4:.2f} | " + " | ".join(
            _cell_f1([r for r in rows if r["factor"] == f]) for f in FACTORS) + " |")
    out.append("")
    return out


def _by_noise(plants: list[dict]) -> list[str]:
    """Cell F1 by factor for series grouped by their own reported mde over one budget (3 or more trials)."""
    out = ["By the noise of the series (3 or more trials): cell F1 by planted factor, all widths and both plant "
           "modes, for series grouped by their own reported `mde` over one budget (the smallest step a single budget "
           "could show, as `regimes` reported it on the planted data); `planted series` counts series x plants "
           "over all factors. Accuracy follows the noise of the measurements.", "",
           "| series' mde (1 budget) | planted series | " + " | ".join(f"{f:g}x" for f in FACTORS) + " |",
           "|---|---:|" + "---:|" * len(FACTORS)]
    for lo, hi in MDE_BINS:
        counts = {f: [0, 0, 0] for f in FACTORS}
        n_ser = 0
        for r in plants:
            if r["trials"] < 3:
                continue
            for k, tfn in enumerate(r["per_series"]):
                if lo <= r["mde"][k] < hi:
                    counts[r["factor"]] = [x + y for x, y in zip(counts[r["factor"]], tfn)]
                    n_ser += 1
        label = f"below x{hi:g}" if lo <= 0 else (f"x{lo:g} and above" if not np.isfinite(hi) else f"x{lo:g} to x{hi:g}")
        out.append(f"| {label} | {n_ser} | " + " | ".join(f"{f1(*counts[f]):.2f}" for f in FACTORS) + " |")
    out.append("")
    return out


def _quiet_files(nulls: list[dict], plants: list[dict]) -> list[str]:
    """Cell F1 by factor and plant mode over the files whose series could show a small step."""
    quiet = sorted(n["file"] for n in nulls if n["trials"] >= 3 and np.nanmedian(n["mde"]) <= QUIET_MDE)
    if not quiet:
        return []
    qrows = [r for r in plants if r["file"] in quiet]
    return [f"Quiet files: the {len(quiet)} files with 3 or more trials whose series could show a step of "
            f"x{QUIET_MDE:g} over one budget (median `mde` of their series in the null analysis above: "
            + ", ".join(f"`{q}`" for q in quiet) + "), cell F1 by factor: onset on the budget from step 0: "
            + "; ".join(f"{f:g}x {_cell_f1([r for r in qrows if r['factor'] == f and r['mode'] == 'budget/0'])}"
                        for f in FACTORS)
            + "; onset on the total length from half-way (part of each run's decode, a smaller effect): "
            + "; ".join(f"{f:g}x {_cell_f1([r for r in qrows if r['factor'] == f and r['mode'] != 'budget/0'])}"
                        for f in FACTORS) + ".", ""]


def _by_device_position_mode(plants: list[dict]) -> list[str]:
    """Boundary / cell F1 by device, by position of the plant and by plant mode (3 or more trials, factors >= 1.5)."""
    out: list[str] = []
    by_mode = _group([r for r in plants if r["trials"] >= 3 and r["factor"] >= 1.5], lambda r: r["mode"])
    by_dev = _group([r for r in plants if r["trials"] >= 3 and r["factor"] >= 1.5],
                    lambda r: "CPU" if r["file"].startswith("cpu") else "CUDA")
    if by_dev:
        out += ["By device (3 or more trials, factors >= 1.5, all widths): " + "; ".join(
            f"{k}: {_cell(v)}" for k, v in sorted(by_dev.items())) + "."]
    by_edge = _group([r for r in plants if r["trials"] >= 3 and r["factor"] >= 1.5],
                     lambda r: "touching the first or last budget" if r["edge"] else "interior")
    if by_edge:
        out += ["", "By position (3 or more trials, factors >= 1.5, all widths): " + "; ".join(
            f"{k}: {_cell(v)} ({sum(x['found'] for x in v) / max(sum(x['series'] for x in v), 1):.0%} of series found)"
            for k, v in sorted(by_edge.items())) + ". By factor, interior plants only, 3 or more trials: " + "; ".join(
            f"{fac:g}x {_cell([r for r in plants if r['trials'] >= 3 and not r['edge'] and r['factor'] == fac])}"
            for fac in FACTORS) + "."]
    if by_mode:
        out += ["By plant mode (3 or more trials, factors >= 1.5, all widths): " + "; ".join(
            f"onset {m.split('/')[0]}, from {'step 0' if m.endswith('/0') else 'half-way'}: {_cell(v)}"
            for m, v in sorted(by_mode.items())) + "."]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1, help="random plant positions per configuration")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--write", action="store_true", help="write the tables into docs/performance.md")
    args = ap.parse_args(argv)
    files = corpus_files()
    short = quick_files()
    t0 = time.time()
    jobs = [(f, fac, w, on, st, rep) for f in files for fac in FACTORS for w in WIDTHS for on, st in MODES
            for rep in range(args.reps)]
    with ProcessPoolExecutor(args.jobs) as ex:
        nulls = list(ex.map(null_stats, files))
        quick = list(ex.map(null_stats, short))
        permuted = tuple([x for ps in ex.map(permuted_p, [(f, PERMUTED_REPS) for f in group]) for x in ps]
                         for group in (files, short))
        plants = list(ex.map(plant_stats, jobs, chunksize=8))
    body = render(nulls, plants, time.time() - t0, args.reps, args.jobs, quick, permuted)
    print(body)
    if args.write:
        from analysis.plot import pvalue_qq

        replace_section(PERFORMANCE_MD, "## Regimes on real measurements", body)
        figure = PERFORMANCE_MD.parent / QQ_FIGURE
        figure.parent.mkdir(parents=True, exist_ok=True)
        pvalue_qq(np.array([x for n in nulls for x in n["p"]], dtype=float),
                  title="Scan p-values of the real null corpus (p_series)").savefig(figure, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
