"""Instrumentation overhead: how much each timing mode (and engine, and memory sampling) moves latency.

For each model, after warm-up, every repetition runs each condition once in a
freshly shuffled order (same loaded model, same cell):

    loop/step, loop/events, loop/ends, generate/ends, loop/ends+sampled memory

and the per-repetition ratios against ``loop/ends`` (memory endpoints) are
summarised by their median, a bootstrap 95% interval of that median, and the
interquartile range. Only paired ratios are reported as effects: hosts have
slow episodes lasting tens of seconds that move unpaired medians by 10-15%.

Example (docs/performance.md gives the exact command behind its table)::

    PYTHONUNBUFFERED=1 python benchmarks/instrumentation.py --device cuda \\
        --models gpt2 gpt2-medium --budget 64 --prompt-len 32 --reps 40 --out results.json

It also runs on cpu (``--device cpu --models tiny-gpt2 --reps 3``) to check the script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from collector.measuring.measurement import load_model, measure  # noqa: E402

#: condition name -> measure() keyword arguments
CONDITIONS: dict[str, dict[str, Any]] = {
    "loop/step": dict(engine="loop", timing="step"),
    "loop/events": dict(engine="loop", timing="events"),
    "loop/ends": dict(engine="loop", timing="ends"),
    "generate/ends": dict(engine="generate", timing="ends"),
    "loop/ends/sampled": dict(engine="loop", timing="ends", memory="sampled", memory_interval=0.005),
}
BASELINE = "loop/ends"
#: ratio name -> (numerator condition, denominator condition)
RATIOS: dict[str, tuple[str, str]] = {
    "step/ends": ("loop/step", BASELINE),
    "events/ends": ("loop/events", BASELINE),
    "generate/loop": ("generate/ends", BASELINE),
    "sampled/endpoints": ("loop/ends/sampled", BASELINE),
}


def summarise(values: list[float], seed: int = 0, n_boot: int = 4000) -> dict[str, Any]:
    """Median, bootstrap 95% interval of the median, IQR and n of a list of ratios."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if x.size == 0:
        return {"n": 0, "median": None, "ci95": [None, None], "iqr": [None, None]}
    rng = np.random.default_rng(seed)
    boot = np.median(rng.choice(x, size=(n_boot, x.size), replace=True), axis=1)
    return {
        "n": int(x.size),
        "median": float(np.median(x)),
        "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
        "iqr": [float(np.quantile(x, 0.25)), float(np.quantile(x, 0.75))],
    }


def versions() -> dict[str, Any]:
    """Software and hardware this ran on."""
    import psutil
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "psutil": psutil.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def smoke(model: str, args: argparse.Namespace, log) -> dict[str, Any]:
    """One short run of every engine x timing x cache (and a dtype check) on the device."""
    from collector.measuring.devices import DTYPES, get_backend
    from collector.shared.errors import ConfigError

    backend = get_backend(args.device)
    dtypes = {}
    for dtype in DTYPES:
        try:
            backend.check_dtype(dtype)
            dtypes[dtype] = "ok"
        except ConfigError as exc:
            dtypes[dtype] = str(exc)
    loaded = load_model(model=model, device=args.device, dtype=args.dtype, weights="random", seed=args.seed)
    runs = []
    for engine in ("loop", "generate"):
        for timing in ("step", "events", "ends"):
            for cache in (True, False):
                for _ in range(2):  # the second run is the one kept (first warms up)
                    rec = measure(model=model, device=args.device, dtype=args.dtype, budget=16, prompt_len=8,
                                  cache=cache, engine=engine, timing=timing, memory="sampled", loaded=loaded)
                d = rec.to_dict()
                d.pop("step_times")
                d["steps_sum"] = float(sum(rec.step_times)) if rec.step_times else None
                d["n_step_times"] = len(rec.step_times)
                runs.append(d)
                log(f"  smoke {engine}/{timing}/cache={cache}: {rec.status} {rec.error[:120]} tokens={rec.tokens} "
                    f"latency={rec.latency * 1e3:.2f} ms prefill={rec.prefill_time * 1e3:.2f} ms "
                    f"steps_sum={d['steps_sum']} peak={rec.mem_device_peak:.3g} driver={rec.mem_device_driver:.3g}")
    return {"model": model, "dtypes": dtypes, "runs": runs}


def bench_model(model: str, args: argparse.Namespace, deadline: float, log) -> dict[str, Any]:
    """Warm up, then run shuffled repetitions of every condition until reps or the deadline."""
    cell = dict(model=model, device=args.device, budget=args.budget, prompt_len=args.prompt_len,
                cache=True, dtype=args.dtype)
    t_load = time.perf_counter()
    loaded = load_model(model=model, device=args.device, dtype=args.dtype, weights="random", seed=args.seed)
    load_s = time.perf_counter() - t_load
    for _ in range(args.warmup):
        for cond in CONDITIONS.values():
            rec = measure(**cell, **cond, loaded=loaded)
            if not rec.ok:
                raise RuntimeError(f"warm-up run failed: {rec.status}: {rec.error}")
    rng = random.Random(args.seed)
    reps: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for r in range(args.reps):
        now = time.perf_counter()
        if r >= args.min_reps and reps:
            per_rep = (now - t_start) / len(reps)
            if now + per_rep > deadline:
                log(f"  {model}: stopping at {r} repetitions (time limit)")
                break
        order = list(CONDITIONS)
        rng.shuffle(order)
        row: dict[str, Any] = {"rep": r, "order": order}
        for name in order:
            rec = measure(**cell, **CONDITIONS[name], loaded=loaded)
            row[name] = {
                "status": rec.status,
                "latency": rec.latency,
                "prefill_time": rec.prefill_time,
                "decode_time": rec.decode_time,
                "steps_sum": float(sum(rec.step_times)) if rec.step_times else None,
            }
        reps.append(row)
        if (r + 1) % 5 == 0:
            base = row[BASELINE]["latency"]
            log(f"  {model}: rep {r + 1}/{args.reps}, loop/ends {base * 1e3:.1f} ms, "
                f"{time.perf_counter() - t_start:.0f} s")

    def lat(row: dict[str, Any], name: str) -> float:
        v = row[name]
        return v["latency"] if v["status"] == "ok" else float("nan")

    ratios = {
        key: summarise([lat(row, a) / lat(row, b) for row in reps], seed=args.seed)
        for key, (a, b) in RATIOS.items()
    }
    latency = {
        name: summarise([lat(row, name) for row in reps], seed=args.seed) for name in CONDITIONS
    }
    events_gap = summarise(
        [row["loop/events"]["steps_sum"] / row["loop/events"]["latency"] for row in reps
         if row["loop/events"]["status"] == "ok"], seed=args.seed)
    failures = sum(row[name]["status"] != "ok" for row in reps for name in CONDITIONS)
    return {
        "model": model,
        "n_params": loaded.n_params,
        "architecture": loaded.architecture,
        "load_s": load_s,
        "repetitions": len(reps),
        "failures": failures,
        "ratios": ratios,
        "latency_s": latency,
        "events_steps_sum_over_latency": events_gap,
        "events_within_1pct_of_ends": bool(ratios["events/ends"]["median"] is not None
                                           and abs(ratios["events/ends"]["median"] - 1) <= 0.01),
        "per_rep": reps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["gpt2", "gpt2-medium"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--budget", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--min-reps", type=int, default=30, help="never stop for time before this many")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (each runs every condition)")
    parser.add_argument("--max-seconds", type=float, default=420.0, help="soft wall-clock limit for all models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="first run every engine x timing x cache once")
    parser.add_argument("--out", default="instrumentation.json")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    result: dict[str, Any] = {
        "benchmark": "instrumentation",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "conditions": CONDITIONS,
        "ratios_defined": {k: f"latency({a}) / latency({b})" for k, (a, b) in RATIOS.items()},
        "versions": versions(),
        "models": [],
    }
    log(f"versions: {json.dumps(result['versions'])}")
    if args.smoke:
        log(f"smoke test on {args.models[0]}")
        result["smoke"] = smoke(args.models[0], args, log)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    n = len(args.models)
    for i, model in enumerate(args.models):
        # split what is left evenly over the models still to run
        deadline = time.perf_counter() + (args.max_seconds - (time.perf_counter() - t0)) / (n - i)
        log(f"{model}: loading and warming up")
        result["models"].append(bench_model(model, args, deadline, log))
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
        log(f"{model}: wrote {args.out}")

    print(f"\n{'model':<12} {'ratio':<18} {'n':>3} {'median':>8} {'95% CI of median':>20} {'IQR':>20}")
    for m in result["models"]:
        for key, s in m["ratios"].items():
            if s["median"] is None:
                continue
            print(f"{m['model']:<12} {key:<18} {s['n']:>3} {s['median']:>8.4f} "
                  f"{s['ci95'][0]:>9.4f}-{s['ci95'][1]:<9.4f} {s['iqr'][0]:>9.4f}-{s['iqr'][1]:<9.4f}")
        lat = m["latency_s"][BASELINE]
        print(f"{m['model']:<12} {'loop/ends latency':<18} {lat['n']:>3} {lat['median'] * 1e3:>7.1f}ms "
              f"(failures: {m['failures']})")
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
