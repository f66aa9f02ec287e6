"""Numbers are rendered with a bounded format everywhere (issue 23).

A sim sweep ``--budgets 1:1500:1 --trials 2 --cache on`` stated an ``mde`` of
1.9e151, printed as a 155-digit ``x{mde:.2f}`` that collapsed the table. The
fixed-point formats of the tables and summaries now go through
``analysis.core.labels.fmt_fixed`` / ``fmt_ratio`` / ``fmt_num``, which switch
to 3 significant digits from 1e6 on.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import analysis
from analysis import synthetic
from analysis.compare.changes import _ratio
from analysis.core.labels import FIXED_MAX, fmt_change, fmt_fixed, fmt_num, fmt_ratio
from analysis.detect.summary import power_lines, segment_line, summarize
from analysis.tables import results as tables

#: The longest run of digits a rendered number may have (``1234567.89`` has 7).
DIGITS = re.compile(r"\d{8,}")


@pytest.mark.parametrize("x", [1.9e151, -3e200, 1e6, 999_999.994, 2.5, 1e-300, 0.0, np.nan, np.inf, -np.inf])
def test_formats_are_bounded(x: float) -> None:
    for text in (fmt_fixed(x), fmt_fixed(x, 1), fmt_ratio(x), fmt_num(x, ".2f"), fmt_num(x, ".1f")):
        assert len(text) <= 12 and not DIGITS.search(text), (x, text)
    if np.isfinite(x) and abs(x) < FIXED_MAX:
        assert fmt_fixed(x) == f"{x:.2f}"  # ordinary numbers look as before


def test_fmt_change_is_bounded() -> None:
    assert not DIGITS.search(fmt_change(1.0, 0.1, 1.9e151, 0.1))


@pytest.fixture(scope="module")
def huge() -> object:
    reg = analysis.regimes(synthetic.make_dataset(seed=0))
    assert bool(reg["anomalous"].any())
    reg = reg.copy(deep=True)
    for name in ("mde", "mde_4"):
        reg[name].values[...] = 1.9e151
    for name in ("effect", "effect_lo", "effect_hi"):
        if name in reg:
            reg[name].values[np.isfinite(reg[name].values)] = 3e200
    return reg


def test_a_huge_mde_never_reaches_a_table_or_summary(huge: object) -> None:
    texts = [*power_lines(huge), summarize(huge)]  # type: ignore[arg-type]
    for table in (tables.regimes_power(huge), tables.regimes_series(huge), tables.regimes_segments(huge)):  # type: ignore[arg-type]
        texts.extend(" | ".join(r.values()) for r in table.as_records())
    assert any("1.9e+151" in t for t in texts), texts
    for t in texts:
        assert not DIGITS.search(t), t


def test_segment_line_is_bounded(huge: object) -> None:
    from analysis.detect.summary import iter_segments

    lines = [segment_line(huge, index, j) for index, j in iter_segments(huge, only_anomalous=True)]  # type: ignore[arg-type]
    assert lines and all(not DIGITS.search(line) for line in lines), lines


def test_compare_ratio_text_is_bounded() -> None:
    assert not DIGITS.search(_ratio(np.log(1.9e151), np.log(1e150), np.log(1e152)))
