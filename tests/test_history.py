"""SQLite history: round trip, order, and durability under SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys

from neuroinsight import history
from tests.conftest import REPO


def test_record_and_list(tmp_path):
    db = tmp_path / "h.sqlite"
    assert history.list_runs(db) == []
    for i in range(3):
        history.record_run(
            db, history.RunRecord(case_id=f"c{i}", model="m", volumes_ml={"WT": float(i)}, dice={"WT": 0.5})
        )
    runs = history.list_runs(db)
    assert [r.case_id for r in runs] == ["c2", "c1", "c0"]
    assert runs[0].volumes_ml == {"WT": 2.0} and runs[0].dice == {"WT": 0.5}


WRITER = """
import os, signal, sys
from neuroinsight import history
db = sys.argv[1]
for i in range(20):
    history.record_run(db, history.RunRecord(case_id=f"ok{i}", model="m", volumes_ml={"WT": 1.0}))
print("ready", flush=True)
import sqlite3
con = sqlite3.connect(db)
con.execute("BEGIN")
for i in range(5000):
    con.execute("INSERT INTO runs (created_utc, case_id, model, volumes_json) VALUES ('t', 'partial', 'm', '{}')")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_mid_write_keeps_every_earlier_record(tmp_path):
    db = tmp_path / "h.sqlite"
    child = subprocess.run([sys.executable, "-c", WRITER, str(db)], cwd=REPO, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL
    runs = history.list_runs(db, limit=100)
    assert sorted(r.case_id for r in runs) == sorted(f"ok{i}" for i in range(20))
    history.record_run(db, history.RunRecord(case_id="after", model="m", volumes_ml={}))
    assert history.list_runs(db, limit=1)[0].case_id == "after"
