"""The analyses, declared once (like :data:`collector.shared.factors.FACTORS`).

Every per-dataset analysis is an :class:`Analysis`: its function (a pure
``xarray.Dataset -> xarray.Dataset``), the table of the variables it returns,
its short name, one line of help, the report's section title and question,
the table that shows its result, its command-line options, its figures and the
settings that make it fast in tests.

Everything else is derived from :data:`ANALYSES` and indexes by name: the
package's functions (``analysis.regimes`` ...), the commands of
``python -m analysis`` (command = function name, the short name an alias),
the report's sections, tasks, tables and figures, and the tests' lists of
public calls and result tables.

To add an analysis: write its module (the function, ``__all__``, a
``VARIABLES`` table, numpydoc ``Returns`` naming every variable, a table
renderer), add one :class:`Analysis` below, and document it in
docs/methods.md and docs/cli.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import xarray as xr

from analysis.cli.regimes import print_regimes, to_json
from analysis.core.outputs import ResultVar
from analysis.detect.baseline import SCALINGS
from analysis.detect.segments import METHODS, NORMAL_RULES
from analysis.questions.backends import VARIABLES as BACKENDS_VARS
from analysis.questions.backends import compare_backends
from analysis.questions.boundaries import VARIABLES as BOUNDARIES_VARS
from analysis.questions.boundaries import boundaries
from analysis.questions.kv import VARIABLES as KV_VARS
from analysis.questions.kv import kv_speedup
from analysis.questions.levels import VARIABLES as LEVELS_VARS
from analysis.questions.levels import levels
from analysis.questions.levels import table as levels_table
from analysis.questions.memory import VARIABLES as MEMORY_VARS
from analysis.questions.memory import memory_effect
from analysis.questions.monotonicity import VARIABLES as MONOTONICITY_VARS
from analysis.questions.monotonicity import monotonicity
from analysis.questions.phases import VARIABLES as PHASES_VARS
from analysis.questions.phases import phases
from analysis.questions.spread import VARIABLES as SPREAD_VARS
from analysis.questions.spread import spread
from analysis.questions.spread import table as spread_table
from analysis.questions.steps import VARIABLES as STEPS_VARS
from analysis.questions.steps import step_regimes
from analysis.regimes import VARIABLES as REGIMES_VARS
from analysis.regimes import regimes
from analysis.tables import questions as tables
from analysis.tables.table import Table

__all__ = ["ANALYSES", "Analysis", "BY_NAME", "Figure", "Option", "REGIMES", "STEP_RUNS", "find", "option"]

#: The analysis the others build on (the report computes it first and passes it as ``reg``).
REGIMES = "regimes"
#: Above this many runs with per-step times, the report analyses the series with the strongest regimes only.
STEP_RUNS = 5_000


@dataclass(frozen=True)
class Option:
    """One command-line option (argparse's ``add_argument``) of an analysis' command.

    Attributes
    ----------
    flag
        The option, e.g. ``"--n-boot"``.
    help
        Its help text.
    kwargs
        The rest of ``add_argument``'s keywords (``type``, ``default``, ``choices``, ``action``).
    call
        Passed to the function as the keyword named like the option (``--n-boot`` -> ``n_boot``);
        False: read by the table (``--all``).
    """

    flag: str
    help: str
    kwargs: Mapping[str, Any]
    call: bool = True

    @property
    def dest(self) -> str:
        """The argparse attribute and the function's keyword."""
        return self.flag.lstrip("-").replace("-", "_")

    def add(self, parser: argparse.ArgumentParser) -> None:
        """Add the option to ``parser``."""
        parser.add_argument(self.flag, help=self.help, **self.kwargs)


def option(flag: str, help: str, *, call: bool = True, **kwargs: Any) -> Option:
    """An :class:`Option`; ``kwargs`` go to argparse's ``add_argument``."""
    return Option(flag, help, kwargs, call)


@dataclass(frozen=True)
class Figure:
    """One figure of the report, drawn by ``analysis.plot.<plot>(ds, ...)``.

    Attributes
    ----------
    name
        File name (``figures/NAME.png|svg``).
    plot
        Function of :mod:`analysis.plot` that draws it.
    caption
        The caption under it.
    needs
        Dataset variables it needs (without them it is not drawn).
    panels
        ``"all"``: ``max_panels`` series, ``"few"``: at most 6, None: one panel (no ``max_panels``).
    reg
        The figure takes the regimes result (``reg=``).
    result
        Keyword under which it takes its analysis' own result (None: it does not).
    section
        The report section it appears in (None: its analysis' section).
    """

    name: str
    plot: str
    caption: str
    needs: tuple[str, ...] = ()
    panels: str | None = "all"
    reg: bool = True
    result: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class Analysis:
    """One analysis of a dataset.

    Attributes
    ----------
    name
        The function's name: ``analysis.<name>`` and the command ``python -m analysis <name>``.
    function
        ``function(ds, **options) -> xarray.Dataset``.
    variables
        Its ``VARIABLES`` table: the result holds exactly these, in order.
    key
        Short name: an alias of the command and the report section's id.
    help
        One line: the command's help.
    title, intro
        The report section's title and the question it answers.
    table
        ``table(result, *, max_rows=..., [show_all=...]) -> Table``: the terminal's and the report's table.
    options
        The command's options after ``RUN.nc ...`` (``--json`` is added to every command).
    figures
        The report's figures of it.
    fast
        Keywords set to a small count of resamples in fast test calls (``n_perm``, ``n_boot``).
    takes_reg
        The function takes the regimes result as ``reg=`` (the report passes its own).
    needs, missing
        Dataset variables without which the report leaves it out, and the reason the page then gives.
    max_runs
        Above this many runs of ``needs[0]``, the report analyses the series with the strongest regimes only.
    cli_print, json
        Custom terminal output ``cli_print(result, args)`` and JSON payload ``json(result) -> dict``
        (None: the table and the summary; the result in xarray's ``to_dict`` layout).
    """

    name: str
    function: Callable[..., xr.Dataset]
    variables: Mapping[str, ResultVar]
    key: str
    help: str
    title: str
    intro: str
    table: Callable[..., Table] | None
    options: tuple[Option, ...] = ()
    figures: tuple[Figure, ...] = ()
    fast: tuple[str, ...] = ()
    takes_reg: bool = True
    needs: tuple[str, ...] = ()
    missing: str = ""
    max_runs: int | None = None
    cli_print: Callable[[xr.Dataset, argparse.Namespace], None] | None = None
    json: Callable[[xr.Dataset], dict[str, Any]] | None = None

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names of the command (the short name, where it differs)."""
        return (self.key,) if self.key != self.name else ()

    @property
    def show_all(self) -> bool:
        """The command has ``--all`` (the table lists every series, not only those with something to report)."""
        return any(o.flag == "--all" for o in self.options)


# ----------------------------------------------------------------------------- options shared by several commands
def _alpha(help: str = "false discovery rate (default: 0.05)") -> Option:
    return option("--alpha", help, type=float, default=0.05)


def _seed(help: str = "seed of the resampling (default: 0)") -> Option:
    return option("--seed", help, type=int, default=0)


def _all(help: str = "also list the series with nothing to report") -> Option:
    return option("--all", help, call=False, action="store_true")


def _var(help: str = "variable to analyse (default: latency)") -> Option:
    return option("--var", help, default="latency")


def _names(text: str) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]`` (None when empty)."""
    return [c.strip() for c in text.split(",") if c.strip()] or None


_FAST = ("n_perm", "n_boot")

# ----------------------------------------------------------------------------- the analyses
ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        REGIMES, regimes, REGIMES_VARS, "regimes",
        "find discrete latency regimes along the budget axis",
        "Regimes", "Is latency a smooth function of the budget, or are there budget intervals where it jumps?",
        None,
        options=(
            _var(),
            option("--method", "deprecated, ignored: the scan tests every interval", choices=METHODS, default="pelt"),
            option("--penalty", "deprecated, ignored", type=float, default=None),
            option("--min-effect", "smallest relative effect that counts (default: 0.2)", type=float, default=0.2),
            _alpha("false discovery rate across series (default: 0.05)"),
            option("--scaling", "expected scaling with budget (default: auto)", choices=SCALINGS, default="auto"),
            option("--normal", "normal level: lowest (regimes are slowdowns, default), highest (drops) or majority "
                   "(either)", choices=NORMAL_RULES, default="lowest"),
            option("--n-boot", "deprecated, ignored", type=int, default=200),
            _seed(),
            _all("list every segment of every series, not only anomalous ones"),
        ),
        figures=(
            Figure("latency", "latency", "Latency against budget per series: trials (points), their median (line), "
                   "the expected scaling (dashed) and each anomalous regime shaded from its first to its last budget, "
                   "with the 95% intervals of its boundaries along the top."),
            Figure("decode_per_token", "decode_per_token", "Decode time per decoded token: flat with a working KV "
                   "cache, rising without; a regime shows as a step."),
            Figure("drift", "drift", "Each run's latency over its expected value in execution order (left) and which "
                   "budget ran when (right). Runs inside regimes in red; orange when the regime is confounded with "
                   "execution time.", panels=None, section="drift"),
            Figure("power", "power", "Power: the share of one-budget regimes of each ratio that each series would "
                   "have found (planted at interior budgets into its own noise, through the whole decision rule); "
                   "the x on the dashed 80 % line is its smallest detectable ratio (mde). Smaller regimes are found "
                   "less often, not never.", panels="few"),
        ),
        fast=_FAST, takes_reg=False, cli_print=print_regimes, json=to_json,
    ),
    Analysis(
        "phases", phases, PHASES_VARS, "phases",
        "which phase (prefill or decode) carries each regime's excess",
        "Phases", "Does a regime's extra time come from the prefill or from the decode steps?",
        tables.phases,
        options=(option("--degree", "degree of each phase's budget polynomial (default: 2)", type=int, default=2),
                 _alpha()),
        figures=(Figure("phases", "phases", "Decode (top) and prefill (bottom) time around each regime.",
                        needs=("prefill_time", "decode_time"), panels="few", result="result"),),
        fast=_FAST,
    ),
    Analysis(
        "memory_effect", memory_effect, MEMORY_VARS, "memory",
        "whether memory explains the regimes",
        "Memory", "Does memory use explain the regimes, or does it grow smoothly through them?",
        tables.memory,
        options=(option("--covariates", "comma-separated memory variables (default: all present)", type=_names,
                        default=None),
                 option("--min-jump", "smallest relative memory change that counts (0.02)", type=float, default=0.02),
                 _alpha(), _all()),
        figures=(Figure("memory", "memory", "Memory covariates as a change from the smallest budget, with the "
                        "regimes.", panels="few"),),
        fast=_FAST,
    ),
    Analysis(
        "kv_speedup", kv_speedup, KV_VARS, "kv",
        "KV-cache speedup per budget and where it collapses",
        "KV-cache speedup", "How much does the KV cache save, and does its advantage collapse inside a regime?",
        tables.kv,
        options=(option("--n-boot", "bootstrap resamples of the CI (default: 1000)", type=int, default=1000),
                 _seed(), _alpha()),
        figures=(Figure("kv_speedup", "kv_speedup", "KV-cache speedup with its 95% CI band, the expected speedup "
                        "(dashed) and the collapse shaded.", reg=False, result="kv"),),
        fast=_FAST,
    ),
    Analysis(
        "monotonicity", monotonicity, MONOTONICITY_VARS, "monotonicity",
        "where more tokens take less time",
        "Monotonicity", "Does generating more tokens ever take less time?",
        tables.monotonicity,
        options=(_var("variable to check (default: latency)"),
                 option("--min-effect", "smallest inversion that counts (default: 0)", type=float, default=0.0),
                 _alpha(), _all()),
        takes_reg=False,
    ),
    Analysis(
        "step_regimes", step_regimes, STEPS_VARS, "steps",
        "execution modes of the per-step times",
        "Per-step modes", "Inside a slow run, is every decode step slow, or does the run switch into a slow mode "
        "part-way?",
        tables.steps,
        options=(option("--max-modes", "most execution modes tried (default: 4)", type=int, default=4),
                 option("--min-effect", "smallest difference between modes (default: 0.2)", type=float, default=0.2),
                 _seed("seed of the mixture fit (default: 0)"), _all()),
        figures=(Figure("regime_map", "regime_map", "Regime map: median per-step time by budget (x) and decode step "
                        "(y); the bar above a map marks the latency regime.", needs=("step_time",), panels="few"),),
        takes_reg=False, needs=("step_time",), missing="the dataset has no per-step times (timing 'ends')",
        max_runs=STEP_RUNS,
    ),
    Analysis(
        "boundaries", boundaries, BOUNDARIES_VARS, "boundaries",
        "whether onset and recovery follow budget or total length",
        "Boundaries: budget or total length",
        "With several prompt lengths: do regimes start at a fixed budget or a fixed total length?",
        tables.boundaries,
        options=(_alpha(),),
        fast=_FAST,
    ),
    Analysis(
        "compare_backends", compare_backends, BACKENDS_VARS, "backends",
        "which devices show regimes, per model",
        "Backend comparison", "Which devices show regimes, per model?",
        tables.backends,
        options=(_alpha(),),
        fast=_FAST,
    ),
    Analysis(
        "spread", spread, SPREAD_VARS, "spread",
        "run-to-run spread of each cell (coefficient of variation)",
        "Run-to-run spread", "How much do the runs of one cell disagree, before any model is fitted?",
        spread_table,
        options=(_var("variable to measure (default: latency)"),),
        takes_reg=False,
    ),
    Analysis(
        "levels", levels, LEVELS_VARS, "levels",
        "noise of each level (run, process) and the best runs per process (Kalibera-Jones)",
        "Noise levels", "How much noise does each level add (a run, a process), and how many runs per process?",
        levels_table,
        options=(_var("variable to measure (default: latency)"),),
        takes_reg=False,
    ),
)

#: Name -> analysis.
BY_NAME: dict[str, Analysis] = {a.name: a for a in ANALYSES}


def find(name: str) -> Analysis:
    """The analysis called ``name`` (its function name or its short name); KeyError if none."""
    for a in ANALYSES:
        if name in (a.name, a.key):
            return a
    raise KeyError(f"no analysis {name!r}; known: {', '.join(a.name for a in ANALYSES)}")
