"""The doctor's findings: one :class:`Check` per probe and the :class:`Report` that judges them.

A check has a status:

``ok``
    the probe answered and the value is within its threshold;
``warn``
    the probe answered and the value is outside its threshold; the check
    carries the fix (``fix``);
``info``
    the probe answered and there is nothing to judge (a figure the backend
    has, such as the driver memory, reported for the record);
``unavailable``
    the probe cannot answer on this machine (a file or command that is
    missing, a figure the backend does not have); said plainly, never an error.

The report's verdict is ``ok`` when no check warns, else ``warnings``. The
JSON form (:meth:`Report.to_dict`, :func:`write_json`, :func:`read_json`) is
versioned (``doctor_format``) so a bug report can be read back.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.shared.errors import ConfigError, OutputError

__all__ = ["DOCTOR_FORMAT", "STATUSES", "Check", "Report", "check_json_path", "read_json", "write_json"]

#: Version of the JSON file :func:`write_json` writes.
DOCTOR_FORMAT = 1
#: The statuses a check can have.
STATUSES: tuple[str, ...] = ("ok", "warn", "info", "unavailable")


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Check:
    """One probe's answer.

    Attributes
    ----------
    group
        What part of the instrument it checks (``timer``, ``sync``, ``memory``,
        ``host``, ``noise``).
    name
        Short name of the probe, unique in a report.
    status
        One of :data:`STATUSES`.
    summary
        One line for people: the value and what it means.
    fix
        What to do about a warning (empty unless ``status == 'warn'``).
    values
        The figures behind the summary (numbers, strings; NaN where none).
    """

    group: str
    name: str
    status: str
    summary: str
    fix: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"unknown check status {self.status!r}; choices: {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        """The check as plain JSON values."""
        return {"group": self.group, "name": self.name, "status": self.status, "summary": self.summary,
                "fix": self.fix, "values": _plain(dict(self.values))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Check":
        """The check of :meth:`to_dict` (None values become NaN)."""
        values = {k: (float("nan") if v is None else v) for k, v in dict(d.get("values") or {}).items()}
        return cls(group=str(d["group"]), name=str(d["name"]), status=str(d["status"]), summary=str(d["summary"]),
                   fix=str(d.get("fix", "")), values=values)


@dataclass(frozen=True)
class Report:
    """Every check of one doctor run and the machine it ran on.

    Attributes
    ----------
    device
        The device checked (``cpu``, ``cuda``, ``mps``).
    checks
        The checks, in the order they ran.
    machine
        Host description (platform, processor, versions).
    created
        ISO time (UTC) of the run.
    """

    device: str
    checks: tuple[Check, ...]
    machine: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def warnings(self) -> tuple[Check, ...]:
        """The checks that warn."""
        return tuple(c for c in self.checks if c.status == "warn")

    @property
    def verdict(self) -> str:
        """``ok`` when no check warns, else ``warnings``."""
        return "warnings" if self.warnings else "ok"

    def summary(self) -> str:
        """One line: the verdict and the names of the checks that warn (for dataset attrs and logs)."""
        if not self.warnings:
            return f"ok ({len(self.checks)} checks on {self.device})"
        return f"warnings: {', '.join(c.name for c in self.warnings)} ({len(self.checks)} checks on {self.device})"

    def check(self, name: str) -> Check:
        """The check called ``name``; :class:`KeyError` naming the known ones otherwise."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values (the file :func:`write_json` writes)."""
        return {
            "doctor_format": DOCTOR_FORMAT, "created": self.created, "device": self.device,
            "verdict": self.verdict, "summary": self.summary(), "machine": _plain(dict(self.machine)),
            "warnings": [{"check": c.name, "problem": c.summary, "fix": c.fix} for c in self.warnings],
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Report":
        """The report of :meth:`to_dict`; :class:`ConfigError` for another format version."""
        version = d.get("doctor_format")
        if version != DOCTOR_FORMAT:
            raise ConfigError(f"doctor file format {version!r} is not supported; expected {DOCTOR_FORMAT}")
        checks: Sequence[Mapping[str, Any]] = d.get("checks") or ()
        return cls(device=str(d["device"]), checks=tuple(Check.from_dict(c) for c in checks),
                   machine=dict(d.get("machine") or {}), created=str(d.get("created", "")))


def check_json_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file a report can be written to (checked before any probe runs).

    Raises
    ------
    OutputError
        ``path`` is a folder, or its folder does not exist or cannot be written.
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise OutputError(f"{str(target)!r} is a folder; give a file name such as doctor.json")
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {str(target)!r}: folder {str(folder)!r} is not writable")
    return target


def write_json(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as JSON to ``path`` atomically (temporary file + rename); returns the path.

    Raises
    ------
    OutputError
        ``path`` is a folder, or its folder does not exist or cannot be written.
    """
    target = check_json_path(path)
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    return target


def read_json(path: str | os.PathLike[str]) -> Report:
    """Read a report written by :func:`write_json`.

    Raises
    ------
    ConfigError
        The file is not a doctor report of a known format.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read doctor report {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"doctor report {str(path)!r} holds {type(data).__name__!r}, expected a JSON object")
    return Report.from_dict(data)
