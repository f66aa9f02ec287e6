"""The SQLite journal: durable rows, uniqueness, locking, versions."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3

import pytest

from collector.shared.errors import JournalError
from collector.shared.record import RunRecord
from collector.sweep.journal import Journal, RunKey, journal_path

K = RunKey.from_mapping(dict(model="gpt2", device="sim", dtype="float32", cache=True, prompt_len=8, budget=16, trial=0))


def _rec(key: RunKey, latency: float = 0.1) -> RunRecord:
    return RunRecord(model=key.model, device=key.device, dtype=key.dtype, cache=key.cache, prompt_len=key.prompt_len,
                     budget=key.budget, latency=latency, prefill_time=0.01, decode_time=latency - 0.01,
                     tokens=key.budget, started_at=dt.datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=dt.timezone.utc))


def _same(a: RunRecord, b: RunRecord) -> bool:
    return json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def _create(tmp_path, name="j.journal"):
    return Journal.create(tmp_path / name, spec={"models": ["gpt2"]}, environment={"host": "h"}, command="cmd")


def test_journal_path():
    assert str(journal_path("runs/x.nc")) == "runs/x.journal"
    assert str(journal_path("runs/x")) == "runs/x.journal"


def test_rows_persist_across_reopen_in_order(tmp_path):
    with _create(tmp_path) as j:
        assert j.add(K, _rec(K), worker=0, pid=11, planned=3) == 1
        k2 = K._replace(trial=1)
        j.add(k2, _rec(k2, 0.2).failed("timeout", "slow"), worker=1, pid=12, planned=0)
        j.set_model_info("gpt2", {"n_params": 5})
    with Journal.open(tmp_path / "j.journal") as j:
        rows = list(j.rows())
        assert [r.key for r in rows] == [K, K._replace(trial=1)]
        assert _same(rows[0].record, _rec(K)) and rows[0].planned == 3 and rows[0].pid == 11
        assert rows[1].record.status == "timeout" and math.isnan(rows[1].record.latency)
        assert j.done() == {K, K._replace(trial=1)} and j.count() == 2
        assert j.spec == {"models": ["gpt2"]} and j.environment == {"host": "h"} and j.get("command") == "cmd"
        assert j.model_info() == {"gpt2": {"n_params": 5}}


def test_a_run_cannot_be_recorded_twice(tmp_path):
    with _create(tmp_path) as j:
        j.add(K, _rec(K), worker=0, pid=1, planned=0)
        with pytest.raises(JournalError, match="already in journal"):
            j.add(K, _rec(K, 0.3), worker=0, pid=1, planned=0)
        assert j.count() == 1


def test_wal_mode_and_full_sync(tmp_path):
    with _create(tmp_path) as j:
        assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_worker_numbers_are_unique_across_opens(tmp_path):
    with _create(tmp_path) as j:
        assert [j.next_worker(), j.next_worker()] == [0, 1]
    with Journal.open(tmp_path / "j.journal", write=True) as j:
        assert j.next_worker() == 2


def test_create_refuses_existing(tmp_path):
    _create(tmp_path).close()
    with pytest.raises(JournalError, match="already exists; continue it with 'python -m collector resume"):
        _create(tmp_path)


def test_one_writer_at_a_time(tmp_path):
    with _create(tmp_path):
        with pytest.raises(JournalError, match=f"in use by pid {os.getpid()}"):
            Journal.open(tmp_path / "j.journal", write=True)
        with Journal.open(tmp_path / "j.journal") as reader:  # readers are fine
            assert reader.count() == 0
    Journal.open(tmp_path / "j.journal", write=True).close()  # released on close
    assert not (tmp_path / "j.journal.lock").exists()


def test_open_errors(tmp_path):
    with pytest.raises(JournalError, match="no journal at"):
        Journal.open(tmp_path / "none.journal")
    (tmp_path / "x.journal").write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError, match="is not a sweep journal"):
        Journal.open(tmp_path / "x.journal")
    with _create(tmp_path, "v.journal") as j:
        j.set("journal_version", "99")
    with pytest.raises(JournalError, match="has version '99'; this package reads '1'"):
        Journal.open(tmp_path / "v.journal")
    sqlite3.connect(str(tmp_path / "empty.journal")).execute("CREATE TABLE meta (key TEXT, value TEXT)").connection.commit()
    with pytest.raises(JournalError, match="has version None"):
        Journal.open(tmp_path / "empty.journal")


def test_hosts_are_kept_per_run_and_per_host(tmp_path):
    """Issue 21: a run measured on a dask worker names its host; each host's environment is kept once."""
    k2, k3 = K._replace(trial=1), K._replace(trial=2)
    with _create(tmp_path) as j:
        assert j.hosts() == {} and j.run_hosts() == {}
        j.set_host("mac-1", {"host": "mac-1", "gpu_name": "Apple M2"})
        a = j.add(K, _rec(K), worker=0, pid=1, planned=0, host="mac-1")
        b = j.add(k2, _rec(k2), worker=1, pid=2, planned=1, host="mac-2")
        c = j.add(k3, _rec(k3), worker=2, pid=3, planned=2)  # measured by the sweep's own process
    with Journal.open(tmp_path / "j.journal") as j:
        assert j.get("journal_version") == "3"
        assert j.hosts() == {"mac-1": {"host": "mac-1", "gpu_name": "Apple M2"}}
        assert j.run_hosts() == {a: "mac-1", b: "mac-2"} and c not in j.run_hosts()
        assert [r.key for r in j.rows()] == [K, k2, k3]


def test_a_version_2_journal_is_read_without_hosts_and_refuses_one(tmp_path):
    with _create(tmp_path) as j:
        j.add(K, _rec(K), worker=0, pid=1, planned=0)
    con = sqlite3.connect(str(tmp_path / "j.journal"))  # as version 2 wrote it: no runs.host, no hosts table
    con.executescript("ALTER TABLE runs DROP COLUMN host; DROP TABLE hosts; "
                      "UPDATE meta SET value = '\"2\"' WHERE key = 'journal_version';")
    con.close()
    k2 = K._replace(trial=1)
    with Journal.open(tmp_path / "j.journal", write=True) as j:
        assert j.hosts() == {} and j.run_hosts() == {} and [r.key for r in j.rows()] == [K]
        j.add(k2, _rec(k2), worker=0, pid=1, planned=1)  # a local run: as before
        with pytest.raises(JournalError, match=r"\(version 2\) cannot record host 'mac-1'"):
            j.add(K._replace(trial=2), _rec(K), worker=0, pid=1, planned=2, host="mac-1")
        with pytest.raises(JournalError, match=r"cannot record host 'mac-1'"):
            j.set_host("mac-1", {})
        assert j.count() == 2
