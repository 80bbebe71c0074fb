"""SQLite history: round trip, order, a file of the first schema, and durability under SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
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
    assert runs[0].seen_in_training is None


def test_whether_the_model_saw_the_patient_round_trips(tmp_path):
    db = tmp_path / "h.sqlite"
    for case, seen in (("new", "no"), ("own", "training"), ("chosen_on", "validation")):
        history.record_run(db, history.RunRecord(case, "m", volumes_ml={"WT": 1.0}, seen_in_training=seen))
    assert [(r.case_id, r.seen_in_training) for r in history.list_runs(db)] == [
        ("chosen_on", "validation"),
        ("own", "training"),
        ("new", "no"),
    ]


# The schema every history file had before seen_in_training (schema version 1).
VERSION_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_utc TEXT NOT NULL, case_id TEXT NOT NULL,
    model TEXT NOT NULL, volumes_json TEXT NOT NULL, hgg_probability REAL, dice_json TEXT, seconds REAL
);
INSERT INTO schema_version VALUES (1);
INSERT INTO runs (created_utc, case_id, model, volumes_json, hgg_probability, dice_json, seconds)
VALUES ('2026-01-01T00:00:00+00:00', 'old_case', 'm', '{"WT": 3.5}', 0.9, '{"WT": 0.8}', 2.0);
"""


def test_a_history_file_of_the_first_schema_keeps_its_runs_and_takes_new_ones(tmp_path):
    db = tmp_path / "h.sqlite"
    with sqlite3.connect(db) as old:
        old.executescript(VERSION_1)
    (run,) = history.list_runs(db)
    assert (run.case_id, run.volumes_ml, run.hgg_probability, run.dice, run.seconds) == (
        "old_case",
        {"WT": 3.5},
        0.9,
        {"WT": 0.8},
        2.0,
    )
    assert run.seen_in_training is None  # not recorded then: unknown, not "no"
    history.record_run(db, history.RunRecord("new_case", "m", volumes_ml={"WT": 1.0}, seen_in_training="training"))
    assert [(r.case_id, r.seen_in_training) for r in history.list_runs(db)] == [
        ("new_case", "training"),
        ("old_case", None),
    ]
    with sqlite3.connect(db) as upgraded:
        assert upgraded.execute("SELECT version FROM schema_version").fetchall() == [(history.SCHEMA_VERSION,)]


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
