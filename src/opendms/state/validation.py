"""Validation results in the state store: per-table states and row failures.

The tables ``validation_state`` and ``validation_failures`` are created on first use
in the task's state file, next to the task's statistics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opendms.state.store import StateStore, now

SCHEMA = """
CREATE TABLE IF NOT EXISTS validation_state (
    task TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    state TEXT NOT NULL,
    source_rows INTEGER NOT NULL DEFAULT 0,
    target_rows INTEGER NOT NULL DEFAULT 0,
    mismatches INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    validated_at TEXT NOT NULL,
    PRIMARY KEY (task, schema_name, table_name)
);
CREATE TABLE IF NOT EXISTS validation_failures (
    task TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_key TEXT NOT NULL,
    failure_type TEXT NOT NULL,
    details TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS validation_failures_task ON validation_failures (task, table_name);
"""


@dataclass(frozen=True)
class ValidationStateRow:
    schema: str
    name: str
    state: str
    source_rows: int
    target_rows: int
    mismatches: int
    message: str
    validated_at: str


@dataclass(frozen=True)
class FailureRow:
    table: str
    key: dict[str, Any]
    type: str
    details: dict[str, Any]


def ensure_tables(store: StateStore) -> None:
    with store.lock, store.conn:
        store.conn.executescript(SCHEMA)


def clear_table(store: StateStore, task: str, schema: str, table: str) -> None:
    """Forget an earlier validation of one table (its state and failures)."""
    qualified = f"{schema}.{table}" if schema else table
    store._exec("DELETE FROM validation_failures WHERE task=? AND table_name=?", (task, qualified))
    store._exec(
        "DELETE FROM validation_state WHERE task=? AND schema_name=? AND table_name=?",
        (task, schema, table),
    )


def save_state(store: StateStore, task: str, row: ValidationStateRow) -> None:
    store._exec(
        "INSERT OR REPLACE INTO validation_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task,
            row.schema,
            row.name,
            row.state,
            row.source_rows,
            row.target_rows,
            row.mismatches,
            row.message,
            row.validated_at or now(),
        ),
    )


def add_failures(store: StateStore, task: str, failures: Iterable[FailureRow]) -> None:
    stamp = now()
    rows = [
        (task, f.table, json.dumps(f.key), f.type, json.dumps(f.details), stamp) for f in failures
    ]
    with store.lock, store.conn:
        store.conn.executemany("INSERT INTO validation_failures VALUES (?, ?, ?, ?, ?, ?)", rows)


def states(store: StateStore, task: str) -> list[ValidationStateRow]:
    rows = store._exec(
        "SELECT schema_name, table_name, state, source_rows, target_rows, mismatches, message, "
        "validated_at FROM validation_state WHERE task=? ORDER BY schema_name, table_name",
        (task,),
    )
    return [ValidationStateRow(*r) for r in rows]


def failures(store: StateStore, task: str, table: str | None = None) -> list[FailureRow]:
    sql = "SELECT table_name, row_key, failure_type, details FROM validation_failures WHERE task=?"
    args: tuple[Any, ...] = (task,)
    if table is not None:
        sql, args = sql + " AND table_name=?", (task, table)
    rows = store._exec(sql + " ORDER BY rowid", args)
    return [FailureRow(r[0], json.loads(r[1]), r[2], json.loads(r[3])) for r in rows]
