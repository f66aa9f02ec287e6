"""Reading files the package did not write (harness CSV/JSON): one text decoder, bounded JSON.

A foreign file may come in any encoding a spreadsheet or an editor chose, with
or without a byte-order mark, or be no text at all. :func:`read_text` tries the
encodings of :data:`ENCODINGS` in order (a byte-order mark decides alone) and
returns the text with the encoding used; bytes that none of them decodes, or a
text holding control characters other than tab and line breaks (what random
bytes decode to), raise :class:`~collector.shared.errors.ConfigError` naming the file
and every encoding tried. :func:`read_json` parses such a text with bounded
integers and nesting, so a hostile file is one ``ConfigError``, never a
``RecursionError`` or ``ValueError`` from deep inside the parser.
Standard library only.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from pathlib import Path
from typing import Any

from collector.shared.errors import ConfigError

__all__ = ["ENCODINGS", "MAX_FILE_BYTES", "MAX_INT_DIGITS", "read_text", "read_json", "shorten"]

#: Encodings tried, in order, for a file without a byte-order mark (cp1252: what Excel on Windows writes).
ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252")
#: Byte-order marks and the encoding each one decides (longest first: UTF-32 LE starts like UTF-16 LE).
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
#: Largest foreign file read (a harness file is a few kB; this guards memory, not correctness).
MAX_FILE_BYTES = 256 * 2**20
#: Longest integer literal a JSON file may hold (int64 has 19 digits); longer ones are read as floats.
MAX_INT_DIGITS = 20
#: Deepest nesting of a JSON file (a harness file is a list of flat objects: depth 2).
MAX_JSON_DEPTH = 64
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def shorten(text: Any, limit: int = 60) -> str:
    """``repr`` of ``str(text)``, cut to about ``limit`` characters with the length said (for messages)."""
    s = str(text)
    if len(s) <= limit:
        return repr(s)
    return f"{s[:limit]!r}... ({len(s)} characters)"


def read_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of a foreign file and the encoding it was read in.

    A byte-order mark (UTF-8, UTF-16, UTF-32) decides the encoding and is
    removed; otherwise :data:`ENCODINGS` are tried in order.

    Raises
    ------
    ConfigError
        The file is larger than :data:`MAX_FILE_BYTES`, or no encoding tried
        gives a text without control characters (tab, CR and LF allowed);
        the message names the file, the encodings tried and the first bad byte
        or character.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{str(p)!r} has {size} bytes; a harness file is at most {MAX_FILE_BYTES} bytes")
    data = p.read_bytes()
    boms = [enc for bom, enc in _BOMS if data.startswith(bom)]
    candidates = boms[:1] or list(ENCODINGS)
    failed: list[str] = []
    for enc in candidates:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            failed.append(f"{enc} (byte {data[exc.start:exc.start + 1]!r} at offset {exc.start})")
            continue
        bad = _BAD_CONTROL.search(text)
        if bad is not None:
            line = text.count("\n", 0, bad.start()) + 1
            failed.append(f"{enc} (control character {bad.group(0)!r} on line {line})")
            continue
        return text, enc
    after = " after its byte-order mark" if boms else ""
    raise ConfigError(f"{str(p)!r} is not a text file: tried {', '.join(failed)}{after}")


def _int_or_float(literal: str) -> int | float:
    digits = literal.lstrip("-")
    return int(literal) if len(digits) <= MAX_INT_DIGITS else float(literal)


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside strings (a linear scan; JSON strings escape quotes with a backslash)."""
    depth = most = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            most = max(most, depth)
        elif ch in "]}":
            depth -= 1
    return most


def read_json(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """A foreign JSON file parsed (:func:`read_text` first), and the encoding it was read in.

    Integers longer than :data:`MAX_INT_DIGITS` digits become floats (the
    range checks of the caller then refuse them by value); ``NaN`` and
    ``Infinity`` are read as floats.

    Raises
    ------
    ConfigError
        Not text (see :func:`read_text`), invalid JSON (with its line), or
        nested deeper than :data:`MAX_JSON_DEPTH`.
    """
    text, encoding = read_text(path)
    depth = _depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(f"{str(path)!r} nests JSON {depth} levels deep; a harness file is a list of flat objects "
                          f"(at most {MAX_JSON_DEPTH} levels read)")
    try:
        return json.loads(text, parse_int=_int_or_float), encoding
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (RecursionError, ValueError) as exc:  # a parser limit the checks above did not foresee
        raise ConfigError(f"{str(path)!r} cannot be read as JSON: {type(exc).__name__}: {shorten(exc, 120)}") from None
