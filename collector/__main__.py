"""Command line: ``python -m collector run|resume|export|merge|import-study|info|models|doctor|diagnose``.

Every error the user can cause (a bad flag, an unknown model, a device this
machine lacks, an unreadable TOML, a journal in use...) is printed as one line
``error: ...`` on stderr with exit status 2, before any model is loaded and
before any journal or output file is created. docs/cli.md lists every command
and flag with an example.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import shlex
import signal
import sqlite3
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from collector.shared.errors import CollectorError
from collector.shared.safetext import visible

__all__ = ["main", "build_parser"]

_EXIT_ERROR = 2
_EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CollectorError(f"{message} (see '{self.prog} --help')")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    from collector.shared.factors import FACTORS
    from collector.sweep import spec as s

    g = p.add_argument_group("grid")
    for f in FACTORS:  # one flag per sweep factor, from its declaration
        if f.role == "trial":
            g.add_argument(f.flag, dest=f.setting, type=str, metavar="N", help=f.help)
        elif f.kind == "bool":
            g.add_argument(f.flag, dest=f.setting, choices=s.CACHE_CHOICES, help=f.help)
        else:
            g.add_argument(f.flag, dest=f.setting, nargs="+", metavar=f.name.upper(), help=f.help)
    q = p.add_argument_group("protocol")
    q.add_argument("--warmup", type=str, help="unrecorded warm-up runs per cell and process (default: 1)")
    q.add_argument("--engine", choices=s.ENGINES, help="loop (manual decode loop), generate (HF generate) or http "
                   "(an OpenAI-compatible server: --endpoint); default loop")
    q.add_argument("--timing", choices=s.TIMINGS, help="step, events or ends (default: ends); engine http: stream "
                   "(every token's arrival, the default) or ends")
    q.add_argument("--memory", choices=s.MEMORY_MODES, help="memory readings: off, endpoints, sampled (default: endpoints)")
    q.add_argument("--memory-interval", type=str, help="sampling period in seconds for --memory sampled (default: 0.005)")
    q.add_argument("--weights", choices=s.WEIGHTS, help="auto, pretrained or random (default: auto)")
    q.add_argument("--isolation", choices=s.ISOLATIONS, help="none, model, cell or run: when to start a fresh process "
                   "(default: none)")
    q.add_argument("--processes", type=str, metavar="N", help="run the grid as N passes, each in its own fresh "
                   "process, trial t of every cell in pass t %% N (default: 1)")
    q.add_argument("--order", choices=s.ORDERS, help="random (default) or sequential")
    h = p.add_argument_group("engine http: an OpenAI-compatible server (docs/http.md)")
    h.add_argument("--endpoint", metavar="URL", help="base URL up to /v1, e.g. http://127.0.0.1:8080/v1 (with "
                   "--engine http; no key in it)")
    h.add_argument("--api", choices=("completions", "chat"), help="/v1/completions (default) or /v1/chat/completions")
    h.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the API key (the key itself "
                   "is never recorded)")
    h.add_argument("--server-cmd", metavar="TEMPLATE", help="start a fresh server per configuration (--isolation "
                   "picks how often) with this shell command; placeholders {model} {port} {host} {dtype} "
                   "{prompt_len} {budget}...")
    h.add_argument("--server-ready-timeout", metavar="SECONDS", help="how long a --server-cmd server may take to "
                   "answer GET /v1/models (default: 300)")
    c = p.add_argument_group("where runs execute (dask.distributed)")
    c.add_argument("--scheduler", metavar="ADDRESS", help="send the runs to the dask workers of this scheduler "
                   "(each offering its device as a resource: dask worker ADDRESS --nthreads 1 --resources cpu=1)")
    c.add_argument("--cluster", choices=("local",), help="local: send the runs through a dask cluster of one "
                   "worker on this machine")
    q.add_argument("--seed", type=str, help="seed of the run order and prompts (default: 0)")
    q.add_argument("--timeout", type=str, help="per-run limit in seconds; 'none' for no limit (default: none)")
    q.add_argument("--refine", type=str, metavar="RESOLUTION", help="after the grid, bisect between budgets whose latencies "
                   "differ until each boundary is located to RESOLUTION tokens")
    q.add_argument("--refine-max-runs", type=str, help="most runs refinement may add (default: as many as the grid)")
    o = p.add_argument_group("files and output")
    o.add_argument("--config", metavar="TOML", help="sweep settings from a TOML file (flags given here win)")
    o.add_argument("-o", "--output", metavar="PATH", help="dataset to write (default: runs/<host>-<time>.nc); "
                   "the journal goes beside it as PATH with suffix .journal")
    o.add_argument("--title", help="title attr of the dataset")
    o.add_argument("--force", action="store_true", help="replace an existing output and its journal")
    o.add_argument("--quiet", action="store_true", help="no live bar and no summary (errors still go to stderr)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m collector``."""
    parser = _Parser(prog="python -m collector", description="Measure decoding latency sweeps and record them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from collector.dataset.schema import SCHEMA_VERSION

    run = sub.add_parser("run", help="run a sweep (no flags: a quick default sweep)",
                         description=f"Run a sweep and write a schema-v{SCHEMA_VERSION} netCDF dataset "
                                     "(docs/schema.md).")
    _add_run_flags(run)
    res = sub.add_parser("resume", help="continue an interrupted sweep from its journal")
    res.add_argument("journal", help="the .journal file beside the output")
    res.add_argument("-o", "--output", help="write the dataset here instead of the sweep's output")
    res.add_argument("--retry-failed", action="store_true", help="also run the failed runs (error, oom, timeout, "
                     "truncated) again; the journal keeps each earlier attempt and the dataset holds the latest")
    res.add_argument("--quiet", action="store_true", help="no live bar and no summary")
    exp = sub.add_parser("export", help="write the dataset of a journal (also while its sweep runs), or a CSV")
    exp.add_argument("journal", help="the .journal file (with --csv also a dataset .nc)")
    exp.add_argument("-o", "--output", help="dataset path (default: the sweep's output; with --csv: it with .csv)")
    exp.add_argument("--csv", action="store_true", help="write a CSV with one row per run (pandas, R) instead")
    exp.add_argument("--force", action="store_true", help="replace an existing output")
    mer = sub.add_parser("merge", help="merge datasets into one: different cells along their coordinates, other "
                         "hosts or protocols along a dim 'origin'; a cell measured twice on one origin is a conflict")
    mer.add_argument("inputs", nargs="+", metavar="IN.nc")
    mer.add_argument("-o", "--output", required=True, metavar="OUT.nc")
    mer.add_argument("--resolve", choices=("error", "first", "last"), default="error",
                     help="a cell measured in several inputs: error (default), keep the first or the last")
    mer.add_argument("--as-trials", action="store_true",
                     help="repeated collections of the same cells: append each input's trials as new trials "
                          "(refused when the inputs' hosts or protocols differ)")
    mer.add_argument("--title", help="title attr of the merged dataset (default: 'merged decode-regimes datasets')")
    mer.add_argument("--force", action="store_true", help="replace an existing output")
    inf = sub.add_parser("info", help="devices, versions and memory of this machine")
    inf.add_argument("--json", action="store_true", help="machine-readable output")
    imp = sub.add_parser("import-study", help="turn the MPS study harness's benchmark_results_*.csv/.json into a dataset",
                         description="Import the aggregated rows of the study's benchmark harness (one per "
                         "configuration, summaries over runs) as a schema dataset.")
    imp.add_argument("inputs", nargs="+", metavar="FILE", help="benchmark_results_*.csv or .json, in the order written")
    imp.add_argument("-o", "--output", required=True, metavar="OUT.nc")
    imp.add_argument("--prompt-lens", nargs="+", metavar="NAME=N", help="length in tokens of each prompt_name "
                     "(default: long_context=65)")
    imp.add_argument("--warmup", default="3", help="warm-up requests per configuration, 0..100 (default: 3)")
    imp.add_argument("--seed", default="42", help="the harness's seed, 0..2**63-1 (default: 42)")
    imp.add_argument("--title", help="title attr of the dataset")
    imp.add_argument("--force", action="store_true", help="replace an existing output")
    mod = sub.add_parser("models", help="model presets with their sizes")
    mod.add_argument("--json", action="store_true", help="machine-readable output")
    from collector.doctor.cli import add_parser as add_doctor

    add_doctor(sub)
    from collector.diagnose.cli import add_parser as add_diagnose

    add_diagnose(sub)
    return parser


# --------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from collector.sweep.spec import SPEC_KEYS

    return {n: getattr(args, n) for n in SPEC_KEYS if getattr(args, n, None) is not None}


def _default_output() -> str:
    from collector.measuring.environment import host_name

    host = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in host_name()) or "host"
    return str(Path("runs") / f"{host}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.nc")


class _Stop:
    """SIGINT, SIGTERM and SIGHUP while a sweep command runs (a ``with`` block around the journal's).

    The first signal asks the sweep to stop (:attr:`requested`: between runs, the
    run in flight abandoned); the second raises :class:`KeyboardInterrupt`,
    which abandons what is under way (the final save too: its temporary file is
    removed) while the journal is closed and its lock released; later ones are
    ignored, also after the block (the command is ending). A signal ignored
    when the command started (``nohup``) stays ignored.

    The same signal again within :attr:`SAME_REQUEST` seconds is the same
    request, not a second one: GNU ``timeout`` sends its SIGTERM to the
    command and then to the command's process group, so the command receives
    it twice at once (on a busy host Python ran the handler for each, and the
    sweep stopped "interrupted twice" without writing its dataset).
    """

    #: Seconds within which a repeat of the same signal counts as the same request.
    SAME_REQUEST = 0.5

    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, Any] = {}
        self._last: tuple[int, float] | None = None

    @property
    def requested(self) -> bool:
        return self.count > 0

    def _handler(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self._last is not None and self._last[0] == signum and now - self._last[1] < self.SAME_REQUEST:
            return  # the same signal delivered twice by one sender (GNU timeout: the command, then its group)
        self._last = (signum, now)
        self.count += 1
        if self.count == 2:
            raise KeyboardInterrupt

    def __enter__(self) -> "_Stop":
        for sig in self.SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():  # once a stop was asked for, the command ends: more are ignored
            signal.signal(sig, signal.SIG_IGN if self.count else old)


def _stopped_twice(journal: Any) -> int:
    """Exit status and line for a sweep command ended by a second signal (the journal is closed by now)."""
    print(f"interrupted twice: stopped at once, without writing the dataset; every finished run is in the journal "
          f"(lock released): continue with 'python -m collector resume {visible(journal)}'", file=sys.stderr)
    return _EXIT_INTERRUPTED


def _sweep(spec: Any, journal: Any, output: str, quiet: bool, stop: _Stop, retry_failed: bool = False,
           client: Any = None) -> int:
    from rich.console import Console

    from collector.dataset.export import to_dataset
    from collector.dataset.schema import save
    from collector.shared.errors import OutputError
    from collector.shared.safetext import for_rich
    from collector.sweep.progress import LiveProgress, print_summary
    from collector.sweep.runner import run_sweep

    with LiveProgress(quiet=quiet, label=Path(output).name) as live:
        if client is None:
            result = run_sweep(spec, journal, on_event=live, should_stop=lambda: stop.requested,
                               retry_failed=retry_failed)
        else:  # dask workers measure; the records come back to this journal (collector.sweep.cluster)
            from collector.sweep.cluster import run_on_cluster

            result = run_on_cluster(spec, journal, client, on_event=live, should_stop=lambda: stop.requested)
    ds = to_dataset(journal)
    try:
        path = save(ds, output)
    except OutputError as exc:
        raise OutputError(f"{exc}; every run is kept in the journal: free some space, then write the dataset with "
                          f"'python -m collector export {journal.path}'") from None
    err = Console(stderr=True)
    if not quiet:
        print_summary(ds, str(path))
        for series, found in result.boundaries.items():
            where = ", ".join(f"{b.lo}|{b.hi} (x{b.jump:.2f})" for b in found)
            Console().print(f"boundaries {for_rich('/'.join(map(str, series)))}: {where}")
    if result.interrupted:
        err.print(f"interrupted: {result.in_journal} runs in the journal, written to {for_rich(path)}; continue with "
                  f"'python -m collector resume {for_rich(journal.path)}'")
        return _EXIT_INTERRUPTED
    if not quiet:
        Console().print(f"analyse it: python -m analysis regimes {for_rich(shlex.quote(str(path)))}")
    return 0


# --------------------------------------------------------------------------- commands
def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from collector.dataset.storage import check_output, remove_stale_temps
    from collector.measuring.environment import collect
    from collector.sweep.journal import Journal, journal_path, remove_journal
    from collector.sweep.spec import build_spec, check_runnable, read_toml

    base = read_toml(args.config) if args.config else {}
    spec = build_spec(_settings(args), base=base)
    if spec.output is None:
        spec = spec.replace(output=_default_output())
    output = check_output(str(spec.output))
    if output.suffix == ".journal":
        raise CollectorError(f"output {str(output)!r} ends in .journal, which is the journal's own suffix; use .nc")
    jpath = journal_path(output)
    if not args.force:
        for p, what in ((jpath, "journal"), (output, "output")):
            if p.exists():
                hint = f"continue it with 'python -m collector resume {jpath}', " if what == "journal" else ""
                raise CollectorError(f"{what} {str(p)!r} already exists; {hint}pass --force to replace it, or choose "
                                     "another -o")
    check_runnable(spec)
    client = _client(args, spec)  # a scheduler that cannot be reached: refused before anything is touched
    remove_stale_temps(output)  # what a killed final save of this output left
    if args.force:
        remove_journal(jpath)  # refuses while the sweep that owns it lives ("journal ... in use by pid N")
        output.unlink(missing_ok=True)
    env = collect(spec.devices)
    command = "python -m collector " + shlex.join(list(argv))
    with _Stop() as stop:
        try:
            with Journal.create(jpath, spec=spec.to_dict(), environment=env, command=command,
                                replace=args.force) as journal:  # --force: replaced holding its lock
                return _sweep(spec, journal, str(output), args.quiet, stop, client=client)
        except BaseException:  # what the second signal broke may surface as another error (the netCDF library's)
            if stop.count >= 2:
                return _stopped_twice(jpath)
            raise
        finally:
            if client is not None:
                from collector.sweep.cluster import disconnect

                disconnect(client, local=bool(args.cluster))


def _client(args: argparse.Namespace, spec: Any) -> Any:
    """The dask client of ``--scheduler`` / ``--cluster local`` (None: a local sweep); refinement is refused there."""
    if not (args.scheduler or args.cluster):
        return None
    if args.scheduler and args.cluster:
        raise CollectorError(f"--scheduler {args.scheduler!r} and --cluster {args.cluster!r} both name where runs go; "
                             "give one")
    if spec.refine:
        raise CollectorError(f"--refine {spec.refine!r} is not done on a dask cluster; drop it (refine locally after: "
                             "python -m collector resume)")
    from collector.sweep.cluster import connect

    return connect(args.scheduler, local_workers=1, resources={d: 1 for d in spec.devices})


def _cmd_resume(args: argparse.Namespace) -> int:
    with _Stop() as stop:
        try:
            return _resume(args, stop)
        except BaseException:
            if stop.count >= 2:
                return _stopped_twice(args.journal)
            raise


def _resume(args: argparse.Namespace, stop: _Stop) -> int:
    from collector.dataset.export import spec_of
    from collector.dataset.storage import check_output, remove_stale_temps
    from collector.measuring.environment import collect, resume_changes
    from collector.shared.errors import JournalError
    from collector.sweep.journal import Journal, output_beside
    from collector.sweep.spec import check_runnable

    journal = Journal.open(args.journal, write=True)
    with journal:
        spec = spec_of(journal)
        for _ in journal.rows():  # a damaged row is named now, not after the remaining runs
            pass
        changes = resume_changes(journal.environment, collect(spec.devices))
        if changes:
            raise JournalError(f"refusing to resume {str(journal.path)!r}: the environment changed ({'; '.join(changes)}); "
                               "export what it holds and start a new sweep")
        output = args.output or output_beside(journal.path, spec.output)
        if not output:
            raise CollectorError("the journal stores no output path; give one with -o OUT.nc")
        check_output(output, inputs=[journal.path])
        check_runnable(spec)
        remove_stale_temps(output)  # what a killed final save of this output left
        return _sweep(spec, journal, str(output), args.quiet, stop, args.retry_failed)


def _refuse_existing(path: str | Path, force: bool, inputs: Sequence[str | Path] = ()) -> None:
    from collector.dataset.storage import check_output

    check_output(path, inputs=inputs)  # a file name, not a journal nor an input, in a folder that takes it
    if Path(path).exists() and not force:
        raise CollectorError(f"output {str(path)!r} already exists; pass --force to replace it, or choose another -o")


def _cmd_export(args: argparse.Namespace) -> int:
    from collector.dataset.export import export, spec_of, to_dataset
    from collector.dataset.schema import load
    from collector.shared.errors import ConfigError
    from collector.sweep.journal import Journal, output_beside

    if args.output:
        _refuse_existing(args.output, args.force)  # a writable file path, before the journal is read
    if args.csv and Path(args.journal).suffix == ".nc":  # a dataset file: straight to CSV
        ds, target = load(args.journal), args.output or str(Path(args.journal).with_suffix(".csv"))
    else:
        with Journal.open(args.journal) as journal:
            target = args.output or output_beside(journal.path, spec_of(journal).output)
            if not target:
                raise ConfigError(f"journal {args.journal!r} stores no output path; give one with -o OUT.nc")
            if args.csv:
                ds = to_dataset(journal)
                target = args.output or str(Path(target).with_suffix(".csv"))
    _refuse_existing(target, args.force, [args.journal])
    if args.csv:
        from collector.dataset.tidy import write_csv

        path = write_csv(ds, target)
    else:
        path = export(args.journal, target)
    print(f"wrote {visible(path)}")
    return 0


def _cmd_merge(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from collector.dataset.export import merge

    _refuse_existing(args.output, args.force, args.inputs)
    path = merge(args.inputs, args.output, resolve=args.resolve, as_trials=args.as_trials,
                 command="python -m collector " + shlex.join(list(argv)), title=args.title)
    print(f"wrote {visible(path)}")
    return 0


def _cmd_import_study(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from collector.dataset.schema import save
    from collector.dataset.study_import import import_study

    _refuse_existing(args.output, args.force, args.inputs)
    ds = import_study(args.inputs, prompt_lens=args.prompt_lens, warmup=args.warmup, seed=args.seed, title=args.title,
                      command="python -m collector " + shlex.join(list(argv)))
    path = save(ds, args.output)
    ok = int((ds["status"] == 0).sum())
    print(f"wrote {visible(path)}: {ok} configuration(s) ok, {int((ds['status'] == 1).sum())} failed")
    return 0


def _gib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB" if math.isfinite(x) else "-"


def _cmd_info(args: argparse.Namespace) -> int:
    from collector.measuring.environment import info

    data = info()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"host {data['host']}  ({data['platform']})\nprocessor {data['processor']}\n"
              f"best device for a sweep: {data['best_device']}")
    t = Table(title="devices")
    for c in ("device", "available", "detail"):
        t.add_column(c)
    for d in data["devices"]:
        t.add_row(d["name"], "yes" if d["available"] else "no", d["detail"])
    con.print(t)
    mem = data["memory"]
    con.print("memory: total {}, available {}, swap {} of {}".format(
        _gib(mem["total"]), _gib(mem["available"]), _gib(mem["swap_used"]), _gib(mem["swap_total"])) +
        "".join(f", {k.split('_')[0]} limit {_gib(v)}" for k, v in mem.items() if k.endswith("_limit")))
    t = Table(title="versions")
    t.add_column("package")
    t.add_column("version")
    for k, v in data["versions"].items():
        t.add_row(k, v)
    con.print(t)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from collector.measuring.models import presets

    rows = presets()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="model presets")
    for c in ("name", "architecture", "parameters", "layers", "hidden", "positions"):
        t.add_column(c, no_wrap=c == "name")
    for r in rows:
        t.add_row(r.name, r.architecture, f"{r.n_params / 1e6:.1f} M", str(r.n_layers), str(r.hidden_size),
                  str(r.max_positions))
    con = Console()
    con.print(t)
    con.print("Random weights unless the published weights are in the local Hugging Face cache "
              "(--weights pretrained insists on them). Device sim knows these names too.")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from collector.doctor.cli import run

    return run(args)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from collector.diagnose.cli import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def one_line_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {visible(message)}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "import-study":
            return _cmd_import_study(args, argv)
        if args.command == "merge":
            return _cmd_merge(args, argv)
        handlers = {"resume": _cmd_resume, "export": _cmd_export, "info": _cmd_info,
                    "models": _cmd_models, "doctor": _cmd_doctor,
                    "diagnose": _cmd_diagnose}
        return handlers[args.command](args)
    except (CollectorError, OSError, sqlite3.Error) as exc:
        msg = visible(str(exc).replace("\n", " "))  # names and texts from files: no control characters
        print(f"error: {msg}", file=sys.stderr)
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
