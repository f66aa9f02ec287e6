"""Engine http vs the in-process loop engine on CPU: per-token decode time and the fixed per-request cost.

The same tiny model (``tiny-gpt2``, random weights, cache on) is measured two ways in one run:

* ``loop``: ``python -m collector run --devices cpu --engine loop --timing step`` (the model in the
  sweep's worker, a manual decode loop, per-step times);
* ``http``: the same decode loop behind tests/http_server.py (stdlib http.server + transformers, one
  server-sent event per token, the same torch thread count as the loop's worker), swept with
  ``python -m collector run --engine http --timing stream`` (the client times each token's arrival).

The two sweeps alternate for ``--rounds`` rounds (so a slow episode of the host falls on both). Per engine:
the median per-token decode time (median of steps 1.. of a run, median over runs), the fixed cost of a
request (latency minus its decode steps, median over runs), the Theil-Sen slope of latency over budget,
and the median time to first token. The ratio http / loop of the per-token times
says what HTTP adds to each token; the difference of the fixed costs (latency minus the decode steps) is
HTTP's fixed per-request cost.

Usage::

    python benchmarks/http_overhead.py [--rounds 6] [--trials 3] [--threads 1] [--write]

``--write`` puts the table into docs/performance.md ("## HTTP engine vs the in-process loop (CPU)").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402

HEADING = "## HTTP engine vs the in-process loop (CPU)"
COMMAND = "python benchmarks/http_overhead.py --rounds {rounds} --trials {trials} --threads {threads} --write"
BUDGETS = "8:64:8"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(threads: int) -> Iterator[str]:
    """tests/http_server.py on a free port; yields its endpoint."""
    from collector.http.client import get_json

    port = _port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "http_server.py"), "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(1200):
            if proc.poll() is not None:
                raise SystemExit("the test server exited")
            try:
                get_json(url + "/models", timeout=1.0)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def sweep(out: Path, args: list[str], trials: int, seed: int) -> object:
    from collector.__main__ import main
    from collector.dataset.schema import load

    code = main(["run", "--models", "tiny-gpt2", "--prompt-lens", "8", "--budgets", BUDGETS, "--trials", str(trials),
                 "--seed", str(seed), "--quiet", "--force", "-o", str(out), *args])
    if code != 0:
        raise SystemExit(f"sweep {args} failed with status {code}")
    return load(out)


def figures(datasets: list[object]) -> dict[str, float]:
    """Per-token decode time, fixed per-request cost, slope and time to first token over the runs of ``datasets``.

    Per run: the decode step (median of steps 1..budget-1) and the fixed cost (latency minus the sum of the
    decode steps: the time to first token plus the wait for the end of the stream); medians over runs. The
    slope of latency over budget is Theil-Sen's (robust to the slow runs of a shared host).
    """
    from scipy.stats import theilslopes

    step, fixed, budgets, latency, ttft = [], [], [], [], []
    for ds in datasets:
        flat = ds.stack(run=[d for d in ds.latency.dims])  # type: ignore[attr-defined]
        for i in range(flat.sizes["run"]):
            run = flat.isel(run=i)
            if int(run.status) != 0:
                continue
            steps = run.step_time.values[1: int(run.budget)]
            step.append(float(np.median(steps)))
            fixed.append(float(run.latency) - float(np.sum(steps)))
            budgets.append(int(run.budget))
            latency.append(float(run.latency))
            ttft.append(float(run.prefill_time))
    slope = theilslopes(np.array(latency), np.array(budgets, float))[0]
    return {"per_token": float(np.median(step)), "fixed": float(np.median(fixed)), "slope": float(slope),
            "ttft": float(np.median(ttft)), "runs": float(len(latency))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds of the two sweeps")
    ap.add_argument("--trials", type=int, default=3, help="trials per budget in each sweep")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides (OMP_NUM_THREADS of the "
                    "loop's worker, --threads of the server; default 1: steadier on a shared host)")
    ap.add_argument("--write", action="store_true", help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the sweep's workers inherit it: torch's thread count
    t_start = time.perf_counter()
    loop, http = [], []
    with tempfile.TemporaryDirectory() as tmp:
        first = sweep(Path(tmp) / "loop0.nc", ["--devices", "cpu", "--engine", "loop", "--timing", "step", "--cache",
                                               "on"], args.trials, 0)
        threads = int(np.nanmax(first.torch_threads.values))  # type: ignore[attr-defined]
        loop.append(first)
        with server(threads) as url:
            for r in range(args.rounds):
                http.append(sweep(Path(tmp) / f"http{r}.nc", ["--engine", "http", "--endpoint", url], args.trials, r))
                if r + 1 < args.rounds:
                    loop.append(sweep(Path(tmp) / f"loop{r + 1}.nc", ["--devices", "cpu", "--engine", "loop",
                                                                        "--timing", "step", "--cache", "on"],
                                      args.trials, r + 1))
    f_loop, f_http = figures(loop), figures(http)
    rounds = [(figures([a]), figures([b])) for a, b in zip(loop, http)]  # round r: loop r, then http r
    ratios = [h["per_token"] / lo["per_token"] for lo, h in rounds]
    costs = [(h["fixed"] - lo["fixed"]) * 1000.0 for lo, h in rounds]
    elapsed = time.perf_counter() - t_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ms = 1000.0

    def row(name: str, f: dict[str, float]) -> str:
        return (f"| {name} | {int(f['runs'])} | {f['per_token'] * ms:.3f} | {f['slope'] * ms:.3f} | "
                f"{f['fixed'] * ms:.2f} | {f['ttft'] * ms:.2f} |")

    body = "\n".join([
        f"Measured with `{COMMAND.format(rounds=args.rounds, trials=args.trials, threads=args.threads)}` ({elapsed:.0f} s) on "
        f"{platform.machine()} with {os.cpu_count()} CPUs (load average {load:.1f} at the end), {threads} torch "
        f"thread(s) on both sides: tiny-gpt2 (random weights, cache on), prompt 8 tokens, budgets {BUDGETS}, the "
        f"loop engine in the sweep's worker and the same decode loop behind tests/http_server.py (stdlib "
        "http.server, one server-sent event per token) swept with `--engine http`, alternating.",
        "",
        "| engine | ok runs | per-token decode (median step, ms) | slope of latency (Theil-Sen, ms/token) | "
        "fixed per-request cost (latency - decode steps, median, ms) | time to first token (median, ms) |",
        "|---|---|---|---|---|---|",
        row("loop (in-process, `--timing step`)", f_loop),
        row("http (client-side, `--timing stream`)", f_http),
        "",
        f"Per-token decode time through HTTP / in-process: **x{f_http['per_token'] / f_loop['per_token']:.2f}** "
        f"(median step; per round x{min(ratios):.2f} to x{max(ratios):.2f}), x{f_http['slope'] / f_loop['slope']:.2f} "
        "(slope: sensitive to the host's slow episodes, which fall on some budgets of one engine's sweep and not "
        f"the other's). Fixed per-request cost HTTP adds: "
        f"**{(f_http['fixed'] - f_loop['fixed']) * ms:+.2f} ms** per request (per round {min(costs):+.2f} to "
        f"{max(costs):+.2f} ms), of which "
        f"{(f_http['ttft'] - f_loop['ttft']) * ms:+.2f} ms before the first token (connection, request parsing, "
        "tokenisation, the first event's trip) and the rest waiting for the end of the stream. "
        "For this tiny model a decode step is a fraction of a millisecond, so the per-token ratio is "
        "the worst case: what HTTP adds per token (one event written and read, about the same for any model) "
        "shrinks relative to the step of a real model, and a regime several steps long stays visible through it. "
        "What client-side timing can and cannot see: docs/http.md.",
    ])
    print(body)
    if args.write:
        text = PERFORMANCE_MD.read_text()
        if HEADING not in text.splitlines():
            PERFORMANCE_MD.write_text(text.rstrip("\n") + f"\n\n\n{HEADING}\n\n")
        replace_section(PERFORMANCE_MD, HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
