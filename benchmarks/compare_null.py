"""compare on real noise: null half-splits, planted changes, CI coverage and the tests' p-values.

Each 10-trial file of tests/data/real/ (measured, no regime) has its trials split at random into two halves
of 5, A and B (``--seeds`` splits a file), compared as they are and with a change planted into B (x1.1 over
every budget; a x1.5 regime over three interior budgets; B slower by exactly the ``series_mde`` its null
comparison stated). The tables are those of ``tests/test_compare_null.py`` (which also runs a fixed subset
of them as tests), how each is made is described there and in docs/methods.md ("Comparing two datasets").

Usage::

    python benchmarks/compare_null.py [--seeds 25] [--write]

``--write`` puts the tables into docs/performance.md ("## compare on real noise").
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent)]

from _sections import PERFORMANCE_MD, replace_section  # noqa: E402
from test_compare_null import tables  # noqa: E402

HEADING = "## compare on real noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=25, help="half-splits per 10-trial file")
    ap.add_argument("--write", action="store_true", help=f"write the tables into docs/performance.md ({HEADING!r})")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = tables(args.seeds)
    minutes = (time.perf_counter() - t0) / 60
    body = "\n".join([
        f"Measured with `python benchmarks/compare_null.py --seeds {args.seeds} --write` ({minutes:.1f} min on a "
        "shared 2-core VM). Data: the 4 ten-trial null files of `tests/data/real/` (measured on CUDA, no regime), "
        f"each split {args.seeds} times at random into two halves of 5 trials (A, B), compared as they are "
        "(`none`) and with a change planted into B: x1.1 over every budget (`slow`), a x1.5 regime over three "
        "interior budgets (`regime`), and B slower by exactly the `series_mde` its null comparison stated "
        "(`mde`). Targets (issue 11): at most 1 series `changed` and no regime `appeared` over 24 or more null "
        "half-splits; the planted x1.1 and the appearing regime found. How each table is made: "
        "`tests/test_compare_null.py` and docs/methods.md (\"Comparing two datasets\").",
        "",
        *lines,
    ])
    print(body)
    if args.write:
        replace_section(PERFORMANCE_MD, HEADING, body)


if __name__ == "__main__":
    main()
