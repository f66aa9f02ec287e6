"""Replace the body of one ``## heading`` section of a markdown file (used by the regimes benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DOC_ENV", "PERFORMANCE_MD", "replace_section"]

#: Environment variable naming another file to write the sections into (``python -m benchmarks --output``).
DOC_ENV = "DECODE_REGIMES_PERFORMANCE_MD"
PERFORMANCE_MD = Path(os.environ.get(DOC_ENV) or Path(__file__).resolve().parent.parent / "docs" / "performance.md")


def replace_section(path: Path, heading: str, body: str) -> None:
    """Put ``body`` between ``heading`` (a whole line, e.g. ``## Analysis speed``) and the next ``## `` heading.

    The file is re-read just before writing so that other sections stay as they are.
    """
    lines = path.read_text().splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading)
    except StopIteration:
        raise KeyError(f"heading {heading!r} not found in {str(path)!r}") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    new = lines[: start + 1] + ["\n", body.rstrip("\n") + "\n", "\n"] + lines[end:]
    path.write_text("".join(new))
