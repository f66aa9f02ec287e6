"""Two ``run --force -o c.nc`` started together never both lose (issue 23): real processes, 20 races.

``Journal.create`` checked the path, connected, and only then locked; its error
path deleted the journal and its -wal/-shm/.lock without holding the lock. So
the loser of a race deleted the winner's files under it (``disk I/O error``,
3 of 20 races here), and once both exited 2 leaving no journal and no dataset.
Now the lock is taken first (and counts only on the lock file at the path),
and everything is checked or deleted holding it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.dataset import schema
from collector.sweep.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
RACES = 20
CMD = [sys.executable, "-m", "collector", "run", "--devices", "sim", "--models", "tiny-gpt2", "--budgets", "8,16",
       "--trials", "2", "--force", "--quiet", "-o", "c.nc"]


@pytest.mark.process
@pytest.mark.slow
def test_concurrent_force_runs_never_both_lose(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(RACES):
        procs = [subprocess.Popen(CMD, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [(p.wait(timeout=300), p.communicate()[1].strip()) for p in procs]
        assert any(rc == 0 for rc, _ in results), (i, results)
        for rc, err in results:
            if rc != 0:  # the loser says why in one line, and took nothing from the winner
                assert rc == 2 and "\n" not in err and "in use by" in err, (i, results)
        ds = schema.load(tmp_path / "c.nc")
        assert int((ds["status"] == 0).sum()) == 8, i  # cache on and off x 2 budgets x 2 trials
        with Journal.open(tmp_path / "c.journal") as journal:
            assert journal.count() == 8, i
        assert not (tmp_path / "c.journal.lock").exists(), i


def test_create_takes_the_lock_before_it_checks_or_deletes(tmp_path: Path) -> None:
    from collector.shared.errors import JournalError

    path = tmp_path / "j.journal"
    with Journal.create(path, spec={}, environment={}) as owner:
        for replace in (False, True):  # a second creator, replacing or not, is refused and deletes nothing
            with pytest.raises(JournalError, match=rf"in use by pid {os.getpid()}"):
                Journal.create(path, spec={}, environment={}, replace=replace)
            assert path.exists() and Path(str(path) + ".lock").exists()
        owner.set("x", 1)  # the owner's journal still works
    with pytest.raises(JournalError, match="already exists"):
        Journal.create(path, spec={}, environment={})
    with Journal.create(path, spec={}, environment={}, replace=True) as fresh:
        assert fresh.get("x") is None
