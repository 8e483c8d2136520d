"""Change capture from SQLite through triggers into a per-task change table.

``prepare`` creates ``opendms_changes_<task>`` (the change log), ``opendms_columns_<task>``
(one row per *generation*: a captured table's column list when its triggers were made)
and AFTER INSERT/UPDATE/DELETE triggers ``opendms_<task>_<table>_{i,u,d}``. A trigger
writes the old and new rows as ``json_array(gen, json_array(v1, ...), ...)`` (nested so
wide tables stay under SQLite's function-argument limit); each value is encoded so JSON
loses nothing:

* NULL -> ``null``; INTEGER -> a JSON integer;
* REAL -> ``"r" || printf('%!.20e', x)`` (exact: JSON itself keeps 15 digits, no Inf);
* TEXT -> ``"s" || x``; BLOB -> ``"b" || hex(x)``;
* columns the full load reads as text (date, time, timestamp) ->
  ``"s" || CAST(x AS TEXT)``, exactly the full load's ``SELECT CAST(.. AS TEXT)``
  (decimal columns are encoded by storage class like the others: a REAL stays exact).

Decoded values go through the full load's own converter, so a change carries the
same canonical Python value the full load gives for the same stored value. A stored value
that does not fit its declared type (text in an INTEGER column...) makes its row's change
a data error (``Change.error``, its values raw) for the task's DataErrorPolicy; the
other changes of the transaction go on.

``INSERT OR REPLACE`` deletes conflicting rows without firing delete triggers, so a
table with a primary key or unique index also gets BEFORE INSERT/UPDATE triggers
``..._{bi,bu}`` that record the rows a new row conflicts with (``R`` rows); the
stream turns them into deletes when the next change of the table took their key.

``gen`` is negated when the table's ``CREATE`` text no longer matches the one the
trigger was made for (an ``ALTER TABLE`` happened and the triggers are stale). When
the stream (or ``prepare``) sees a captured table's columns change, it makes new
triggers and, in the same write transaction, writes a ``DDL`` marker row and, if
columns were added and stale rows recorded writes without them, re-records those
rows as they are now (by primary key; a table without one is re-recorded whole after
a ``T`` marker), so no value written to a new column is lost. Triggers found missing
for a captured table (table dropped and recreated, or triggers dropped) get a
``LOST`` marker: streaming across it raises TaskError.

Sequence numbers start at the creation time in microseconds, so positions of a
recreated change table never overlap an older one's: a saved position from before
is detected as missing instead of silently reading the wrong changes.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from opendms.changes import Backlog, Change, ColumnChange, Op, Position, SeqPosition, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.sqlite.source import _AS_TEXT, _BAD_VALUE, _to_array, literal, quote
from opendms.endpoints.sqlite.types import from_declared
from opendms.errors import ConfigError, DatabaseMissingError, EndpointError, TaskError
from opendms.model import ColumnType, TableRef

log = logging.getLogger("opendms.sqlite.capture")

SCHEMA = "main"
CHUNK_ROWS = 5000  # change rows per streamed Transaction
IDLE_WAIT = 0.2  # seconds between polls when there is nothing new
GROUP_ARGS = 100  # values per inner json_array (SQLite 3.40 allows 127 arguments)
WRITE_WAIT_MS = 1000  # busy wait for the stream's trigger refresh
CONFIRM_WAIT_MS = 200  # busy wait for trimming the change table (retried when locked)
PREPARE_TIMEOUT_MS = 30000
NOW = "strftime('%Y-%m-%d %H:%M:%f','now')"
OPS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}  # AFTER triggers
BEFORE = {"bi": "INSERT", "bu": "UPDATE"}  # conflict-recording triggers


def capture_names(task: str) -> tuple[str, str]:
    """(change table, generation table) names of ``task``."""
    base = re.sub(r"[^a-z0-9_]", "_", task.lower())
    if not base:
        raise ConfigError("a task name is needed to name its SQLite change table")
    return f"opendms_changes_{base}", f"opendms_columns_{base}"


def trigger_name(task: str, table: str, op: str) -> str:
    return f"opendms_{re.sub(r'[^a-z0-9_]', '_', task.lower())}_{table}_{op}"


@dataclass(frozen=True)
class Layout:
    """A captured table's columns for one trigger generation."""

    gen: int
    table: str
    sql: str
    columns: tuple[str, ...]
    declared: tuple[str, ...]
    notnull: tuple[bool, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()  # primary key and unique indexes (conflict keys)

    @classmethod
    def from_info(
        cls, gen: int, table: str, sql: str, info: list[Any], unique: list[list[str]]
    ) -> Layout:
        pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        return cls(
            gen,
            table,
            sql,
            tuple(r[1] for r in info),
            tuple(r[2] or "" for r in info),
            tuple(bool(r[3]) for r in info),
            pk,
            tuple(tuple(u) for u in unique),
        )

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.columns, self.declared, self.notnull, self.primary_key)

    @property
    def ctypes(self) -> tuple[ColumnType, ...]:
        return tuple(from_declared(d) for d in self.declared)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.primary_key or self.columns

    @property
    def without_rowid(self) -> bool:
        return (
            bool(self.primary_key) and re.search(r"\bWITHOUT\s+ROWID\b", self.sql, re.I) is not None
        )

    def to_json(self) -> str:
        rows = zip(self.columns, self.declared, self.notnull, strict=True)
        pk = [self.primary_key.index(c) + 1 if c in self.primary_key else 0 for c in self.columns]
        columns = [[n, d, int(nn), p] for (n, d, nn), p in zip(rows, pk, strict=True)]
        return json.dumps({"columns": columns, "unique": [list(u) for u in self.unique]})

    @classmethod
    def from_json(cls, gen: int, table: str, sql: str, text: str) -> Layout:
        data = json.loads(text)
        info = [(i, n, d, nn, None, p) for i, (n, d, nn, p) in enumerate(data["columns"])]
        return cls.from_info(gen, table, sql, info, data["unique"])

    def positions(self, columns: tuple[str, ...]) -> list[int]:
        return [self.columns.index(c) for c in columns]


# -- SQL the triggers are made of ------------------------------------------------------


def _value_sql(ref: str, ctype: ColumnType) -> str:
    """One column value in the encoding described in the module docstring."""
    if ctype.kind in _AS_TEXT:
        return (
            f"CASE typeof({ref}) WHEN 'null' THEN NULL WHEN 'blob' THEN 'b' || hex({ref}) "
            f"ELSE 's' || CAST({ref} AS TEXT) END"
        )
    return (
        f"CASE typeof({ref}) WHEN 'null' THEN NULL WHEN 'integer' THEN {ref} "
        f"WHEN 'real' THEN 'r' || printf('%!.20e', {ref}) "
        f"WHEN 'blob' THEN 'b' || hex({ref}) ELSE 's' || {ref} END"
    )


def _image_sql(row: str, layout: Layout, gen_sql: str) -> str:
    """``json_array(gen, json_array(v1..v100), json_array(v101..), ...)`` of one row."""
    values = [
        _value_sql(f"{row}.{quote(c)}", t)
        for c, t in zip(layout.columns, layout.ctypes, strict=True)
    ]
    groups = [values[i : i + GROUP_ARGS] for i in range(0, len(values), GROUP_ARGS)]
    inner = ", ".join("json_array(" + ", ".join(g) + ")" for g in groups)
    return f"json_array({gen_sql}, {inner})"


def _stale_gen_sql(layout: Layout) -> str:
    """The generation, negated once the table's CREATE text changed (stale trigger)."""
    current = (
        "(SELECT sql FROM sqlite_master WHERE type='table' "
        f"AND name={literal(layout.table)} COLLATE NOCASE)"
    )
    return f"CASE WHEN {current} IS {literal(layout.sql)} THEN {layout.gen} ELSE -{layout.gen} END"


def _trigger_ops(layout: Layout) -> list[str]:
    """AFTER i/u/d triggers, and BEFORE bi/bu ones when rows can conflict on a unique key."""
    return [*OPS, *BEFORE] if layout.unique else list(OPS)


def _trigger_sql(task: str, changes: str, layout: Layout, op: str) -> str:
    if op in BEFORE:
        return _conflict_trigger_sql(task, changes, layout, op)
    gen = _stale_gen_sql(layout)
    old = "NULL" if op == "i" else _image_sql("OLD", layout, gen)
    new = "NULL" if op == "d" else _image_sql("NEW", layout, gen)
    name = quote(trigger_name(task, layout.table, op))
    return (
        f"CREATE TRIGGER {name} AFTER {OPS[op]} ON {quote(layout.table)} FOR EACH ROW BEGIN "
        f"INSERT INTO {quote(changes)} (tbl, op, old, new, at) VALUES "
        f"({literal(layout.table)}, '{op.upper()}', {old}, {new}, {NOW}); END"
    )


def _conflict_trigger_sql(task: str, changes: str, layout: Layout, op: str) -> str:
    """Record the rows a new or changed row conflicts with (``R`` rows).

    ``INSERT OR REPLACE`` / ``UPDATE OR REPLACE`` delete those rows without firing
    delete triggers (unless the writer enabled recursive_triggers); the stream turns
    an ``R`` row followed by the insert or update that took its key into a delete.
    """
    keys = " OR ".join(
        "(" + " AND ".join(f"T.{quote(c)} = NEW.{quote(c)}" for c in cols) + ")"
        for cols in layout.unique
    )
    if op == "bu":
        same = (
            " AND ".join(f"T.{quote(c)} IS OLD.{quote(c)}" for c in layout.primary_key)
            if layout.without_rowid
            else "T.rowid = OLD.rowid"
        )
        keys = f"({keys}) AND NOT ({same})"
    image = _image_sql("T", layout, _stale_gen_sql(layout))
    name = quote(trigger_name(task, layout.table, op))
    return (
        f"CREATE TRIGGER {name} BEFORE {BEFORE[op]} ON {quote(layout.table)} FOR EACH ROW BEGIN "
        f"INSERT INTO {quote(changes)} (tbl, op, old, new, at) SELECT {literal(layout.table)}, "
        f"'R', {image}, NULL, {NOW} FROM {quote(layout.table)} AS T WHERE {keys}; END"
    )


# -- decoding ---------------------------------------------------------------------------


def _raw(value: Any) -> Any:
    """A trigger-encoded JSON value back to what sqlite3 returns for the stored value."""
    if value is None or isinstance(value, int):
        return value
    tag, body = value[0], value[1:]
    if tag == "s":
        return body
    if tag == "r":
        return float(body)
    if tag == "b":
        return bytes.fromhex(body)
    raise ValueError(f"unknown value encoding {value!r}")


def _image(text: str | None) -> tuple[int, list[Any]] | None:
    """(generation, raw values) of one recorded row image."""
    if text is None:
        return None
    data = json.loads(text)
    return int(data[0]), [_raw(v) for group in data[1:] for v in group]


def _commit_time(at: str) -> datetime:
    return datetime.fromisoformat(at).replace(tzinfo=UTC)


def _column_changes(old: Layout, new: Layout) -> tuple[ColumnChange, ...]:
    """What ALTER TABLE did between two generations (columns keep their positions)."""
    out: list[ColumnChange] = []
    for i, name in enumerate(new.columns):
        ctype, nullable = new.ctypes[i], not new.notnull[i]
        if i >= len(old.columns):
            out.append(ColumnChange("add", name, ctype, nullable=nullable))
            continue
        if old.columns[i] != name:
            out.append(ColumnChange("rename", old.columns[i], new_name=name))
        if old.declared[i] != new.declared[i]:
            out.append(ColumnChange("alter_type", name, ctype, nullable=nullable))
    out += [ColumnChange("drop", c) for c in old.columns[len(new.columns) :]]
    return tuple(out)


def _seq(position: Position) -> int:
    if not isinstance(position, SeqPosition):
        raise TaskError(f"position {position} is not a SQLite change-table sequence number")
    return position.value


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


@dataclass
class _Row:
    """One change-table row: raw row images (I, U, D) or marker generations (DDL)."""

    seq: int
    table: str
    op: str
    old: tuple[int, list[Any]] | None = None
    new: tuple[int, list[Any]] | None = None
    gens: tuple[int, int] = (0, 0)

    @classmethod
    def read(cls, seq: int, table: str, op: str, old: str | None, new: str | None) -> _Row:
        if op == "DDL":
            return cls(
                seq, table, op, gens=(json.loads(old or "[0]")[0], json.loads(new or "[0]")[0])
            )
        return cls(seq, table, op, _image(old), _image(new))


class SqliteChangeSource:
    """Trigger-based change capture of one task on one SQLite database file."""

    value_form: Literal["pg-text", "python"] = "python"
    consistent_snapshot = False

    def __init__(self, url: EndpointURL, task: str) -> None:
        from opendms.endpoints.sqlite import database_path

        self.url = url
        self.task = task
        self.path = database_path(url)
        self.changes, self.registry = capture_names(task)
        self._conn: sqlite3.Connection | None = None
        self.lock = threading.RLock()
        self.tables: list[str] | None = None  # captured tables (None: the registered ones)
        self.old_rows: set[tuple[str, str]] = set()  # tables whose changes carry the old row
        self.lost: set[str] = set()  # tables whose triggers prepare found missing
        self.created = False  # prepare had to create the change table
        self.layouts: dict[int, Layout] = {}
        self.target = -1  # newest seq when streaming began
        self.delivered = -1
        self.confirmed = 0
        self.unconfirmed = False  # a confirm hit a locked database; retried while streaming
        self.warned: set[str] = set()

    # -- connection and small helpers ----------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            if not Path(self.path).is_file():
                raise DatabaseMissingError(
                    str(self.url), f"database file {self.path!r} does not exist"
                )
            try:
                self._conn = sqlite3.connect(
                    f"file:{self.path}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=WRITE_WAIT_MS / 1000,
                )
            except sqlite3.Error as exc:
                raise EndpointError(str(self.url), f"cannot open {self.path!r}: {exc}") from exc
        return self._conn

    @contextmanager
    def _write(self, timeout_ms: int = WRITE_WAIT_MS) -> Iterator[sqlite3.Connection]:
        """One short write transaction (BEGIN IMMEDIATE: no other writer in between)."""
        with self.lock:
            conn = self.conn
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self.lock:
            row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def _has(self, kind: str, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type=? AND name=? COLLATE NOCASE"
        return self._one(sql, (kind, name)) is not None

    def _triggers_present(self, table: str, layout: Layout | None = None) -> bool:
        layout = layout or self._latest(table)
        ops = _trigger_ops(layout) if layout is not None else list(OPS)
        return all(self._ours(trigger_name(self.task, table, op)) for op in ops)

    def _ours(self, trigger: str) -> bool:
        """The trigger exists and writes into this task's change table."""
        sql = self._one(
            "SELECT sql FROM sqlite_master WHERE type='trigger' AND name=? COLLATE NOCASE",
            (trigger,),
        )
        return sql is not None and quote(self.changes) in sql

    def parse_position(self, text: str) -> SeqPosition:
        return SeqPosition.parse(text)

    # -- setup -------------------------------------------------------------------------------

    def prepare(self, tables: list[TableRef]) -> None:
        """Change table, generation table and triggers for ``tables`` (idempotent)."""
        for ref in tables:
            if ref.schema != SCHEMA:
                raise EndpointError(
                    str(self.url), f"table {ref}: only tables of schema 'main' can be captured"
                )
        self._wal()
        try:
            with self._write(PREPARE_TIMEOUT_MS):
                self._create_tables()
                for table in self._registered():
                    if table not in {t.name for t in tables}:
                        self._uninstall(table)
                for ref in tables:
                    self._install(ref.name, in_stream=False)
        except sqlite3.OperationalError as exc:
            raise EndpointError(str(self.url), f"cannot set up change capture: {exc}") from exc
        self.tables = [t.name for t in tables]
        for ref in tables:
            self._warn_unkeyed(ref.name)

    def _wal(self) -> None:
        """WAL journal mode, so the stream's reads never block the application's writer."""
        with self.lock:
            try:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                mode = str(exc)
        if str(mode).lower() != "wal":
            log.warning("%s: could not switch to WAL journal mode (%s)", self.url, mode)

    def _create_tables(self) -> None:
        conn = self.conn
        if not self._has("table", self.changes):
            conn.execute(
                f"CREATE TABLE {quote(self.changes)} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "tbl TEXT NOT NULL, op TEXT NOT NULL, old TEXT, new TEXT, at TEXT NOT NULL)"
            )
            first = time.time_ns() // 1000
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (self.changes, first)
            )
            self.created = True
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(self.registry)} (gen INTEGER PRIMARY KEY "
            "AUTOINCREMENT, tbl TEXT NOT NULL, sql TEXT, columns TEXT NOT NULL)"
        )

    def _registered(self) -> list[str]:
        if not self._has("table", self.registry):
            return []
        with self.lock:
            rows = self.conn.execute(f"SELECT DISTINCT tbl FROM {quote(self.registry)}").fetchall()
        return [r[0] for r in rows]

    def _latest(self, table: str) -> Layout | None:
        with self.lock:
            row = self.conn.execute(
                f"SELECT gen, sql, columns FROM {quote(self.registry)} WHERE tbl=? "
                "ORDER BY gen DESC LIMIT 1",
                (table,),
            ).fetchone()
        return None if row is None else Layout.from_json(row[0], table, row[1] or "", row[2])

    def _current(self, table: str) -> Layout:
        with self.lock:
            info = self.conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
            sql = self._one(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name=? COLLATE NOCASE",
                (table,),
            )
        if not info or sql is None:
            raise TaskError(
                f"{self.url}: captured table {SCHEMA}.{table} no longer exists (dropped or "
                "renamed); its changes cannot be captured — run the task with a fresh full load"
            )
        return Layout.from_info(0, table, sql, info, self._unique_keys(table, info))

    def _unique_keys(self, table: str, info: list[Any]) -> list[list[str]]:
        """Primary key and full-table unique indexes on plain columns (partial ones skipped)."""
        keys = [[r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]]
        with self.lock:
            for _seq, name, unique, _origin, partial in self.conn.execute(
                f"PRAGMA index_list({quote(table)})"
            ).fetchall():
                if unique and not partial:
                    rows = self.conn.execute(f"PRAGMA index_info({quote(name)})").fetchall()
                    keys.append([r[2] for r in rows])
        out: list[list[str]] = []
        for key in keys:
            if key and all(key) and key not in out:
                out.append(key)
        return out

    def _install(self, table: str, in_stream: bool) -> None:
        """Make ``table``'s triggers current; call inside a write transaction."""
        latest, current = self._latest(table), self._current(table)
        present = self._triggers_present(table, latest)
        same = latest is not None and (latest.sql, latest.unique) == (current.sql, current.unique)
        if same and present:
            return
        if latest is not None and not present:
            self._lost(table, in_stream)
        cursor = self.conn.execute(
            f"INSERT INTO {quote(self.registry)} (tbl, sql, columns) VALUES (?, ?, ?)",
            (table, current.sql, current.to_json()),
        )
        layout = replace(current, gen=int(cursor.lastrowid or 0))
        self._drop_triggers(table)
        for op in _trigger_ops(layout):
            self.conn.execute(_trigger_sql(self.task, self.changes, layout, op))
        self.layouts[layout.gen] = layout
        if latest is not None and present and latest.signature != layout.signature:
            self._record_ddl(latest, layout)

    def _lost(self, table: str, in_stream: bool) -> None:
        """Triggers of a captured table are gone: its changes since then were not recorded."""
        if in_stream:
            raise TaskError(
                f"{self.url}: the capture triggers of {SCHEMA}.{table} are gone (table dropped "
                "and recreated, or triggers dropped); changes were lost to this task — run the "
                "task with a fresh full load"
            )
        self.conn.execute(
            f"INSERT INTO {quote(self.changes)} (tbl, op, at) VALUES (?, 'LOST', {NOW})", (table,)
        )
        self.lost.add(table)

    def _uninstall(self, table: str) -> None:
        """Stop capturing a table no longer selected."""
        self._drop_triggers(table)
        self.conn.execute(f"DELETE FROM {quote(self.registry)} WHERE tbl=?", (table,))

    def _drop_triggers(self, table: str) -> None:
        """Drop this task's triggers on ``table`` (a same-named trigger of another is kept,
        so creating ours then fails loudly)."""
        for op in [*OPS, *BEFORE]:
            name = trigger_name(self.task, table, op)
            if self._ours(name):
                self.conn.execute(f"DROP TRIGGER {quote(name)}")

    def _warn_unkeyed(self, table: str) -> None:
        layout = self._latest(table)
        if layout is not None and not layout.primary_key and table not in self.warned:
            self.warned.add(table)
            log.warning(
                "table %s.%s has no primary key: updates and deletes are keyed by all columns",
                SCHEMA,
                table,
            )

    # -- schema changes ---------------------------------------------------------------------

    def _record_ddl(self, old: Layout, new: Layout) -> None:
        """DDL marker row; re-record rows that stale triggers recorded without new columns."""
        self.conn.execute(
            f"INSERT INTO {quote(self.changes)} (tbl, op, old, new, at) "
            f"VALUES (?, 'DDL', json_array(?), json_array(?), {NOW})",
            (new.table, old.gen, new.gen),
        )
        if not any(c.action == "add" for c in _column_changes(old, new)):
            return
        stale = self.conn.execute(
            f"SELECT new FROM {quote(self.changes)} WHERE tbl=? AND op IN ('I','U') "
            "AND json_extract(new, '$[0]') = ?",
            (new.table, -old.gen),
        ).fetchall()
        if stale:
            images = [i for (text,) in stale if (i := _image(text)) is not None]
            self._rerecord(old, new, [values for _gen, values in images])

    def _rerecord(self, old: Layout, new: Layout, images: list[list[Any]]) -> None:
        image = _image_sql("T", new, str(new.gen))
        insert = f"INSERT INTO {quote(self.changes)} (tbl, op, old, new, at) "
        source = f"FROM {quote(new.table)} AS T"
        if not old.primary_key:
            log.warning("%s.%s: re-recording the whole table after ALTER TABLE", SCHEMA, new.table)
            self.conn.execute(insert + f"VALUES (?, 'T', NULL, NULL, {NOW})", (new.table,))
            self.conn.execute(
                insert + f"SELECT ?, 'I', NULL, {image}, {NOW} {source}", (new.table,)
            )
            return
        positions = [old.columns.index(c) for c in old.primary_key]
        where = " AND ".join(f"T.{quote(new.columns[p])} IS ?" for p in positions)
        select = insert + f"SELECT ?, 'U', {image}, {image}, {NOW} {source} WHERE {where}"
        keys = {tuple(values[p] for p in positions) for values in images}
        for key in sorted(keys, key=repr):
            self.conn.execute(select, (new.table, *key))

    def _refresh(self, tables: list[str]) -> bool:
        """Recreate stale triggers after DDL; False when the database was locked."""
        try:
            with self._write():
                for table in tables:
                    self._install(table, in_stream=True)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                log.info("%s: database locked; recreating triggers later", self.url)
                return False
            raise EndpointError(str(self.url), f"cannot recreate capture triggers: {exc}") from exc
        return True

    # -- positions --------------------------------------------------------------------------

    def exists(self) -> bool:
        if self.created or self.lost or not self._has("table", self.changes):
            return False
        tables = self.tables if self.tables is not None else self._registered()
        return self._has("table", self.registry) and all(self._triggers_present(t) for t in tables)

    def backlog(self, applied: str | None) -> Backlog:
        """Changes waiting in the change table after the applied position."""
        if not self._has("table", self.changes):
            return Backlog(0, "changes", f"change table {self.changes} does not exist", gone=True)
        after = SeqPosition.parse(applied).value if applied else 0
        count = self._one(f"SELECT count(*) FROM {quote(self.changes)} WHERE seq > ?", (after,))
        return Backlog(int(count or 0), "changes", f"changes waiting in {self.changes}")

    def current_position(self) -> SeqPosition:
        """The newest sequence number handed out (deleted rows included)."""
        if not self._has("table", self.changes):
            return SeqPosition(0)
        issued = self._one("SELECT seq FROM sqlite_sequence WHERE name=?", (self.changes,))
        newest = self._one(f"SELECT max(seq) FROM {quote(self.changes)}")
        return SeqPosition(max(int(issued or 0), int(newest or 0)))

    def start(self) -> tuple[SeqPosition, str | None]:
        return self.current_position(), None

    def release_snapshot(self) -> None:
        pass

    def _check_position(self, start: int) -> None:
        """TaskError unless every change after ``start`` is still in the change table."""
        where = f"{self.url}: change table {self.changes}"
        if not self._has("table", self.changes):
            raise TaskError(f"{where} does not exist; the changes after position {start} are lost")
        last = self.current_position().value
        first = self._one(f"SELECT min(seq) FROM {quote(self.changes)}")
        kept_after = int(first) - 1 if first is not None else last
        if start > last:
            raise TaskError(
                f"{where} ends at {last}, before position {start}: it was recreated and the "
                f"changes after {start} are lost — run the task with a fresh full load"
            )
        if start < kept_after:
            raise TaskError(
                f"{where} no longer holds the changes after position {start} (it starts after "
                f"{kept_after}); they were deleted — run the task with a fresh full load"
            )
        lost = self._one(
            f"SELECT tbl FROM {quote(self.changes)} WHERE op='LOST' AND seq > ? LIMIT 1", (start,)
        )
        if lost is not None and lost in self._captured():
            raise TaskError(self._lost_message(lost, start))

    def _lost_message(self, table: str, start: int) -> str:
        return (
            f"{self.url}: the capture triggers of {SCHEMA}.{table} were missing after position "
            f"{start}, so changes were lost to this task — run the task with a fresh full load"
        )

    def _captured(self) -> set[str]:
        return set(self.tables if self.tables is not None else self._registered())

    # -- streaming --------------------------------------------------------------------------

    def stream(self, start: Position, stop: threading.Event) -> Generator[Transaction | None]:
        """Change-table rows after ``start`` in chunks of up to CHUNK_ROWS, in seq order."""
        self.delivered = last = _seq(start)
        self._check_position(last)
        self.target = -1  # set once the first trigger refresh went through
        seen_data, seen_schema, drained = None, None, False
        while not stop.is_set():
            if self.unconfirmed:
                self.confirm(SeqPosition(self.confirmed))
            data = self._one("PRAGMA data_version")
            if drained and data == seen_data:
                stop.wait(IDLE_WAIT)
                yield None
                continue
            schema = self._one("PRAGMA schema_version")
            if schema != seen_schema:
                if not self._refresh(sorted(self._captured())):
                    stop.wait(IDLE_WAIT)
                    yield None
                    continue
                seen_schema = self._one("PRAGMA schema_version")
            if self.target < 0:
                self.target = self.current_position().value
            rows = self._fetch(last)
            drained, seen_data = len(rows) < CHUNK_ROWS, data
            if not rows:
                continue
            txn = self._transaction(rows)
            self.delivered = last = rows[-1][0]
            yield txn

    def _fetch(self, after: int) -> list[Any]:
        """The next chunk; never ending on ``R`` rows, which pair with the row after them
        (written by the same statement, so committed with them)."""
        sql = (
            f"SELECT seq, tbl, op, old, new, at FROM {quote(self.changes)} "
            "WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        with self.lock:
            rows = self.conn.execute(sql, (after, CHUNK_ROWS)).fetchall()
            while rows and rows[-1][2] == "R":
                more = self.conn.execute(sql, (rows[-1][0], CHUNK_ROWS)).fetchall()
                if not more:
                    break
                rows += more
        return list(rows)

    def caught_up(self) -> bool:
        return self.target >= 0 and self.delivered >= self.target

    def _transaction(self, rows: list[Any]) -> Transaction:
        captured = self._captured()
        decoded = self._replaces([_Row.read(*row[:5]) for row in rows if row[1] in captured])
        errors = self._convert(decoded)
        changes = [self._change(r, errors.get(r.seq, "")) for r in decoded]
        end = SeqPosition(rows[-1][0])
        return Transaction(rows[0][0], _commit_time(rows[-1][5]), end, changes)

    def _layout(self, gen: int, table: str) -> Layout:
        gen = abs(gen)
        if gen not in self.layouts:
            with self.lock:
                row = self.conn.execute(
                    f"SELECT tbl, sql, columns FROM {quote(self.registry)} WHERE gen=?", (gen,)
                ).fetchone()
            if row is None or row[0] != table:
                raise TaskError(
                    f"{self.url}: change table {self.changes} has changes of {SCHEMA}.{table} "
                    f"recorded with column list {gen}, which {self.registry} no longer has"
                )
            self.layouts[gen] = Layout.from_json(gen, table, row[1] or "", row[2])
        return self.layouts[gen]

    def _replaces(self, rows: list[_Row]) -> list[_Row]:
        """``R`` rows to deletes where the next change of their table took their key."""
        out: list[_Row] = []
        waiting: dict[str, list[_Row]] = {}
        for row in rows:
            if row.op == "R":
                waiting.setdefault(row.table, []).append(row)
                continue
            for conflict in waiting.pop(row.table, []):
                if row.op in ("I", "U") and self._took_key(conflict, row):
                    out.append(_Row(conflict.seq, row.table, "D", old=conflict.old))
            out.append(row)
        return out

    def _took_key(self, conflict: _Row, row: _Row) -> bool:
        """True when ``row``'s new image has one of ``conflict``'s unique keys (non-NULL),
        and ``row`` is not the conflicting row itself (an upsert's DO UPDATE)."""
        assert conflict.old is not None and row.new is not None
        layout = self._layout(conflict.old[0], row.table)
        if abs(row.new[0]) != layout.gen or (row.old is not None and row.old[1] == conflict.old[1]):
            return False
        for key in layout.unique:
            mine = [conflict.old[1][i] for i in layout.positions(key)]
            theirs = [row.new[1][i] for i in layout.positions(key)]
            if None not in mine and mine == theirs:
                return True
        return False

    def _convert(self, rows: list[_Row]) -> dict[int, str]:
        """Raw values to canonical Python values, one Arrow conversion per column; a value
        that cannot be converted stays raw and its row's problem is returned (by seq)."""
        problems: dict[int, list[str]] = {}
        groups: dict[int, list[tuple[int, list[Any]]]] = {}
        for row in rows:
            for image in (row.old, row.new):
                if image is not None:
                    self._layout(image[0], row.table)
                    groups.setdefault(abs(image[0]), []).append((row.seq, image[1]))
        for gen, images in groups.items():
            layout = self.layouts[gen]
            seqs = [seq for seq, _values in images]
            columns = zip(*(values for _seq, values in images), strict=True)
            converted = [
                _column(name, ctype, list(raws), seqs, problems)
                for name, ctype, raws in zip(layout.columns, layout.ctypes, columns, strict=True)
            ]
            for (_seq, values), image in zip(images, zip(*converted, strict=True), strict=True):
                values[:] = image
        return {seq: "; ".join(dict.fromkeys(texts)) for seq, texts in problems.items()}

    def _change(self, row: _Row, error: str) -> Change:
        if row.op == "LOST":
            raise TaskError(self._lost_message(row.table, row.seq - 1))
        if row.op == "DDL":
            old, new = (self._layout(g, row.table) for g in row.gens)
            ddl = _column_changes(old, new)
            return Change(Op.DDL, SCHEMA, row.table, columns=new.columns, ddl=ddl, origin=row.seq)
        if row.op == "T":
            return Change(Op.TRUNCATE, SCHEMA, row.table, origin=row.seq)
        image = row.new or row.old
        assert image is not None
        layout = self.layouts[abs(image[0])]
        change = Change(Op(row.op), SCHEMA, row.table, origin=row.seq)
        if row.new is not None:
            change = _with_values(change, layout.columns, row.new[1])
        if row.old is not None:
            whole = (SCHEMA, row.table) in self.old_rows
            change = _with_key(change, self.layouts[abs(row.old[0])], row.old[1], whole)
        return replace(change, error=error) if error else change

    # -- after the target committed ------------------------------------------------------

    def confirm(self, position: Position) -> None:
        """Delete the change rows the target durably holds (retried later when locked)."""
        self.confirmed = max(self.confirmed, _seq(position))
        try:
            with self._write(CONFIRM_WAIT_MS):
                self.conn.execute(
                    f"DELETE FROM {quote(self.changes)} WHERE seq <= ?", (self.confirmed,)
                )
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise EndpointError(str(self.url), f"cannot trim {self.changes}: {exc}") from exc
            log.info("%s: database locked; trimming the change table later", self.url)
            self.unconfirmed = True
            return
        self.unconfirmed = False

    def drop(self) -> None:
        """Remove the triggers, the change table and the generation table."""
        with self._write(PREPARE_TIMEOUT_MS) as conn:
            for table in self._registered():
                self._drop_triggers(table)
            ours = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND instr(sql, ?) > 0",
                (quote(self.changes),),
            ).fetchall()
            for (name,) in ours:
                conn.execute(f"DROP TRIGGER IF EXISTS {quote(name)}")
            conn.execute(f"DROP TABLE IF EXISTS {quote(self.changes)}")
            conn.execute(f"DROP TABLE IF EXISTS {quote(self.registry)}")
        self.layouts.clear()
        self.lost.clear()
        self.created = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_BAD_CHANGE_VALUE = (*_BAD_VALUE, UnicodeDecodeError)


def _column(
    name: str, ctype: ColumnType, raws: list[Any], seqs: list[int], problems: dict[int, list[str]]
) -> list[Any]:
    """A column's values of a chunk converted; one by one when some do not fit (those stay
    raw, and ``problems`` gets ``column X: why`` by change seq: a data error)."""
    try:
        return _python(raws, ctype)
    except _BAD_CHANGE_VALUE:
        pass
    out = []
    for raw, seq in zip(raws, seqs, strict=True):
        try:
            out += _python([raw], ctype)
        except _BAD_CHANGE_VALUE:
            out.append(raw)
            why = f"column {name}: value {raw!r} cannot be represented as {ctype}"
            problems.setdefault(seq, []).append(why)
    return out


def _python(raws: list[Any], ctype: ColumnType) -> list[Any]:
    """What the full load makes of these stored values (decimal/date text, bytes, ...)."""
    if ctype.kind in _AS_TEXT:
        raws = [r.decode() if isinstance(r, bytes) else r for r in raws]
    return list(_to_array(raws, ctype).to_pylist())


def _with_values(change: Change, columns: tuple[str, ...], values: list[Any]) -> Change:
    return Change(
        change.op,
        change.schema,
        change.table,
        columns,
        tuple(values),
        change.key_columns,
        origin=change.origin,
    )


def _with_key(change: Change, old: Layout, values: list[Any], whole: bool) -> Change:
    """Key columns (primary key, else every column) with the old row's values, and with
    ``whole`` the whole old row when the key is less than that."""
    by_name = dict(zip(old.columns, values, strict=True))
    names = old.key_columns
    whole = whole and names != old.columns
    return Change(
        change.op,
        change.schema,
        change.table,
        change.columns,
        change.values,
        names,
        tuple(by_name[n] for n in names),
        old_columns=old.columns if whole else (),
        old_values=tuple(values) if whole else (),
        origin=change.origin,
    )
