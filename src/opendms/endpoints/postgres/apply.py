"""Applying captured changes to a PostgreSQL target, exactly once.

A batch of whole source transactions is applied in one target transaction
together with the task's checkpoint row (``opendms.checkpoints``), so after a
crash the target either has the batch and its position or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opendms.cdc import UNCHANGED, Change, Op, Transaction
from opendms.endpoints.postgres.netchanges import net_changes
from opendms.endpoints.postgres.types import quote_ident, to_pg
from opendms.model import Table

CHECKPOINTS = """
CREATE SCHEMA IF NOT EXISTS opendms;
CREATE TABLE IF NOT EXISTS opendms.checkpoints (
    task text PRIMARY KEY,
    position text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class TableMap:
    """How a source table's changes land on its target table."""

    target: Table
    names: dict[str, str]  # source column -> target column (copied columns only)
    casts: dict[str, str]  # target column -> SQL type for the text value
    fold_key: tuple[str, ...] = ()  # source primary key, when changes may be folded per row

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.target.schema)}.{quote_ident(self.target.name)}"


def table_map(target: Table, names: dict[str, str], same_engine: bool) -> TableMap:
    casts = {c.name: to_pg(c.type, same_engine) for c in target.columns}
    return TableMap(target, names, casts, _fold_key(target, names))


def _fold_key(target: Table, names: dict[str, str]) -> tuple[str, ...]:
    """The source key columns when per-row folding is safe (see netchanges)."""
    if not target.primary_key or any(i.unique for i in target.indexes):
        return ()
    source_of = {t: s for s, t in names.items()}
    if not all(k in source_of for k in target.primary_key):
        return ()
    return tuple(source_of[k] for k in target.primary_key)


def _param(tmap: TableMap, column: str) -> str:
    return f"%s::{tmap.casts[column]}"


def _where(tmap: TableMap, change: Change) -> tuple[str, list[Any]]:
    parts, args = [], []
    for col, value in zip(change.key_columns, change.key, strict=True):
        name = tmap.names.get(col)
        if name is None:
            continue
        if value is None:
            parts.append(f"{quote_ident(name)} IS NULL")
        else:
            parts.append(f"{quote_ident(name)} = {_param(tmap, name)}")
            args.append(value)
    return " AND ".join(parts) or "false", args


def statement(tmap: TableMap, change: Change) -> tuple[str, list[Any]]:
    """SQL and parameters for one change."""
    if change.op is Op.TRUNCATE:
        return f"TRUNCATE {tmap.qualified}", []
    if change.op is Op.DELETE:
        where, args = _where(tmap, change)
        return f"DELETE FROM {tmap.qualified} WHERE {where}", args
    pairs = [
        (tmap.names[c], v)
        for c, v in zip(change.columns, change.values, strict=True)
        if c in tmap.names and v is not UNCHANGED
    ]
    if change.op is Op.INSERT:
        cols = ", ".join(quote_ident(n) for n, _ in pairs)
        marks = ", ".join(_param(tmap, n) for n, _ in pairs)
        return f"INSERT INTO {tmap.qualified} ({cols}) VALUES ({marks})", [v for _, v in pairs]
    sets = ", ".join(f"{quote_ident(n)} = {_param(tmap, n)}" for n, _ in pairs)
    where, args = _where(tmap, change)
    return f"UPDATE {tmap.qualified} SET {sets} WHERE {where}", [v for _, v in pairs] + args


def apply_batch(
    conn: Any,
    maps: dict[tuple[str, str], TableMap],
    batch: list[Transaction],
    checkpoint: tuple[str, str],
) -> int:
    """Apply ``batch`` and record ``checkpoint`` (task, position) in one transaction."""
    keys = {t: m.fold_key for t, m in maps.items() if m.fold_key}
    changes = _folded(batch, keys)
    # Pipeline mode: statements stream to the server without a round trip each.
    with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
        _apply_changes(cur, maps, changes)
        cur.execute(
            "INSERT INTO opendms.checkpoints (task, position, applied_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (task) DO UPDATE SET position = excluded.position, applied_at = now()",
            checkpoint,
        )
    return sum(len(t.changes) for t in batch)  # source changes (folding may run fewer)


FOLD_TXN_LIMIT = 1000  # bigger transactions rarely touch a row twice: not worth folding


def _folded(batch: list[Transaction], keys: dict[tuple[str, str], tuple[str, ...]]) -> list[Change]:
    """The batch's changes, folded per row across runs of small transactions (order kept)."""
    out: list[Change] = []
    run: list[Change] = []
    for txn in batch:
        if len(txn.changes) > FOLD_TXN_LIMIT:
            out += net_changes(run, keys) + txn.changes
            run = []
        else:
            run += txn.changes
    return out + net_changes(run, keys)


def _apply_changes(cur: Any, maps: dict[tuple[str, str], TableMap], changes: list[Change]) -> int:
    """Run consecutive changes of the same shape as one executemany (pipelined)."""
    count, run_sql = 0, ""
    run_args: list[list[Any]] = []
    for change in changes:
        tmap = maps.get((change.schema, change.table))
        if tmap is None:
            continue
        sql, args = statement(tmap, change)
        if sql != run_sql and run_args:
            cur.executemany(run_sql, run_args)
            run_args = []
        run_sql = sql
        run_args.append(args)
        count += 1
    if run_args:
        cur.executemany(run_sql, run_args)
    return count


def read_checkpoint(conn: Any, task: str) -> str | None:
    conn.execute(CHECKPOINTS)
    row = conn.execute(
        "SELECT position FROM opendms.checkpoints WHERE task = %s", (task,)
    ).fetchone()
    return str(row[0]) if row else None


def write_checkpoint(conn: Any, task: str, position: str) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO opendms.checkpoints (task, position, applied_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (task) DO UPDATE SET position = excluded.position, applied_at = now()",
            (task, position),
        )
