"""The factor declaration and the two factors added through it (attn, cache_impl), end to end on real processes."""

from __future__ import annotations

import ast
import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from collector.__main__ import main
from collector.dataset import schema
from collector.dataset.export import to_dataset
from collector.measuring.environment import collect
from collector.shared import factors
from collector.shared.errors import ConfigError, JournalError
from collector.shared.record import RunRecord
from collector.sweep.journal import Journal
from collector.sweep.runner import grid_keys, run_sweep
from collector.sweep.spec import SPEC_KEYS, SweepSpec, build_spec


def test_everything_is_derived_from_the_declaration():
    assert schema.SWEEP_DIMS == factors.SWEEP_DIMS == tuple(f.name for f in factors.FACTORS)
    assert factors.RunKey._fields == factors.SWEEP_DIMS
    assert factors.LOAD_KEY == ("model", "device", "dtype", "attn")
    record_fields = {f.name for f in dataclasses.fields(RunRecord)}
    assert set(factors.CELL_DIMS) <= record_fields
    assert {f.setting for f in factors.FACTORS} <= set(SPEC_KEYS)
    with pytest.raises(ConfigError, match="unknown factor 'colour'"):
        factors.factor("colour")
    with pytest.raises(ConfigError, match="run key lacks factor 'model'"):
        factors.RunKey.from_mapping({"device": "cpu"})


def test_the_typed_view_of_run_keys_and_cells_matches_the_declaration():
    """factors.py spells out the fields of Cell and RunKey for type checkers (under TYPE_CHECKING); they are the
    factors' names and kinds, in order."""
    tree = ast.parse(Path(factors.__file__).read_text(encoding="utf-8"))
    typed = {node.name: [(a.target.id, ast.unparse(a.annotation)) for a in node.body if isinstance(a, ast.AnnAssign)]
             for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name in ("_CellBase", "_RunKeyBase")}
    kinds = {f.name: f.kind for f in factors.FACTORS}
    assert typed["_RunKeyBase"] == [(d, kinds[d]) for d in factors.SWEEP_DIMS]
    assert typed["_CellBase"] == [(d, kinds[d]) for d in factors.CELL_DIMS]
    assert factors.Cell._fields == factors.CELL_DIMS


def test_static_cache_with_the_cache_off_is_not_applicable():
    spec = build_spec(dict(models="gpt2", devices="sim", caches="both", cache_impls="dynamic,static", budgets="8,16",
                           trials=2), defaults=False)
    keys = grid_keys(spec)
    assert spec.n_runs == len(keys) == 3 * 2 * 2  # (on, dynamic), (on, static), (off, dynamic)
    assert not any(k.cache_impl == "static" and not k.cache for k in keys)
    with pytest.raises(ConfigError, match="no cell of the sweep is applicable: cache_impl='static' needs cache=True"):
        build_spec(dict(models="gpt2", devices="sim", caches="off", cache_impls="static"), defaults=False)


@pytest.mark.parametrize("settings, match", [
    ({"attns": "flash"}, "unknown attn 'flash'; choices: default, sdpa, eager"),
    ({"cache_impl": "paged"}, "unknown cache_impl 'paged'; choices: dynamic, static"),
])
def test_bad_factor_values(settings, match):
    with pytest.raises(ConfigError, match=match):
        build_spec(dict(settings, models="gpt2", devices="sim"))


@pytest.mark.process
def test_cli_flags_come_from_the_declaration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--devices", "cpu", "--models", "bloom-560m", "--attn", "sdpa", "-o", "x.nc"]) == 2
    assert "has no 'sdpa' attention" in capsys.readouterr().err
    assert main(["run", "--devices", "sim", "--models", "gpt2", "--attn", "eager", "sdpa", "--cache", "both",
                 "--cache-impl", "static", "dynamic", "--budgets", "8,16", "--trials", "1", "--quiet", "-o",
                 "s.nc"]) == 0
    ds = schema.load("s.nc")
    # sorted on write
    assert ds["attn"].values.tolist() == ["eager", "sdpa"] and ds["cache_impl"].values.tolist() == ["dynamic", "static"]
    st = ds["status"]
    assert (st.sel(cache=False, cache_impl="static") == schema.STATUS["not_applicable"]).all()
    assert (st.sel(cache=True) == schema.STATUS["ok"]).all()
    assert (st.sel(cache=False, cache_impl="dynamic") == schema.STATUS["ok"]).all()
    assert ds["latency"].sel(cache=False, cache_impl="static").isnull().all()


@pytest.mark.slow
@pytest.mark.process
def test_real_cpu_sweep_measures_both_new_factors(tmp_path):
    spec = build_spec(dict(models="tiny-gpt2", devices="cpu", attns="sdpa,eager", caches="on",
                           cache_impls="dynamic,static", budgets="3,6", trials=1, warmup=0, timing="step",
                           isolation="model"), defaults=False)
    with Journal.create(tmp_path / "j.journal", spec=spec.to_dict(), environment=collect(spec.devices)) as j:
        res = run_sweep(spec, j)
        ds = schema.validate(to_dataset(j))
        rows = list(j.rows())
    assert res.failed == 0 and res.in_journal == 2 * 2 * 2
    assert (ds["status"] == 0).all() and int(np.isfinite(ds["step_time"]).sum()) == 2 * 2 * (3 + 6)
    assert {(r.record.attn, r.record.cache_impl) for r in rows} == {(a, c) for a in ("sdpa", "eager")
                                                                     for c in ("dynamic", "static")}
    # isolation 'model': one fresh process per model-load key, and attn is part of that key
    assert len({r.worker for r in rows}) == 2
    assert all(len({r.worker for r in rows if r.key.attn == a}) == 1 for a in ("sdpa", "eager"))


def _v1_journal(path, spec: dict) -> None:
    """A journal as version 1 wrote it (seven key columns), with one run."""
    con = sqlite3.connect(str(path))
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE models (name TEXT PRIMARY KEY, info TEXT NOT NULL);
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, device TEXT NOT NULL,
            dtype TEXT NOT NULL, cache INTEGER NOT NULL, prompt_len INTEGER NOT NULL, budget INTEGER NOT NULL,
            trial INTEGER NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL, worker INTEGER NOT NULL,
            pid INTEGER NOT NULL, planned INTEGER NOT NULL, finished_at TEXT NOT NULL,
            UNIQUE (model, device, dtype, cache, prompt_len, budget, trial));""")
    meta = {"journal_version": "1", "spec": spec, "environment": collect(["sim"]), "command": "v1", "created": "",
            "workers": 1}
    con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    rec = {"model": "gpt2", "device": "sim", "dtype": "float32", "cache": True, "prompt_len": 8, "budget": 8,
           "status": "ok", "latency": 0.2, "prefill_time": 0.05, "decode_time": 0.15, "tokens": 8,
           "started_at": "2026-01-01T00:00:00+00:00"}
    con.execute("INSERT INTO runs(model, device, dtype, cache, prompt_len, budget, trial, status, record, worker, pid, "
                "planned, finished_at) VALUES ('gpt2', 'sim', 'float32', 1, 8, 8, 0, 'ok', ?, 0, 1, 0, '')",
                (json.dumps(rec),))
    con.commit()
    con.close()


@pytest.mark.process
def test_a_version_1_journal_is_read_and_resumed(tmp_path):
    spec = {"models": ["gpt2"], "devices": ["sim"], "caches": [True], "budgets": [8, 16], "trials": 1,
            "prompt_lens": [8]}
    _v1_journal(tmp_path / "old.journal", spec)
    with Journal.open(tmp_path / "old.journal", write=True) as j:
        (row,) = j.rows()
        assert row.key.attn == "default" and row.key.cache_impl == "dynamic" and row.record.attn == "default"
        s = SweepSpec.from_dict(j.spec)
        assert s.attns == ("default",) and s.cache_impls == ("dynamic",)
        res = run_sweep(s, j)
        assert res.recorded == 1 and j.count() == 2
        with pytest.raises(JournalError, match="version 1.*cannot record attn='sdpa'"):
            j.add(row.key._replace(attn="sdpa"), row.record, worker=0, pid=1, planned=9)
        ds = to_dataset(j)
    assert (ds["status"] == 0).all() and ds["attn"].values.tolist() == ["default"]
