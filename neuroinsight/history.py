"""The analysis history: one SQLite file, one row per segmentation.

Each write is one transaction in WAL journal mode with ``synchronous=FULL``, so a
process killed in the middle of a write leaves a readable database holding every
earlier record. Connections are opened per call (``connect``), never kept at
module level, so concurrent app sessions do not share one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_utc TEXT NOT NULL,
    case_id TEXT NOT NULL,
    model TEXT NOT NULL,
    volumes_json TEXT NOT NULL,
    hgg_probability REAL,
    dice_json TEXT,
    seconds REAL
);
"""


@dataclass(frozen=True)
class RunRecord:
    """One analysed case as stored in the history."""

    case_id: str
    model: str
    volumes_ml: dict[str, float]
    hgg_probability: float | None = None
    dice: dict[str, float] | None = None
    seconds: float | None = None
    created_utc: str = ""
    id: int | None = None


@contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """Open (and create if needed) the history database; commit on success, roll back on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        with connection:
            connection.executescript(_SCHEMA)
            if connection.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        with connection:
            yield connection
    finally:
        connection.close()


def record_run(path: str | Path, record: RunRecord) -> int:
    """Append a run in one transaction; return its id."""
    created = record.created_utc or datetime.now(UTC).isoformat(timespec="seconds")
    with connect(path) as db:
        cursor = db.execute(
            "INSERT INTO runs (created_utc, case_id, model, volumes_json, hgg_probability, dice_json, seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                created,
                record.case_id,
                record.model,
                json.dumps(record.volumes_ml),
                record.hgg_probability,
                json.dumps(record.dice) if record.dice is not None else None,
                record.seconds,
            ),
        )
        return int(cursor.lastrowid or 0)


def list_runs(path: str | Path, limit: int = 20) -> list[RunRecord]:
    """Most recent runs first."""
    if not Path(path).exists():
        return []
    with connect(path) as db:
        rows = db.execute(
            "SELECT id, created_utc, case_id, model, volumes_json, hgg_probability, dice_json, seconds"
            " FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [
        RunRecord(
            id=row[0],
            created_utc=row[1],
            case_id=row[2],
            model=row[3],
            volumes_ml=json.loads(row[4]),
            hgg_probability=row[5],
            dice=json.loads(row[6]) if row[6] else None,
            seconds=row[7],
        )
        for row in rows
    ]
