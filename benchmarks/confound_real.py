"""The time-confound check and the host-state covariate (analysis.detect.confound) judged on the real null corpus.

Data: every measured file of ``tests/data/real/*.nc`` (random order, and the
``*-sequential.nc`` files, executed in grid order). Each run's residual ``e`` is
its log latency minus the log of its series' robust baseline
(:func:`analysis.detect.baseline.robust_fit` on the per-budget medians; linear with the
KV cache, quadratic without).

* **clustering**: a true regime is planted at a random position of a random
  series (``w`` = 1, 2, 4 budgets; the first ``t`` = 2, 3, 5 trials of every file
  with at least ``t``; ``e`` of its runs raised by ``log(factor)``, factor 2), the
  other cells are normal, and :func:`analysis.detect.confound.check_segment` is run:
  share called ``clustered`` (target: at most ``ALPHA_CLUSTERED`` in random
  order, 1 in sequential files), share whose budget term does not ``survive``
  the time term, and share ``confounded`` (either). ``p_time < 0.05`` on the
  same segments without a plant measures the time term's calibration (beside
  the first version's clustering rule and time term).
* **host state**: in random-order files, the correlation of ``e`` with
  :func:`analysis.detect.confound.host_state` (``k`` = 6, nearest in execution order), the Theil-Sen ``beta``
  (:func:`analysis.detect.confound.adjust_host_state`, one per series), and per series
  the run noise (pooled sd of ``e`` within cells) and the budget-level scatter
  (sd over budgets of the cell means of ``e``) before and after the adjustment.

Usage::

    python benchmarks/confound_real.py [--reps 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import analysis  # noqa: E402
from analysis.core import series as _series  # noqa: E402
from analysis.detect import confound  # noqa: E402
from analysis.detect.baseline import robust_fit  # noqa: E402

WIDTHS = (1, 2, 4)
TRIALS = (2, 3, 5)
FACTOR = 2.0
COMMAND = "python benchmarks/confound_real.py --reps {reps} --seed {seed}"


def load(path: str) -> dict:
    """Runs ``(S, nb, T)``, execution key, residuals to the baseline, and whether the file is sequential."""
    ds = analysis.open_dataset(path)
    da = _series.as_series_array(ds["latency"])
    nb, T = da.sizes["budget"], da.sizes["trial"]

    def arr(name: str) -> np.ndarray | None:
        return ds[name].broadcast_like(da).transpose(*da.dims).values if name in ds else None

    Y = np.asarray(da.values, float).reshape(-1, nb, T)
    tkey = confound.time_key(arr("order"), arr("started_at"))[0].reshape(Y.shape)
    deg = np.ones(Y.shape[0], dtype=int)
    if "cache" in da.coords:
        deg = np.where(da["cache"].broadcast_like(da.isel(budget=0, trial=0)).values.reshape(-1).astype(bool), 1, 2)
    x = np.asarray(da["budget"].values, float)
    x = x / x.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.log(np.nanmedian(Y, axis=2))
    base = np.full(m.shape, np.nan)
    for d in (1, 2):
        sel = deg == d
        if sel.any():
            base[sel] = robust_fit(m[sel], x, d, scale_floor=0.02)[0]
    E = np.log(Y) - np.log(base)[:, :, None]
    E[~np.isfinite(tkey)] = np.nan
    return {"name": Path(path).name, "E": E, "tkey": tkey, "seq": ds.attrs.get("run_order") == "sequential"}


def _old_module():
    """The first version's check (clustering rule, run-level OLS), for the calibration comparison."""
    import subprocess

    src = subprocess.run(["git", "show", "91c330f:analysis/detect/confound.py"], cwd=ROOT, capture_output=True, text=True)
    if src.returncode:
        return None
    spec = importlib.util.spec_from_loader("confound_v1", loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["confound_v1"] = mod
    exec(src.stdout, mod.__dict__)  # noqa: S102  (our own file, from our own history)
    return mod


def clustering(files: list[dict], reps: int, seed: int) -> dict:
    """Counts per (order, trials, width): clustered, not surviving, confounded, null p_time < 0.05 (new, old)."""
    rng = np.random.default_rng(seed)
    old = _old_module()
    out: dict = {}
    for f in files:
        for t in TRIALS:
            if f["E"].shape[2] < t:
                continue
            E0, tk = f["E"][:, :, :t], f["tkey"][:, :, :t]
            S, nb, _ = E0.shape
            for w in WIDTHS:
                key = ("sequential" if f["seq"] else "random", t, w)
                c = out.setdefault(key, np.zeros(11))
                for _ in range(reps):
                    s = int(rng.integers(S))
                    if np.isfinite(E0[s]).any(axis=1).sum() < w + 4:
                        continue
                    j = int(rng.integers(nb - w + 1))
                    rows = np.arange(j, j + w)
                    if not np.isfinite(E0[s, rows]).any():
                        continue
                    normal = np.isfinite(E0)
                    normal[s, rows] = False
                    E = E0.copy()
                    E[s, rows] += np.log(FACTOR)
                    tc = confound.prepare(tk, E, normal)
                    cl, _p, sv = confound.check_segment(tc, E, normal, s, rows, np.log(FACTOR), alpha=0.05)
                    pc = confound.segment_clustering(tc, E, s, rows).p
                    tc0 = confound.prepare(tk, E0, normal)
                    _c, p0, _s = confound.check_segment(tc0, E0, normal, s, rows, 0.1, alpha=0.05)
                    p_old, c_old = np.nan, False
                    if old is not None:
                        c_old, p_old, _s = old.check_segment(old.prepare(tk, E0, normal), E0, normal, s, rows, 0.1,
                                                          alpha=0.05)
                    det = _detectable(E, normal, s, rows)
                    c += [1, cl, not sv, cl or not sv, pc <= 0.05, np.isfinite(p0) and p0 < 0.05,
                          np.isfinite(p_old) and p_old < 0.05, np.isfinite(p_old), det, det and not sv, c_old]
    return out


def _detectable(E: np.ndarray, normal: np.ndarray, s: int, rows: np.ndarray) -> bool:
    """The segment's excess is significant (one-sided 0.05) in the cell-mean model without the time term."""
    seg = np.zeros(E.shape[1], dtype=bool)
    seg[rows] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.nanmean(np.where(normal[s] | seg[:, None], E[s], np.nan), axis=1)
    ok = np.isfinite(y)
    a, b = y[ok & seg], y[ok & ~seg]
    if a.size < 1 or b.size < 3:
        return False
    from scipy import stats

    t = (a.mean() - b.mean()) / (b.std(ddof=1) * np.sqrt(1 / a.size + 1 / b.size))
    return bool(stats.t.sf(t, b.size - 1) < 0.05)


def pooled_sd(E: np.ndarray) -> float:
    """Pooled within-cell sd of one series' ``(budget, trial)`` residuals."""
    n = np.isfinite(E).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ss = np.nansum((E - np.nanmean(E, axis=1, keepdims=True)) ** 2, axis=1)
    dof = np.maximum(n - 1, 0).sum()
    return float(np.sqrt(ss[n > 1].sum() / dof)) if dof else np.nan


def scatter(E: np.ndarray) -> float:
    """sd over budgets of one series' cell means."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cm = np.nanmean(E, axis=1)
    cm = cm[np.isfinite(cm)]
    return float(np.std(cm, ddof=1)) if cm.size > 2 else np.nan


def host(files: list[dict], k: int = 6, by_file: bool = False, nearest: str = "order") -> list[dict]:
    """Per random-order file: correlation, betas, run noise and scatter before / after."""
    rows = []
    for f in files:
        if f["seq"]:
            continue
        E, tk = f["E"], f["tkey"]
        normal = np.isfinite(E)
        g = confound.host_state(tk, E, normal, k=k, nearest=nearest)
        by = np.zeros(E.shape[0]) if by_file else None
        Ea, beta = confound.adjust_host_state(E, g, normal, by=by)
        ok = normal & np.isfinite(g)
        S = E.shape[0]
        rows.append({
            "name": f["name"], "T": E.shape[2], "S": S,
            "r": float(np.corrcoef(E[ok], g[ok])[0, 1]),
            "r_series": [float(np.corrcoef(E[s][ok[s]], g[s][ok[s]])[0, 1]) for s in range(S) if ok[s].sum() > 4],
            "beta": beta,
            "run": np.array([[pooled_sd(E[s]), pooled_sd(Ea[s])] for s in range(S)]),
            "scat": np.array([[scatter(E[s]), scatter(Ea[s])] for s in range(S)]),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100, help="plants per file, trial count and width")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    files = [load(p) for p in sorted(glob.glob(str(ROOT / "tests/data/real/*.nc")))]
    print(f"`{COMMAND.format(reps=a.reps, seed=a.seed)}`\n")
    print(f"Clustering test (level {confound.ALPHA_CLUSTERED}) and time term, regime x{FACTOR:g} planted:\n")
    print("| order | trials | width | plants | clustered | p_cluster <= 0.05 | not surviving | confounded "
          "| null p_time < 0.05 | (first version) | detectable | not surviving, detectable "
          "| clustered by the first version's rule |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (order, t, w), c in sorted(clustering(files, a.reps, a.seed).items()):
        n = c[0]
        print(f"| {order} | {t} | {w} | {int(n)} | {c[1] / n:.3f} | {c[4] / n:.3f} | {c[2] / n:.3f} | "
              f"{c[3] / n:.3f} | {c[5] / n:.3f} | {c[6] / max(c[7], 1):.3f} | {c[8] / n:.3f} | {c[9] / max(c[8], 1):.3f} | "
              f"{c[10] / n:.3f} |")
    print("\nHost state (k = 6, one Theil-Sen beta per series), random-order files:\n")
    print("| file | trials | series | r (pooled) | r per series (min..max) | beta (median) "
          "| run sd before -> after | budget scatter before -> after |")
    print("|---|---:|---:|---:|---|---:|---|---|")
    res = host(files)
    for h in res:
        rs = np.array(h["r_series"])
        run, sc = np.nanmedian(h["run"], axis=0), np.nanmedian(h["scat"], axis=0)
        print(f"| {h['name']} | {h['T']} | {h['S']} | {h['r']:+.2f} | {np.nanmin(rs):+.2f}..{np.nanmax(rs):+.2f} | "
              f"{np.nanmedian(h['beta']):.2f} | {run[0]:.3f} -> {run[1]:.3f} | {sc[0]:.3f} -> {sc[1]:.3f} |")
    print("\nAll random-order series, by k and by where beta is fitted (median ratio after / before):\n")
    print("| nearest | k | beta per | median r | run sd after/before | scatter after/before "
          "| series with less run noise |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for nearest, k, by_file in [("order", k, b) for k in (4, 6, 8, 12) for b in (False, True)] + [("time", 6, False)]:
        res = host(files, k=k, by_file=by_file, nearest=nearest)
        run = np.concatenate([h["run"] for h in res])
        sc = np.concatenate([h["scat"] for h in res])
        r = np.median([h["r"] for h in res])
        print(f"| {nearest} | {k} | {'file' if by_file else 'series'} ({len(run)} series) | {r:+.2f} | "
              f"{np.nanmedian(run[:, 1] / run[:, 0]):.3f} | {np.nanmedian(sc[:, 1] / sc[:, 0]):.3f} | "
              f"{np.mean(run[:, 1] < run[:, 0]):.2f} |")

if __name__ == "__main__":
    main()
