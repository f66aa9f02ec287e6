"""python -m collector import-study: the study harness's aggregated rows become a schema dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.dataset.study_import import import_study, parse_prompt_lens
from collector.shared.errors import ConfigError

#: Every column of the harness, in its order (harness format).
COLUMNS = [
    "model", "execution_mode", "prompt_name", "max_tokens", "offered_load", "use_cache", "samples", "success_rate",
    "startup_latency", "first_request_latency", "avg_latency", "p50_latency", "p95_latency", "std_latency",
    "min_latency", "max_latency", "avg_tokens_per_sec", "p50_tokens_per_sec", "std_tokens_per_sec",
    "min_tokens_per_sec", "max_tokens_per_sec", "avg_decode_tokens_per_sec", "p50_decode_tokens_per_sec",
    "avg_end_to_end_model_tokens_per_sec", "p50_end_to_end_model_tokens_per_sec", "avg_prefill_time",
    "avg_decode_time", "peak_cpu_rss_mb", "peak_mps_allocated_mb", "peak_system_memory_mb", "peak_memory_mb",
    "avg_step_time", "p95_step_time", "max_step_time", "avg_seq_length",
]


def _row(budget: int, latency: float, *, mode: str = "mps", prompt: str = "long_context", cache: Any = True,
         samples: Any = 5, prefill: Any = 0.1, std: float = 0.4, debug: bool = True) -> dict[str, Any]:
    decode = None if prefill is None else latency - prefill - 0.02
    return {
        "model": "gpt2-medium", "execution_mode": mode, "prompt_name": prompt, "max_tokens": budget,
        "offered_load": 1, "use_cache": cache, "samples": samples, "success_rate": 100.0 if samples else 0.0,
        "startup_latency": 3.2, "first_request_latency": latency * 1.1, "avg_latency": latency,
        "p50_latency": latency, "p95_latency": latency + 2 * std, "std_latency": std, "min_latency": latency - std,
        "max_latency": latency + 2 * std, "avg_tokens_per_sec": budget / latency, "p50_tokens_per_sec": budget / latency,
        "std_tokens_per_sec": 1.0, "min_tokens_per_sec": 50.0, "max_tokens_per_sec": 60.0,
        "avg_decode_tokens_per_sec": 60.0, "p50_decode_tokens_per_sec": 60.0,
        "avg_end_to_end_model_tokens_per_sec": 55.0, "p50_end_to_end_model_tokens_per_sec": 55.0,
        "avg_prefill_time": prefill, "avg_decode_time": decode, "peak_cpu_rss_mb": 900.0,
        "peak_mps_allocated_mb": 1500.0, "peak_system_memory_mb": 20000.0, "peak_memory_mb": 1500.0,
        "avg_step_time": 0.02 if debug else None, "p95_step_time": 0.03 if debug else None,
        "max_step_time": 0.5 if debug else None, "avg_seq_length": 65 + budget / 2 if debug else None,
    }


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return path


#: The sweep dims of schema v1; later factor dims (length 1 here) are squeezed away by :func:`_v1`.
V1_DIMS = ("model", "device", "dtype", "cache", "prompt_len", "budget", "trial")


def _v1(ds: Any) -> Any:
    """``ds`` without the length-1 factor dims that schema versions after v1 add (attn, cache_impl, ...)."""
    extra = [d for d in ds.dims if d in schema.SWEEP_DIMS and d not in V1_DIMS and ds.sizes[d] == 1]
    return ds.squeeze(extra, drop=True)


PROBE = [(480, 9.2), (496, 9.5), (512, 89.2), (528, 83.2), (544, 97.0), (640, 8.8)]


def test_csv_import_keeps_summaries_protocol_and_order(tmp_path: Path) -> None:
    f = _write_csv(tmp_path / "benchmark_results_20250101_000000.csv", [_row(b, lat) for b, lat in PROBE])
    ds = _v1(import_study([f]))
    cell = {"model": "gpt2-medium", "device": "mps", "dtype": "float32", "cache": True, "prompt_len": 65, "trial": 0}
    assert ds.sizes["trial"] == 1 and ds.budget.values.tolist() == [b for b, _ in PROBE]
    assert bool((ds.status == schema.STATUS["ok"]).all())
    # server-side generation time: prefill + decode means (the round trip has 0.02 s of overhead here)
    np.testing.assert_allclose(ds.latency.sel(**cell).values, [lat - 0.02 for _, lat in PROBE], atol=1e-9)
    np.testing.assert_allclose(ds.prefill_time.sel(**cell).values, 0.1)
    assert (ds.latency_source.sel(**cell) == 0).all()
    req = ds.request_latency.sel(**cell, budget=512)
    assert req.sel(stat="mean").item() == pytest.approx(89.2) and req.sel(stat="std").item() == pytest.approx(0.4)
    assert ds.stat.values.tolist() == ["mean", "p50", "p95", "std", "min", "max"]
    assert (ds.n_runs.sel(**cell) == 5).all()
    assert ds.order.sel(**cell).values.tolist() == list(range(len(PROBE)))
    assert ds.mem_device_peak.sel(**cell, budget=512).item() == pytest.approx(1500 * 2**20)
    assert ds.harness_avg_step_time.sel(**cell, budget=512).item() == pytest.approx(0.02)
    assert ds.harness_startup_latency.attrs["units"] == "s"
    assert (ds.attrs["isolation"], ds.attrs["run_order"], int(ds.attrs["warmup"])) == ("cell", "sequential", 3)
    assert "HTTP round trip" in ds.attrs["protocol"] and "fresh server process" in ds.attrs["protocol"]
    assert json.loads(ds.attrs["prompt_lens"]) == {"long_context": 65}
    assert int(ds.attrs["simulated"]) == 0 and json.loads(ds.attrs["failures"]) == []
    assert "phase_split" not in ds.attrs


def test_json_is_the_same_as_csv(tmp_path: Path) -> None:
    rows = [_row(b, lat) for b, lat in PROBE]
    a = _v1(import_study([_write_csv(tmp_path / "r.csv", rows)]))
    (tmp_path / "r.json").write_text(json.dumps(rows))
    b = _v1(import_study([tmp_path / "r.json"]))
    for name in ("latency", "prefill_time", "request_latency", "n_runs", "status", "order"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_missing_optional_columns_and_no_phase_split(tmp_path: Path) -> None:
    cols = ["model", "execution_mode", "prompt_name", "max_tokens", "use_cache", "avg_latency", "std_latency"]
    f = _write_csv(tmp_path / "r.csv", [_row(b, lat, prefill=None) for b, lat in PROBE], cols)
    ds = _v1(import_study([f]))
    assert bool((ds.status == 0).all())
    np.testing.assert_allclose(ds.latency.squeeze().values, [lat for _, lat in PROBE])  # the round trip mean
    assert bool(ds.prefill_time.isnull().all()) and (ds.latency_source == 1).all()
    assert "latency_source 1" in ds.attrs["phase_split"]
    assert (ds.n_runs == -1).all() and bool(ds.request_latency.sel(stat="p95").isnull().all())
    assert not [v for v in ds.data_vars if str(v).startswith("harness_")]


def test_failed_configuration_is_an_error_cell(tmp_path: Path) -> None:
    rows = [_row(b, lat) for b, lat in PROBE]
    rows[2] = {**_row(512, 1.0, samples=0), **{k: None for k in ("avg_latency", "p50_latency", "avg_prefill_time",
                                                                   "avg_decode_time", "std_latency")}}
    ds = _v1(import_study([_write_csv(tmp_path / "r.csv", rows)]))
    st = ds.status.squeeze()
    assert st.sel(budget=512).item() == schema.STATUS["error"] and int((st == 0).sum()) == len(PROBE) - 1
    assert np.isnan(ds.latency.sel(budget=512).item()) and ds.n_runs.sel(budget=512).item() == 0
    failures = json.loads(ds.attrs["failures"])
    assert len(failures) == 1 and failures[0]["run"]["budget"] == 512 and "samples 0" in failures[0]["error"]
    assert "r.csv:4" in failures[0]["error"]  # file and line of the row


def test_repeated_collections_become_trials_and_prompts_map(tmp_path: Path) -> None:
    first = _write_csv(tmp_path / "a.csv", [_row(512, 89.0), _row(512, 7.3, prompt="short")])
    second = _write_csv(tmp_path / "b.csv", [_row(512, 85.0, cache="False"), _row(512, 88.0)])
    ds = _v1(import_study([first, second], prompt_lens=["short=3"]))
    assert ds.sizes["trial"] == 2 and ds.prompt_len.values.tolist() == [3, 65]
    on = ds.latency.sel(model="gpt2-medium", device="mps", dtype="float32", cache=True, prompt_len=65, budget=512)
    np.testing.assert_allclose(on.values, [88.98, 87.98])
    assert ds.status.sel(cache=False, prompt_len=65, trial=1).item() == schema.STATUS["not_run"]
    assert ds.order.sel(cache=True, prompt_len=65).values.ravel().tolist() == [0, 3]
    fp16 = _v1(import_study([_write_csv(tmp_path / "c.csv", [_row(128, 1.0, mode="mps-fp16")])]))
    assert fp16.dtype.values.tolist() == ["float16"]


@pytest.mark.parametrize(("setup", "match"), [
    (lambda p: _write_csv(p / "r.csv", [_row(128, 1.0, prompt="short")]), r"prompt 'short' has no length; give it "
                                                                           r"with --prompt-lens short=N"),
    (lambda p: _write_csv(p / "r.csv", [_row(128, 1.0)], [c for c in COLUMNS if c != "use_cache"]),
     r"lacks column\(s\) \['use_cache'\]"),
    (lambda p: _write_csv(p / "r.csv", [_row(128, 1.0)], ["model", "execution_mode", "prompt_name", "max_tokens",
                                                          "use_cache"]), "has no latency"),
    (lambda p: _write_csv(p / "r.csv", [_row(128, 1.0, mode="tpu")]), r"execution_mode 'tpu' is not one of"),
    (lambda p: _write_csv(p / "r.csv", [_row(128, 1.0, cache="maybe")]), r"'use_cache' is 'maybe'; expected true"),
    (lambda p: _write_csv(p / "r.csv", [{**_row(128, 1.0), "max_tokens": "12x"}]), r"'max_tokens' is '12x'"),
    (lambda p: _write_csv(p / "r.csv", [{**_row(128, 1.0), "offered_load": 4}]), r"offered_load is '4'"),
    (lambda p: _write_csv(p / "r.csv", []), "holds no result rows"),
    (lambda p: (p / "r.json").write_text("{not json"), "is not valid JSON"),
    (lambda p: (p / "r.json").write_text('{"rows": []}'), "holds a dict; expected a JSON list"),
    (lambda p: (p / "r.txt").write_text("x"), "neither .csv nor .json"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Any,
                                          match: str) -> None:
    setup(tmp_path)
    (src,) = [p for p in tmp_path.iterdir() if p.name.startswith("r.")]
    with pytest.raises(ConfigError, match=match):
        import_study([src])
    assert main(["import-study", str(src), "-o", str(tmp_path / "out.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "out.nc").exists()


def test_prompt_lens_flag_values() -> None:
    assert parse_prompt_lens(["short=3,medium=20"]) == {"long_context": 65, "short": 3, "medium": 20}
    assert parse_prompt_lens({"long_context": 70}) == {"long_context": 70}
    with pytest.raises(ConfigError, match=r"item 'short' is not NAME=N"):
        parse_prompt_lens(["short"])
    with pytest.raises(ConfigError, match=r"prompt length of 'short' is 0"):
        parse_prompt_lens(["short=0"])
    with pytest.raises(ConfigError, match=r"prompt length of 'short' is 'x'"):
        parse_prompt_lens(["short=x"])


def test_cli_writes_refuses_overwrite_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write_csv(tmp_path / "benchmark_results_1.csv", [_row(b, lat) for b, lat in PROBE])
    out = tmp_path / "study.nc"
    assert main(["import-study", str(f), "-o", str(out)]) == 0
    assert "6 configuration(s) ok, 0 failed" in capsys.readouterr().out
    back = _v1(schema.load(out))
    assert back.request_latency.dims[0] == "stat" and "import-study" in back.attrs["command"]
    assert main(["import-study", str(f), "-o", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["import-study", str(f), "-o", str(out), "--force", "--prompt-lens", "long_context=64"]) == 0
    assert schema.load(out).prompt_len.values.tolist() == [64]
    assert main(["import-study", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.nc")]) == 2
    assert "no such harness file" in capsys.readouterr().err
