"""Parsers of sweep settings: names, integer lists and ranges, cache modes, choices, seconds.

Each takes what a flag or a TOML value may hold (a string, a number, a list)
and returns a clean value, or raises :class:`~collector.shared.errors.ConfigError`
quoting the bad value and naming what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from collector.shared.errors import ConfigError

__all__ = [
    "MAX_BUDGET",
    "CACHE_CHOICES",
    "parse_names",
    "parse_ints",
    "parse_budgets",
    "parse_cache",
    "parse_int",
    "parse_seconds",
    "choice",
]

#: Largest budget a sweep accepts (a typo guard; models check their own positions).
MAX_BUDGET = 1_000_000
CACHE_CHOICES: tuple[str, ...] = ("on", "off", "both")


def _pieces(value: Any, what: str) -> list[Any]:
    """Split comma-separated strings; accept lists of strings/numbers."""
    if isinstance(value, (str, int, float, bool)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise ConfigError(f"{what} must be a list or a comma-separated string, got {value!r}")
    out: list[Any] = []
    for item in value:
        if isinstance(item, str):
            out.extend(p.strip() for p in item.split(",") if p.strip())
        else:
            out.append(item)
    if not out:
        raise ConfigError(f"{what} needs at least one value, got {value!r}")
    return out


def parse_names(value: Any, what: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
    """Names from a list or ``"a,b"``; duplicates dropped in order; checked against ``choices``."""
    names: list[str] = []
    for item in _pieces(value, what):
        if not isinstance(item, str):
            raise ConfigError(f"{what} must be names (strings), got {item!r}")
        if "\x00" in item:  # a netCDF file cuts a name at NUL: refused before the sweep, not at its final save
            raise ConfigError(f"{what.rstrip('s')} name {item!r} holds a NUL character, which no dataset file can store")
        if choices is not None and item not in choices:
            raise ConfigError(f"unknown {what.rstrip('s')} {item!r}; choices: {', '.join(choices)}")
        if item not in names:
            names.append(item)
    return tuple(names)


def _to_int(item: Any, what: str) -> int:
    if isinstance(item, bool):
        raise ConfigError(f"{what} must be integers, got {item!r}")
    if isinstance(item, int):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str):
        try:
            return int(item.strip())
        except ValueError:
            pass
    shown = repr(item) if len(repr(item)) <= 60 else repr(item)[:60] + f"... ({len(str(item))} characters)"
    raise ConfigError(f"{what} must be integers, got {shown}")


def parse_ints(value: Any, what: str, minimum: int = 1) -> tuple[int, ...]:
    """Integers from a list, ``"1,2,3"`` or ranges ``"start:stop:step"`` (stop included when on the grid).

    The result is sorted and free of duplicates.
    """
    values: set[int] = set()
    for item in _pieces(value, what):
        if isinstance(item, str) and ":" in item:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
                raise ConfigError(f"{what} range {item!r} must be start:stop or start:stop:step, e.g. '8:64:8'")
            start, stop = _to_int(parts[0], what), _to_int(parts[1], what)
            step = _to_int(parts[2], what) if len(parts) == 3 else 1
            if step < 1:
                raise ConfigError(f"{what} range {item!r} needs a step >= 1, got {step!r}")
            if stop < start:
                raise ConfigError(f"{what} range {item!r} has stop {stop!r} < start {start!r}")
            if (stop - start) // step > 100_000:
                raise ConfigError(f"{what} range {item!r} has more than 100000 values")
            values.update(range(start, stop + 1, step))
        else:
            values.add(_to_int(item, what))
    low = min(values)
    if low < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {low!r}")
    return tuple(sorted(values))


def parse_budgets(value: Any) -> tuple[int, ...]:
    """Budgets from a list, ``"8,16"`` or ``"8:64:8"`` (8, 16, ..., 64: stop included)."""
    budgets = parse_ints(value, "budgets", minimum=1)
    if budgets[-1] > MAX_BUDGET:
        raise ConfigError(f"budgets must be <= {MAX_BUDGET}, got {budgets[-1]!r}")
    return budgets


def parse_cache(value: Any) -> tuple[bool, ...]:
    """``on`` -> (True,), ``off`` -> (False,), ``both`` -> (True, False); also bools or lists of them."""
    mapping = {"on": (True,), "off": (False,), "both": (True, False), "true": (True,), "false": (False,)}
    if isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in mapping:
            return mapping[key]
        raise ConfigError(f"unknown cache {value!r}; choices: {', '.join(CACHE_CHOICES)}")
    if isinstance(value, Sequence):
        out: list[bool] = []
        for item in value:
            for c in parse_cache(item):
                if c not in out:
                    out.append(c)
        if out:
            return tuple(out)
    raise ConfigError(f"unknown cache {value!r}; choices: {', '.join(CACHE_CHOICES)}")


def choice(value: Any, what: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choices: {', '.join(choices)}")
    return str(value)


def parse_int(value: Any, what: str, minimum: int, maximum: int | None = None) -> int:
    """An integer in ``minimum..maximum`` from a flag, TOML or file value; else ``ConfigError`` quoting it.

    The one bounded-integer check of values that end up in a dataset (attrs
    are stored as int64, counts as int32): a value outside the range is
    refused here, never left to overflow in numpy or the netCDF library.
    """
    v = _to_int(value, what)
    if v < minimum or (maximum is not None and v > maximum):
        bounds = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + f"... ({len(str(value))} characters)"
        raise ConfigError(f"{what} must be an integer {bounds}, got {shown}")
    return v


def parse_seconds(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of seconds (or 'none'), got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"{what} must be a positive number of seconds (or 'none'), got {value!r}")
    return None if v == 0 else v
