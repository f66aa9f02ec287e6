"""Strings from files made safe for a terminal: control characters shown as escapes, rich markup escaped.

A dataset or a journal is untrusted input: a model name, a title or an error
text stored in it may hold terminal control sequences (``\\x1b]0;...\\x07``
retitles the window, ``\\x1b[2J`` clears the screen) or rich markup
(``[bold red]``). Every string that came from a file goes through
:func:`visible` before it is printed as plain text, or :func:`for_rich`
before it is printed through rich. Torch-free and standard library only
(``rich`` is imported only by :func:`for_rich`), so both the collector and
the analysis use it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["visible", "for_rich"]

#: C0 and C1 control characters and DEL; newline and tab too (one printed line stays one line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _NAMED.get(ch, f"\\x{ord(ch):02x}")


def visible(text: Any, *, keep_newlines: bool = False) -> str:
    """``str(text)`` with every control character replaced by a visible escape (``\\x1b``, ``\\n``).

    ``keep_newlines=True`` leaves line breaks (``\\n``) alone, for multi-line
    texts such as a summary.
    """
    s = text if isinstance(text, str) else str(text)
    if keep_newlines:
        return "\n".join(_CONTROL.sub(_escape_char, line) for line in s.split("\n"))
    return _CONTROL.sub(_escape_char, s)


def for_rich(text: Any, *, keep_newlines: bool = False) -> str:
    """:func:`visible` with rich markup escaped too (``[bold red]`` is printed as written)."""
    from rich.markup import escape

    return escape(visible(text, keep_newlines=keep_newlines))
