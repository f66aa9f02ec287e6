"""Generate ``docs/reproduce-study.md``: each claim of the MPS study, its analysis call and the actual output.

Every code block of the document is executed here on ``mps-m3max-study`` (the
study's published tables, ``datasets/build_study.py``) and its printed output
pasted below it; the "Reading" lines are computed from the same results. No
setting is tuned to make a claim come out: every call uses the defaults.

    python datasets/reproduce_study.py            # print the document
    python datasets/reproduce_study.py --write    # write docs/reproduce-study.md
    python datasets/reproduce_study.py --check    # exit 1 if the document is out of date
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["CLAIMS", "Claim", "render", "main"]

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reproduce-study.md"
NAME = "mps-m3max-study"

SETUP = f'''\
import numpy as np
import analysis

ds = analysis.open_dataset("{NAME}")
PROBE = dict(experiment="instability_probe", model="gpt2-medium", device="mps", cache=True, prompt_len=65)


def one(obj, **sel):
    """The series picked by ``sel``, its length-1 dims (dtype, trial, ...) dropped."""
    return obj.sel(**sel).squeeze(drop=True)
'''


@dataclass(frozen=True)
class Claim:
    """One claim of the study: what it says, the code that checks it, and how to read the result."""

    title: str
    says: str
    code: str
    reading: Callable[[dict[str, Any]], str]


def _budgets(mask: Any) -> list[int]:
    return [int(b) for b in mask.budget.values[np.asarray(mask.values, dtype=bool)]]


def _fmt(x: float, spec: str = ".3g") -> str:
    return "NaN" if not np.isfinite(x) else format(x, spec)


def _read_regimes(ns: dict[str, Any]) -> str:
    flagged = _budgets(ns["probe_anom"])
    exact = flagged == list(range(512, 625, 16))
    lo = ns["seg"]["start_lo"].values
    out = [f"`regimes()` flags {'exactly' if exact else 'not exactly'} the budgets 512..624 in the probe series "
           f"(flagged: {flagged[0] if flagged else '-'}..{flagged[-1] if flagged else '-'}, {len(flagged)} budgets)."]
    out.append("The boundaries are located to the probe's 16-token spacing: the regime starts after the last normal "
               "budget below it and ends before the first normal budget above it, as printed.")
    if not np.isfinite(np.asarray(lo, dtype=float)).any():
        out.append("The 95 % boundary intervals under trial resampling are NaN: with one trial (a published mean) "
                   "there is nothing to resample, so the location of each boundary inside its 16-token gap has no "
                   "uncertainty estimate, and no p-value rests on replicates: the tests use budget-to-budget "
                   "variation only.")
    missed = [c for c in ns["paper_cells"] if not c[3]]
    n = len(ns["paper_cells"])
    out.append(f"Of the {n} cells the paper itself labels anomalous, `regimes()` flags {n - len(missed)}"
               + (": it misses " + ", ".join(f"{m} at {b} ({e})" for e, m, b, _ in missed) + ", where the series has "
                  "only four published budgets: one trial there cannot tell a one-budget spike from noise."
                  if missed else ".")
               )
    return " ".join(out)


def _read_phases(ns: dict[str, Any]) -> str:
    share = float(ns["share"])
    ph_share = ns["ph_share"]
    finite = np.isfinite(np.asarray(ph_share, dtype=float)).any()
    pre = ns["cells"]["prefill_time"].values
    text = (f"From the two stated phase splits alone (496 vs 512 tokens), {share:.1%} of the latency increase is "
            f"decode time; the prefill rises by {pre[1] - pre[0]:.2f} s.")
    if not finite:
        text += (" `phases()` itself cannot test it: it fits prefill and decode along the budget axis outside the "
                 "regime, and the paper states the phase split at two budgets only (one on each side of the onset), "
                 "so its decode share is NaN. The claim is supported by the stated numbers, not by a statistic.")
    else:
        text += " `phases()` estimates the decode share printed above."
    return text


def _read_memory(ns: dict[str, Any]) -> str:
    kv = ns["mem_kv"]
    used = str(kv["used"].values) if "used" in kv else ""
    text = (f"In the series that carries the memory profile (KV ablation, cache on) the peak allocated memory grows "
            f"smoothly, {'-'.join(map(str, ns['mem_steps']))} MB per 128 tokens, with no jump at 512. ")
    if np.isfinite(float(kv["r2_memory"])):
        text += (f"`memory_effect()` there: memory explains {float(kv['r2_memory']):.0%} of the excess, the regime "
                 f"adds {float(kv['r2_added']):.0%} (p = {_fmt(float(kv['p']))}); covariates used: {used or 'none'}. ")
    else:
        text += ("`memory_effect()` cannot fit that series (one regime budget among 6, one trial, a smooth memory "
                 "trend collinear with the budget polynomial): its shares are NaN. ")
    text += ("Series without memory readings (the other experiments) get no memory covariate, and the summary "
             "says so instead of printing shares. The claim rests on the smooth memory profile, which one trial "
             "cannot test against noise.")
    return text


def _read_kv(ns: dict[str, Any]) -> str:
    s512 = float(ns["kv"]["speedup"].sel(budget=512))
    out = float(ns["kv"]["speedup_outside"])
    return (f"The cache-off / cache-on ratio is {s512:.2f}x at 512 tokens, against {out:.1f}x outside the collapse "
            "(the study: about 1.9x, normally 5-20x). With one trial the bootstrap intervals of the ratio are NaN; "
            "the collapse is a point estimate from published means.")


def _read_mono(ns: dict[str, Any]) -> str:
    off = ns["mono_off"]
    mono = bool(off["monotone"])
    c = ns["off_center"]
    text = (f"Cache off, the published means are not monotone: {c[512]:.1f} s at 512 tokens, {c[640]:.1f} s at 640. ")
    if mono:
        text += ("`monotonicity()` does not call this an inversion: with one trial the noise of a value is estimated "
                 "from the second differences of the log means along the budget axis (noise_sd "
                 f"{float(off['noise_sd']):.2f} in log units), and one {c[512] / c[640]:.2f}x step is within it. The "
                 "residual non-monotonicity is visible in the numbers but not significant at this noise.")
    else:
        text += f"`monotonicity()` finds {int(off['n_inversions'])} significant inversion(s)."
    return text


def _read_boundaries(ns: dict[str, Any]) -> str:
    onset, rec = str(ns["bnd_onset"]), str(ns["bnd_rec"])
    flagged = ns["pa_flagged"]
    table = ns["t"].to_pandas()
    slow = {int(p): [int(b) for b, v in row.items() if v > 3 * row.min()] for p, row in table.iterrows()}
    parts = [f"{p}-token prompt at budgets {', '.join(map(str, bs))} (totals {', '.join(str(p + b) for b in bs)})"
             for p, bs in slow.items()]
    text = ("In the prompt ablation the cells more than 3x the fastest of their prompt are: " + "; ".join(parts)
            + ". The first slow budget moves with the prompt while the last one does not, which is the study's "
              "reading (onset on total length, recovery on budget) in four budgets per prompt. ")
    if onset == "unknown" or rec == "unknown":
        text += (f"`boundaries()` reports onset {onset!r} and recovery {rec!r}: it needs a regime found by "
                 f"`regimes()` in each prompt's series, and with 4 budgets per series and one trial "
                 f"{'none is found' if not any(flagged.values()) else 'not every series has one'} "
                 f"(anomalous budgets per prompt: {flagged}). The table cannot support the claim's statistics.")
    else:
        text += f"`boundaries()` places the onset on {onset!r} and the recovery on {rec!r}."
    return text


def _read_backends(ns: dict[str, Any]) -> str:
    rows = ns["backend_rows"]
    rising = "rise with the budget" if ns["cuda_rising"] else "do not all rise with the budget"
    return ("Within the main sweep: " + "; ".join(rows) + f". The CUDA T4 cells are 3 per model and {rising}, so "
            "'absent on cuda' means no budget-to-budget excess among those three, at one trial. "
            "The main sweep publishes 4 mps budgets per model, so a single-budget spike there is tested against "
            "three other means only.")


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "A regime at 512-624 tokens with 16-token boundaries",
        "gpt2-medium on MPS is about 10x slower from 512 to 624 new tokens and recovers at 640; the probe's "
        "16-token steps locate both boundaries (normal at 496 and 640).",
        '''\
reg = analysis.regimes(ds)
print(reg.attrs["summary"])
seg = one(reg, **PROBE)
probe_anom = seg["anomalous"]
print("probe, anomalous budgets:", [int(b) for b in probe_anom.budget[probe_anom.values].values])
data = one(ds.latency, **PROBE).dropna("budget").budget.values
for j in np.flatnonzero(seg["segment_anomalous"].values):
    s, e = float(seg["start"][j]), float(seg["end"][j])
    before, after = data[data < s].max(), data[data > e].min()
    print(f"segment {s:g}-{e:g}: x{float(seg['effect'][j]):.2f}, q={float(seg['q'][j]):.2g}; starts after {before} "
          f"(gap {s - before:g}), ends before {after} (gap {after - e:g}); start interval "
          f"[{float(seg['start_lo'][j]):g}, {float(seg['start_hi'][j]):g}], end interval "
          f"[{float(seg['end_lo'][j]):g}, {float(seg['end_hi'][j]):g}]")
lab = ds.study_label.isel(trial=0, drop=True)  # the paper's own labels
paper_cells = []
for idx in np.argwhere(lab.values == 1):
    cell = {d: lab[d].values[i].item() for d, i in zip(lab.dims, idx)}
    paper_cells.append((cell["experiment"], cell["model"], cell["budget"], bool(reg.anomalous.sel(cell))))
print("cells the paper calls anomalous, flagged by regimes():", paper_cells)
''',
        _read_regimes,
    ),
    Claim(
        "The excess comes from the decode phase",
        "At 512 tokens the prefill takes 0.11 s (0.08 s at 496) while the decode takes 89.1 s (9.4 s at 496).",
        '''\
ph = analysis.phases(ds, reg=reg)
print(ph.attrs["summary"])
ph_share = one(ph["decode_share"], **PROBE)
print("phases decode_share, probe:", ph_share.values)
cells = one(ds[["latency", "prefill_time", "decode_time"]], **PROBE).sel(budget=[496, 512])
print(cells.to_dataframe()[["latency", "prefill_time", "decode_time"]].round(3).to_string())
d = cells.diff("budget")
share = (d.decode_time / d.latency).item()
print(f"decode share of the 496 -> 512 increase: {share:.4f}")
''',
        _read_phases,
    ),
    Claim(
        "Memory does not explain it",
        "Peak MPS-allocated memory grows smoothly through the anomalous interval (1426 -> 1550 MB over 128..768 "
        "tokens).",
        '''\
mem = analysis.memory_effect(ds, reg=reg)
print(mem.attrs["summary"])
KV_ON = dict(PROBE, experiment="kv_ablation")
mem_kv = one(mem, **KV_ON)
print({k: mem_kv[k].values.tolist() for k in ("r2_memory", "r2_added", "p", "used", "mem_jump", "mem_changes")
       if k in mem_kv})
peak = one(ds.mem_device_peak, **KV_ON).dropna("budget") / 2**20
print("peak MB:", dict(zip(peak.budget.values.tolist(), peak.values.round(0).tolist())))
mem_steps = sorted(set(np.diff(peak.values).round(0).astype(int).tolist()))
print("steps per 128 tokens (MB):", mem_steps)
''',
        _read_memory,
    ),
    Claim(
        "The KV-cache speedup collapses to about 1.9x at 512",
        "Cache off / cache on is normally 5-20x; at 512 tokens (83.2 s vs 161.6 s) it is about 1.9x.",
        '''\
kvs = analysis.kv_speedup(ds, reg=reg)
print(kvs.attrs["summary"])
kv = one(kvs, experiment="kv_ablation", model="gpt2-medium", device="mps", prompt_len=65)
sp = kv["speedup"].dropna("budget")
print("speedup:", dict(zip(sp.budget.values.tolist(), sp.values.round(2).tolist())))
print("outside:", round(float(kv["speedup_outside"]), 2), "inside:", round(float(kv["speedup_inside"]), 2),
      "CI at 512:", [float(kv["speedup_lo"].sel(budget=512)), float(kv["speedup_hi"].sel(budget=512))])
''',
        _read_kv,
    ),
    Claim(
        "Cache-off decoding is still non-monotonic",
        "Without the KV cache the anomaly is weaker but latency still falls after 512 tokens (161.6 s at 512, "
        "139.0 s at 640).",
        '''\
mono = analysis.monotonicity(ds)
print(mono.attrs["summary"])
mono_off = one(mono, **dict(PROBE, experiment="kv_ablation", cache=False))
print({k: mono_off[k].values.tolist() for k in ("monotone", "n_inversions", "spike_ratio", "noise_sd",
                                                 "unexplained_share")})
c = one(ds.latency, **dict(PROBE, experiment="kv_ablation", cache=False)).dropna("budget")
off_center = dict(zip(c.budget.values.tolist(), c.values.tolist()))
print("cache off:", off_center)
''',
        _read_mono,
    ),
    Claim(
        "Onset on total length, recovery on budget",
        "With a 3-token prompt the spike is at 624 but not 512; with the 65-token prompt at 512 and 624; both "
        "recover at 640: the onset follows prompt + budget, the recovery the budget.",
        '''\
bnd = analysis.boundaries(ds, reg=reg)
print(bnd.attrs["summary"])
pa = one(bnd, experiment="prompt_ablation", model="gpt2-medium", device="mps", cache=True)
bnd_onset, bnd_rec = pa["onset_axis"].item(), pa["recovery_axis"].item()
print("prompt ablation: onset", bnd_onset, "recovery", bnd_rec)
t = one(ds.latency, experiment="prompt_ablation", model="gpt2-medium", device="mps", cache=True).dropna("budget", how="all")
print(t.to_pandas().to_string())
pa_flagged = {int(p): [int(b) for b in one(reg.anomalous, experiment="prompt_ablation", model="gpt2-medium",
                                            device="mps", cache=True, prompt_len=p).pipe(
                                                lambda a: a.budget[a.values].values)] for p in (3, 65)}
print("regimes, anomalous budgets per prompt:", pa_flagged)
''',
        _read_boundaries,
    ),
    Claim(
        "MPS vs CUDA (T4): the regime is MPS-only",
        "The spikes on MPS (84.5 s at 512 for gpt2-medium, 103.4 s at 384 for gpt2-large) are absent on CUDA "
        "(9.2 s and 9.9 s on a T4).",
        '''\
cmp = analysis.compare_backends(ds, reg=reg)
print(cmp.attrs["summary"])
main_x = cmp.sel(experiment="main_crossover").squeeze(drop=True)
backend_rows = [f"{m}: regimes on {main_x['devices_with_regimes'].sel(model=m).item() or 'no device'}"
                for m in main_x.model.values.tolist()]
print(backend_rows)
x = one(ds.latency, experiment="main_crossover", model=["gpt2-medium", "gpt2-large"], device=["mps", "cuda"],
        cache=True, prompt_len=65).dropna("budget", how="all")
print(x.to_dataframe().latency.unstack("budget").to_string())
cuda_rising = all(bool((np.diff(v[np.isfinite(v)]) > 0).all()) for v in x.sel(device="cuda").values)
print("cuda latency rises with budget in every model:", cuda_rising)
''',
        _read_backends,
    ),
)


def analysis_version() -> str:
    """The installed package version (``collector.__version__``)."""
    from collector import __version__

    return str(__version__)


def _run(code: str, ns: dict[str, Any]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "<reproduce-study>", "exec"), ns)  # noqa: S102 - our own snippets, shown in the doc
    return buf.getvalue().rstrip()


def render() -> str:
    """The document: every snippet run on the study dataset, its output pasted."""
    from analysis import published

    path = published.resolve(NAME)
    if path.resolve() != (ROOT / "datasets" / f"{NAME}.nc").resolve():
        raise FileNotFoundError(f"{NAME!r} resolves to {str(path)!r}, not this repository's datasets/ (unset "
                                f"${published.ENV_VAR})")
    ns: dict[str, Any] = {}
    _run(SETUP, ns)
    ds: xr.Dataset = ns["ds"]
    ok = int((ds.status == 0).sum())
    lines = [
        "# Reproducing the MPS study from its published numbers",
        "",
        "<!-- generated by python datasets/reproduce_study.py --write; do not edit by hand -->",
        "",
        'W. F. Hendria, "Non-Monotonic Latency in Apple MPS Decoding" (arXiv 2605.08913) reports its',
        "measurements as tables of 5-run means. `datasets/mps-m3max-study.nc` holds those tables",
        f"({ok} published cells, one trial each; see its datasheet in `datasets/README.md`). Below, each",
        "claim of the study, the analysis call that tests it on that file, and the call's actual output.",
        "Every call uses its defaults; nothing was tuned to make a claim come out.",
        "",
        "What one trial cannot give, whatever the claim: replicate noise (every test rests on the",
        "budget-to-budget variation of the means instead), intervals under trial resampling, the",
        "reproducibility of a regime across trials, and a check against execution time (the order of the",
        "runs was not published and the sweeps were sequential, so a slow period of the host and a budget",
        "regime cannot be told apart from these numbers).",
        "",
        f"Generated with decode-regimes {analysis_version()}; the file is schema version "
        f"{ds.attrs.get('schema_version', '?')}.",
        "",
        "Setup (run once; every block below continues it):",
        "",
        "```python",
        SETUP.rstrip(),
        "```",
    ]
    for k, claim in enumerate(CLAIMS, 1):
        output = _run(claim.code, ns)
        lines += [
            "",
            f"## {k}. {claim.title}",
            "",
            "The study: " + claim.says,
            "",
            "```python",
            claim.code.rstrip(),
            "```",
            "",
            "Output:",
            "",
            "```text",
            output,
            "```",
            "",
        ]
        lines += textwrap.wrap("Reading: " + claim.reading(ns), width=100, break_long_words=False,
                               break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print, write (``--write``) or check (``--check``) docs/reproduce-study.md."""
    parser = argparse.ArgumentParser(prog="python datasets/reproduce_study.py", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write docs/reproduce-study.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/reproduce-study.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.read_text() if DOC.is_file() else ""
        if current != text:
            print("docs/reproduce-study.md is out of date: python datasets/reproduce_study.py --write", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
