"""Command line: ``python -m analysis COMMAND RUN.nc [MORE.nc ...]``.

The subcommands are :data:`analysis.cli.commands.COMMANDS` (one per analysis of
:data:`analysis.registry.ANALYSES`, named like its function with its short
name as an alias, then ``compare``, ``report`` and ``datasets``). Every error
the user can cause (a missing or unreadable file, a file that is not a valid
dataset, a bad option, an analysis that does not apply) is one of the
package's own errors (:class:`~analysis.errors.AnalysisError`,
:class:`~collector.shared.errors.CollectorError`) or an ``OSError``, printed as one
line ``error: ...`` on stderr with exit status 2. Any other exception is a
bug: it is not hidden.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from analysis.cli.commands import COMMANDS
from analysis.cli.regimes import to_json

__all__ = ["COMMANDS", "build_parser", "main", "to_json"]

_EXIT_ERROR = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m analysis`` parser with one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(prog="python -m analysis", description="Analyse decode-regimes datasets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help, aliases=list(command.aliases))
        command.add(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 on any user error, printed as one line)."""
    from analysis.errors import AnalysisError
    from collector.shared.errors import CollectorError
    from collector.shared.safetext import visible

    def one_line_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                         line: Any = None) -> None:  # a library's warning may quote a file's strings
        print(f"warning: {visible(message)}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        args = build_parser().parse_args(argv)
        return int(args._run(args))
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except (_UsageError, AnalysisError, CollectorError, OSError) as exc:  # not ValueError, KeyError: bugs show
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {visible(msg)}", file=sys.stderr)  # names from files: no control characters
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
