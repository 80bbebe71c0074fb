"""The analysis history: one SQLite file, one row per segmentation.

Each write is one transaction in WAL journal mode with ``synchronous=FULL``, so a
process killed in the middle of a write leaves a readable database holding every
earlier record. Connections are opened per call (``connect``), never kept at
module level, so concurrent app sessions do not share one.

Schema version 2 added ``seen_in_training``; a version-1 file gains the column
(empty for its old rows) the first time it is opened, and loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 2
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
    seconds REAL,
    seen_in_training TEXT
);
"""
#: Columns added after version 1, with their SQL type, for files written by an older version.
_ADDED_COLUMNS: dict[str, str] = {"seen_in_training": "TEXT"}


@dataclass(frozen=True)
class RunRecord:
    """One analysed case as stored in the history."""

    case_id: str
    model: str
    volumes_ml: dict[str, float]
    hgg_probability: float | None = None
    dice: dict[str, float] | None = None
    seconds: float | None = None
    #: ``"training"`` or ``"validation"`` when the model saw this patient (its scores then
    #: overstate the accuracy on a new one), ``"no"`` when it did not, None for a run recorded
    #: before the history kept this.
    seen_in_training: str | None = None
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
            _migrate(connection)
        with connection:
            yield connection
    finally:
        connection.close()


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring a new file or one of an earlier schema version to this one (in the caller's transaction)."""
    version = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    if version is not None and version >= SCHEMA_VERSION:
        return
    present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    for column, kind in _ADDED_COLUMNS.items():
        if column not in present:
            connection.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    connection.execute("DELETE FROM schema_version")
    connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))


def record_run(path: str | Path, record: RunRecord) -> int:
    """Append a run in one transaction; return its id."""
    created = record.created_utc or datetime.now(UTC).isoformat(timespec="seconds")
    with connect(path) as db:
        cursor = db.execute(
            "INSERT INTO runs (created_utc, case_id, model, volumes_json, hgg_probability, dice_json, seconds,"
            " seen_in_training) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                created,
                record.case_id,
                record.model,
                json.dumps(record.volumes_ml),
                record.hgg_probability,
                json.dumps(record.dice) if record.dice is not None else None,
                record.seconds,
                record.seen_in_training,
            ),
        )
        return int(cursor.lastrowid or 0)


def list_runs(path: str | Path, limit: int = 20) -> list[RunRecord]:
    """Most recent runs first."""
    if not Path(path).exists():
        return []
    with connect(path) as db:
        rows = db.execute(
            "SELECT id, created_utc, case_id, model, volumes_json, hgg_probability, dice_json, seconds,"
            " seen_in_training FROM runs ORDER BY id DESC LIMIT ?",
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
            seen_in_training=row[8],
        )
        for row in rows
    ]
