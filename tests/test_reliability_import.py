"""Hostile harness files into ``python -m collector import-study`` (issue 23): one line and exit 2, or a true file.

Every test writes real files and runs the command in a real process.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collector.dataset import schema
from processes import cli, refused

H = "model,execution_mode,prompt_name,max_tokens,use_cache,samples,avg_latency"
OK = "gpt2,mps,long_context,16,true,5,1.0"


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def imported(tmp_path: Path, *names: str, extra: tuple[str, ...] = ()) -> Any:
    proc = cli("import-study", *names, "-o", "out.nc", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return schema.load(tmp_path / "out.nc")


@pytest.mark.parametrize("name, body, needles", [
    ("max_tokens 1e20", f"{H}\ngpt2,mps,long_context,1e20,true,5,1.0\n", ["max_tokens", "1..1000000"]),
    ("max_tokens 2**63", f"{H}\ngpt2,mps,long_context,{2**63},true,5,1.0\n", ["max_tokens", "1..1000000"]),
    ("max_tokens 3e9", f"{H}\ngpt2,mps,long_context,3000000000,true,5,1.0\n", ["max_tokens"]),
    ("samples 3e9", f"{H}\ngpt2,mps,long_context,16,true,3000000000,1.0\n", ["samples", "0..2147483647"]),
    ("latency 0", f"{H}\ngpt2,mps,long_context,16,true,5,0\n", ["avg_latency is 0"]),
    ("latency -1", f"{H}\ngpt2,mps,long_context,16,true,5,-1\n", ["avg_latency", ">= 0"]),
    ("success_rate 1000", f"{H},success_rate\n{OK},1000\n", ["success_rate", "0..100"]),
    ("success_rate -50", f"{H},success_rate\n{OK},-50\n", ["success_rate", "0..100"]),
    ("truncated row", f"{H}\n{OK}\ngpt2,mps,long_con\n", ["r.csv:3", "3 field(s)", "header 7", "truncated"]),
    ("a field too many", f"{H}\n{OK},x\n", ["8 field(s)", "truncated or broken"]),
    ("a column named twice", f"{H},samples\n{OK},6\n", ["'samples' more than once"]),
    ("a 200000-character field", f"{H}\n{OK[:-3]}{'9' * 200_000}\n", ["line", "field larger than field limit"]),
    ("NUL in a name", f"{H}\ngpt\x002,mps,long_context,16,true,5,1.0\n{OK}\n", ["not a text file", "'\\x00'"]),
    ("ESC in a name", f"{H}\ngpt\x1b[2J2,mps,long_context,16,true,5,1.0\n", ["control character '\\x1b'"]),
])
def test_bad_csv_is_one_line(tmp_path: Path, name: str, body: str, needles: list[str]) -> None:
    write(tmp_path / "r.csv", body)
    line = refused(cli("import-study", "r.csv", "-o", "out.nc", cwd=tmp_path), *needles)
    assert len(line) < 400  # the 200000-character value is not quoted whole
    assert not (tmp_path / "out.nc").exists()


def test_random_bytes_name_every_encoding_tried(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write(tmp_path / "r.csv", rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    refused(cli("import-study", "r.csv", "-o", "out.nc", cwd=tmp_path), "'r.csv' is not a text file", "utf-8 (",
            "cp1252 (")


@pytest.mark.parametrize("encoding, bom", [("utf-8", codecs.BOM_UTF8), ("utf-16", b""), ("utf-32", b""),
                                           ("cp1252", b""), ("latin-1", b"")])
def test_other_encodings_and_a_bom_are_read(tmp_path: Path, encoding: str, bom: bytes) -> None:
    """Was: UnicodeDecodeError (latin-1, UTF-16), or 'lacks column(s) ['model']' (a UTF-8 BOM)."""
    write(tmp_path / "r.csv", bom + f"{H}\nmodèle,mps,long_context,16,true,5,1.0\n".encode(encoding))
    ds = imported(tmp_path, "r.csv")
    assert ds["model"].values.tolist() == ["modèle"]
    expected = {"utf-8": "utf-8-sig", "latin-1": "cp1252"}.get(encoding, encoding)
    assert json.loads(ds.attrs["source_encodings"]) == {"r.csv": expected}


@pytest.mark.parametrize("name, text, needles", [
    ("max_tokens 1e300", '[{"model":"gpt2","execution_mode":"mps","prompt_name":"long_context","max_tokens":1e300,'
     '"use_cache":true,"avg_latency":1.0}]', ["max_tokens", "1..1000000"]),
    ("a 5000-digit integer", '[{"model":"gpt2","execution_mode":"mps","prompt_name":"long_context","max_tokens":'
     + "9" * 5000 + ',"use_cache":true,"avg_latency":1.0}]', ["max_tokens", "1..1000000"]),
    ("nested 100000 deep", "[" * 100_000 + "]" * 100_000, ["nests JSON 100000 levels deep"]),
    ("NUL by escape", '[{"model":"gpt\\u00002","execution_mode":"mps","prompt_name":"long_context","max_tokens":16,'
     '"use_cache":true,"avg_latency":1.0}]', ["coordinate 'model'", "NUL"]),
    ("not JSON", "[{", ["not valid JSON"]),
])
def test_bad_json_is_one_line(tmp_path: Path, name: str, text: str, needles: list[str]) -> None:
    write(tmp_path / "r.json", text)
    line = refused(cli("import-study", "r.json", "-o", "out.nc", cwd=tmp_path), *needles)
    assert len(line) < 400


@pytest.mark.parametrize("flags, needles", [
    (["--seed", "99999999999999999999"], ["seed must be an integer in 0..9223372036854775807"]),
    (["--warmup", "99999999999999999999"], ["warmup must be an integer in 0..100"]),
    (["--seed", "-1"], ["seed must be an integer in 0.."]),
    (["--warmup", "-5"], ["warmup must be an integer in 0..100"]),
    (["--seed", "1.5"], ["seed must be integers"]),
])
def test_seed_and_warmup_are_bounded(tmp_path: Path, flags: list[str], needles: list[str]) -> None:
    """Was: TypeError: illegal data type for attribute b'seed' (and -1 / -5 accepted)."""
    write(tmp_path / "ok.csv", f"{H}\n{OK}\n")
    refused(cli("import-study", "ok.csv", "-o", "out.nc", *flags, cwd=tmp_path), *needles)


def test_seed_at_the_bound_is_stored(tmp_path: Path) -> None:
    write(tmp_path / "ok.csv", f"{H}\n{OK}\n")
    ds = imported(tmp_path, "ok.csv", extra=("--seed", str(2**63 - 1), "--warmup", "0"))
    assert int(ds.attrs["seed"]) == 2**63 - 1 and int(ds.attrs["warmup"]) == 0


def test_colliding_column_names_keep_both(tmp_path: Path) -> None:
    """Was: my-col and my_col both became harness_my_col and one was dropped."""
    write(tmp_path / "r.csv", f"{H},my-col,my_col\n{OK},1,2\n")
    ds = imported(tmp_path, "r.csv")
    assert float(ds["harness_my_col"].max()) == 1 and float(ds["harness_my_col_2"].max()) == 2
    assert ds["harness_my_col_2"].attrs["long_name"] == "harness column 'my_col'"


def test_two_prompts_of_one_length_are_refused(tmp_path: Path) -> None:
    """Was: the two prompts' rows became trials 0 and 1 of one cell."""
    write(tmp_path / "r.csv", f"{H}\ngpt2,mps,a,16,true,5,1.0\ngpt2,mps,b,16,true,5,2.0\n")
    refused(cli("import-study", "r.csv", "-o", "out.nc", "--prompt-lens", "a=65", "b=65", cwd=tmp_path),
            "prompts 'a' and 'b' both have length 65")


def test_the_same_file_twice_is_refused(tmp_path: Path) -> None:
    """Was: ok.csv ok.csv ok.csv made three trials of one collection (the few-trials warning gone, mde narrowed)."""
    write(tmp_path / "ok.csv", f"{H}\n{OK}\n")
    write(tmp_path / "copy.csv", f"{H}\n{OK}\n")
    os.link(tmp_path / "ok.csv", tmp_path / "hard.csv")
    refused(cli("import-study", "ok.csv", "ok.csv", "ok.csv", "-o", "out.nc", cwd=tmp_path),
            "'ok.csv' is the same file as 'ok.csv'")
    refused(cli("import-study", "ok.csv", "hard.csv", "-o", "out.nc", cwd=tmp_path), "the same file as")
    refused(cli("import-study", "ok.csv", "copy.csv", "-o", "out.nc", cwd=tmp_path), "byte-identical copy of 'ok.csv'")
    write(tmp_path / "second.csv", f"{H}\ngpt2,mps,long_context,16,true,5,1.1\n")
    ds = imported(tmp_path, "ok.csv", "second.csv")
    assert ds.sizes["trial"] == 2


@pytest.mark.parametrize("kind, words", [("directory", "is a folder, not a regular file"),
                                         ("fifo", "is a FIFO (named pipe), not a regular file"),
                                         ("loop", "is a symbolic link loop")])
def test_not_a_regular_file(tmp_path: Path, kind: str, words: str) -> None:
    target = tmp_path / "r.csv"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        os.symlink("s.csv", target)
        os.symlink("r.csv", tmp_path / "s.csv")
    refused(cli("import-study", "r.csv", "-o", "out.nc", cwd=tmp_path), f"harness file 'r.csv' {words}")


def test_imported_timing_is_what_the_file_holds(tmp_path: Path) -> None:
    """Was: timing = step in a file without step_time."""
    write(tmp_path / "ok.csv", f"{H}\n{OK}\n")
    ds = imported(tmp_path, "ok.csv")
    assert "step_time" not in ds.data_vars and ds.attrs["timing"] == "ends"
    assert "no step_time" in ds.attrs["timing_note"]
