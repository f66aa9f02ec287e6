"""The sweep factors, declared once (torch-free, numpy-free).

Every dim of a sweep is a :class:`Factor`: its name (the dataset dim, the
journal column, the :class:`RunKey` field), the kind of its values, the
allowed values or how they are checked, its meaning and units for the docs,
the sweep's default, whether it belongs to the model-load key (changing it
means loading the model again), the sweep setting and command-line flag that
give its values, and the value assumed for files written before it existed.

Everything else is derived from :data:`FACTORS` and indexes by name:
:data:`SWEEP_DIMS` (the dataset dims, in order), :class:`RunKey` and
:class:`Cell`, :data:`LOAD_KEY`, the journal's columns, the sweep spec's
parsing and the CLI flags, the sweep plan (:func:`grid`), export, progress,
the synthetic generator and ``docs/schema.md``.

Roles: ``series`` factors index independent series, ``budget`` is the axis
of change, ``trial`` the replicates (a count in the spec, ``0..T-1`` as a dim).

A cell can be *not applicable*: a factor value other than the factor's
``neutral`` one may need other factors to take given values
(``cache_impl='static'`` needs ``cache=True``: there is no cache to
pre-allocate when the whole sequence is recomputed every step). Such cells are
never run; their status is ``not_applicable``.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, Any, NamedTuple

from collector.shared.errors import ConfigError
from collector.shared.hardware import DEVICES, DTYPES, PREFERENCE, REAL_DEVICES

__all__ = [
    "Factor",
    "FACTORS",
    "BY_NAME",
    "SWEEP_DIMS",
    "CELL_DIMS",
    "SERIES_DIMS",
    "LOAD_KEY",
    "RunKey",
    "Cell",
    "applicable",
    "inapplicable_reason",
    "grid",
    "factor",
]

@dataclass(frozen=True)
class Factor:
    """One sweep factor (a dataset dim).

    Attributes
    ----------
    name
        Dim name, journal column and :class:`RunKey` field.
    kind
        ``"str"``, ``"bool"`` or ``"int"``.
    meaning
        One line for the docs (``long_name`` of the coordinate).
    units
        CF units of the coordinate (``"1"`` for counts), None for labels and flags.
    role
        ``"series"``, ``"budget"`` (axis of change) or ``"trial"`` (replicates).
    setting
        Sweep-spec setting that lists its values (``"models"``), or the count for ``trial``.
    flag
        Command-line flag of ``python -m collector run``.
    choices
        Allowed values (None: free names, or integers >= ``minimum``).
    default
        Values a sweep uses when none are given (None: required, or computed by the quick
        defaults of ``python -m collector run``); for ``trial``, the count.
    load_key
        Part of the model-load key: a new value means loading the model again.
    minimum
        Smallest allowed integer (``kind == "int"``).
    v1_value
        Value assumed for data written before the factor existed (schema v1, journal v1).
    neutral, needs
        A value other than ``neutral`` needs the other factors in ``needs`` to
        take those values; cells where it does not are not applicable.
    aliases
        Other names accepted for ``setting`` in a TOML file or settings mapping.
    help
        Help text of the flag.
    """

    name: str
    kind: str
    meaning: str
    units: str | None
    role: str
    setting: str
    flag: str
    choices: tuple[Any, ...] | None = None
    default: tuple[Any, ...] | None = None
    load_key: bool = False
    minimum: int | None = None
    v1_value: Any = None
    neutral: Any = None
    needs: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    help: str = ""

    @property
    def pytype(self) -> type:
        """The Python type of one value."""
        return {"str": str, "bool": bool, "int": int}[self.kind]


FACTORS: tuple[Factor, ...] = (
    Factor(
        "model", "str", "model name as given (hub id, local path or preset name)", None, "series", "models",
        "--models", load_key=True, aliases=("model",),
        help="presets, local paths or cached hub ids (space- or comma-separated; default: distilgpt2)",
    ),
    Factor(
        "device", "str", f"backend: {', '.join(REAL_DEVICES)} (or sim: simulated, and the dataset says so; http: a server "
        "reached through an OpenAI-compatible endpoint, engine http)", None,
        "series", "devices", "--devices", choices=DEVICES, load_key=True, aliases=("device",),
        help=f"{', '.join(DEVICES)} (default: best here: {' > '.join(PREFERENCE)})",
    ),
    Factor(
        "dtype", "str", f"compute dtype: {', '.join(DTYPES[:-1])} or {DTYPES[-1]}", None, "series", "dtypes",
        "--dtypes", choices=DTYPES, default=DTYPES[:1], load_key=True, aliases=("dtype",),
        help=f"{', '.join(DTYPES)} (default: {DTYPES[0]})",
    ),
    Factor(
        "attn", "str",
        "attention implementation (transformers attn_implementation): sdpa, eager, or default "
        "(not set: transformers' choice, sdpa where the architecture has it, else eager)",
        None, "series", "attns", "--attn", choices=("default", "sdpa", "eager"), default=("default",),
        load_key=True, v1_value="default", aliases=("attn", "attn_implementation"),
        help="attention implementation: default (transformers' choice), sdpa, eager (several allowed; "
             "default: default)",
    ),
    Factor(
        "cache", "bool", "KV cache used (1) or the whole sequence recomputed every step (0)", None, "series",
        "caches", "--cache", choices=(True, False), default=(True, False), aliases=("cache",),
        help="KV cache on, off or both (default: both)",
    ),
    Factor(
        "cache_impl", "str",
        "KV cache implementation: dynamic (grows by concatenation every step) or static (pre-allocated "
        "for the run's full length); only with the cache on",
        None, "series", "cache_impls", "--cache-impl", choices=("dynamic", "static"), default=("dynamic",),
        v1_value="dynamic", neutral="dynamic", needs={"cache": True}, aliases=("cache_impl",),
        help="KV cache implementation: dynamic, static (several allowed; default: dynamic); "
             "static applies to cache-on runs only",
    ),
    Factor(
        "prompt_len", "int", "prompt length in tokens", "1", "series", "prompt_lens", "--prompt-lens",
        default=(8,), minimum=1, aliases=("prompt_len", "prompt-lens"),
        help="prompt lengths in tokens (default: 8)",
    ),
    Factor(
        "budget", "int", "new tokens requested; exactly this many are generated", "1", "budget", "budgets",
        "--budgets", default=tuple(range(2, 25, 2)), minimum=1, aliases=("budget",),
        help="new-token budgets: list and/or start:stop:step ranges, stop included (default: 2:24:2)",
    ),
    Factor(
        "trial", "int", "replicate 0..T-1", "1", "trial", "trials", "--trials", default=(3,), minimum=1,
        help="replicates per cell (default: 3)",
    ),
)

BY_NAME: dict[str, Factor] = {f.name: f for f in FACTORS}
#: The dataset's sweep dims, in order.
SWEEP_DIMS: tuple[str, ...] = tuple(f.name for f in FACTORS)
#: Dims of a cell (grid point): every sweep dim but the trial.
CELL_DIMS: tuple[str, ...] = tuple(f.name for f in FACTORS if f.role != "trial")
#: Dims of a series (along the budget axis): every sweep dim but budget and trial.
SERIES_DIMS: tuple[str, ...] = tuple(f.name for f in FACTORS if f.role == "series")
#: Dims of the model-load key: a worker loads one model per distinct value.
LOAD_KEY: tuple[str, ...] = tuple(f.name for f in FACTORS if f.load_key)


def factor(name: str) -> Factor:
    """The factor called ``name``; :class:`ConfigError` naming the choices otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown factor {name!r}; choices: {', '.join(SWEEP_DIMS)}") from None


if TYPE_CHECKING:
    # What a type checker sees of the bases built from FACTORS below (tests/test_factors.py keeps them equal).
    class _CellBase(NamedTuple):
        model: str
        device: str
        dtype: str
        attn: str
        cache: bool
        cache_impl: str
        prompt_len: int
        budget: int

    class _RunKeyBase(NamedTuple):
        model: str
        device: str
        dtype: str
        attn: str
        cache: bool
        cache_impl: str
        prompt_len: int
        budget: int
        trial: int
else:
    _CellBase = collections.namedtuple("_CellBase", CELL_DIMS)
    _RunKeyBase = collections.namedtuple("_RunKeyBase", SWEEP_DIMS)


class Cell(_CellBase):
    """A grid point: one value of every factor but the trial (fields named as :data:`CELL_DIMS`)."""

    __slots__ = ()

    @property
    def series(self) -> tuple[Any, ...]:
        """Values of the series dims (every factor but budget and trial)."""
        return tuple(getattr(self, d) for d in SERIES_DIMS)

    @property
    def load_key(self) -> tuple[Any, ...]:
        """Values of the model-load key dims (:data:`LOAD_KEY`)."""
        return tuple(getattr(self, d) for d in LOAD_KEY)


class RunKey(_RunKeyBase):
    """The coordinates of one run: a value of every sweep dim (fields named as :data:`SWEEP_DIMS`).

    Build it by name (``RunKey(**values)``); :meth:`from_mapping` fills
    factors a stored key lacks with their ``v1_value``.
    """

    __slots__ = ()

    @property
    def cell(self) -> Cell:
        """The grid point (everything but the trial)."""
        return Cell(**{d: getattr(self, d) for d in CELL_DIMS})

    @property
    def series(self) -> tuple[Any, ...]:
        """The series along the budget axis (values of :data:`SERIES_DIMS`)."""
        return tuple(getattr(self, d) for d in SERIES_DIMS)

    @property
    def load_key(self) -> tuple[Any, ...]:
        """Values of the model-load key dims (:data:`LOAD_KEY`)."""
        return tuple(getattr(self, d) for d in LOAD_KEY)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RunKey":
        """A key from a mapping of dim -> value, typed by the declaration; missing factors get their ``v1_value``.

        Raises
        ------
        ConfigError
            A factor is missing and has no ``v1_value``.
        """
        out: dict[str, Any] = {}
        for f in FACTORS:
            if f.name in values:
                v = values[f.name]
            elif f.v1_value is not None:
                v = f.v1_value
            else:
                raise ConfigError(f"run key lacks factor {f.name!r}; got {dict(values)!r}")
            out[f.name] = f.pytype(v)
        return cls(**out)

    @classmethod
    def of(cls, series: tuple[Any, ...], *, budget: int, trial: int) -> "RunKey":
        """The key of ``budget`` and ``trial`` in a series (values of :data:`SERIES_DIMS`)."""
        return cls(**dict(zip(SERIES_DIMS, series)), budget=budget, trial=trial)


def inapplicable_reason(cell: Mapping[str, Any]) -> str | None:
    """Why a cell (a mapping dim -> value) is not applicable, or None when it is."""
    for f in FACTORS:
        if f.name not in cell or f.neutral is None or cell[f.name] == f.neutral:
            continue
        for other, wanted in f.needs.items():
            if other in cell and cell[other] != wanted:
                return f"{f.name}={cell[f.name]!r} needs {other}={wanted!r}"
    return None


def applicable(cell: Mapping[str, Any]) -> bool:
    """True unless a factor's value needs other factor values the cell does not have."""
    return inapplicable_reason(cell) is None


def grid(values: Mapping[str, tuple[Any, ...]], *, trials: int | None = None,
         skip_inapplicable: bool = True) -> Iterator[RunKey]:
    """Every run of a grid in C order over :data:`SWEEP_DIMS`.

    Parameters
    ----------
    values
        Values of every cell dim (``trial`` may be given too; else ``trials``).
    trials
        Number of replicates (trial ``0..trials-1``) when ``values`` has no ``trial``.
    skip_inapplicable
        Leave out cells that are not applicable (:func:`applicable`).
    """
    axes: list[tuple[Any, ...]] = []
    for d in SWEEP_DIMS:
        if d == "trial" and "trial" not in values:
            if trials is None:
                raise ConfigError("grid() needs the trial values or a trials count")
            axes.append(tuple(range(trials)))
        else:
            axes.append(tuple(values[d]))
    for combo in product(*axes):
        key = RunKey(*combo)
        if skip_inapplicable and not applicable(key._asdict()):
            continue
        yield key
