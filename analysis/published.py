"""Published datasets by short name: ``analysis.open_dataset("mps-m3max-study")``.

A published dataset is a ``<name>.nc`` file in one of the dataset folders;
its short name is the file name without ``.nc``. The folders are searched in
this order, and the first folder holding a name wins:

1. every folder in the environment variable ``DECODE_REGIMES_DATASETS``
   (``os.pathsep``-separated), for your own collections;
2. ``datasets/`` of the source checkout the package runs from (a clone, or an
   editable install: ``pip install -e .``);
3. ``share/decode-regimes/datasets`` under the installation prefix
   (``sys.prefix``), where a regular (wheel) install puts the repository's
   ``datasets/*.nc``.

``python -m analysis datasets`` lists what is found, one line each.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

__all__ = ["ENV_VAR", "search_path", "available", "is_name", "resolve", "describe", "lines", "listing"]

#: Environment variable with extra dataset folders (searched first).
ENV_VAR = "DECODE_REGIMES_DATASETS"
_SUFFIX = ".nc"


def search_path() -> list[Path]:
    """The dataset folders, in search order (only those that exist)."""
    folders = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    folders.append(Path(__file__).resolve().parents[1] / "datasets")
    folders.append(Path(sys.prefix) / "share" / "decode-regimes" / "datasets")
    seen: list[Path] = []
    for f in folders:
        if f.is_dir() and f.resolve() not in [s.resolve() for s in seen]:
            seen.append(f)
    return seen


def available() -> dict[str, Path]:
    """Short name -> file of every published dataset found (first folder wins), sorted by name."""
    found: dict[str, Path] = {}
    for folder in search_path():
        for f in sorted(folder.glob(f"*{_SUFFIX}")):
            if f.is_file() and not f.name.startswith("."):
                found.setdefault(f.name[: -len(_SUFFIX)], f)
    return dict(sorted(found.items()))


def is_name(text: str) -> bool:
    """Whether ``text`` looks like a short name (no folder part, no glob characters) rather than a path."""
    return bool(text) and not any(ch in text for ch in ("/", "\\", os.sep, "*", "?", "[")) and text not in (".", "..")


def resolve(name: str) -> Path:
    """The file of the published dataset ``name`` (``"mps-m3max-study"``; a trailing ``.nc`` is accepted).

    Raises
    ------
    FileNotFoundError
        No published dataset has that name; the message lists those that exist.
    """
    key = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    found = available()
    if key in found:
        return found[key]
    names = ", ".join(found) or "none"
    raise FileNotFoundError(f"no such dataset file or published dataset: {name!r}; published: {names} "
                            f"(python -m analysis datasets; more folders in ${ENV_VAR})")


def describe(path: str | os.PathLike[str]) -> str:
    """One line about a dataset file: runs, devices, models and title (from its attrs and coordinates)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        status = ds["status"].values if "status" in ds else None
        ok = int((status == 0).sum()) if status is not None else 0
        devices = ",".join(map(str, ds["device"].values.tolist())) if "device" in ds.coords else "?"
        models = ",".join(map(str, ds["model"].values.tolist())) if "model" in ds.coords else "?"
        trials = ds.sizes.get("trial", 0)
        sim = " simulated" if str(ds.attrs.get("simulated", "0")) == "1" else ""
        title = str(ds.attrs.get("title", ""))
    return f"{ok} ok runs x{trials} trial(s){sim}; {devices}; {models}; {title}"


def lines(names: Sequence[str] | None = None) -> list[str]:
    """``name  description`` for each published dataset (all when ``names`` is None).

    A file that cannot be read (corrupt, truncated, not netCDF) does not hide
    the others: its line says ``cannot be read`` with the file and the reason.
    """
    entries = listing(names)
    width = max((len(k) for k, _, _ in entries), default=0)
    return [f"{k:<{width}}  {text}" for k, text, _ in entries]


def listing(names: Sequence[str] | None = None) -> list[tuple[str, str, bool]]:
    """(short name, description or why it cannot be read, readable) of each published dataset (all when None)."""
    found = available()
    out: list[tuple[str, str, bool]] = []
    for k in (list(found) if names is None else list(names)):
        path = resolve(k)
        try:
            out.append((k, describe(path), True))
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # the netCDF library's words for a bad file
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.append((k, f"cannot be read: {str(path)!r} ({type(exc).__name__}: {why[:200]})", False))
    return out
