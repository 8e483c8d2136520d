"""SQLite-backed state store.

One file holds every task's definition, status and table statistics. Writes
are small and committed at once, so another process (``opendms task status``)
sees progress while a task runs. Set the path with ``--state`` or
``OPENDMS_STATE``; the default is ``~/.opendms/state.db``.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opendms.errors import ConfigError
from opendms.state.private import private_dir, private_file
from opendms.state.status import ANY_RUN, AnyRun, TaskStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    migration_type TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    stop_reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    started_at TEXT,
    stopped_at TEXT,
    phase TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    file TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    position TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS table_stats (
    task TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    state TEXT NOT NULL,
    full_load_rows INTEGER NOT NULL DEFAULT 0,
    estimated_rows INTEGER NOT NULL DEFAULT 0,
    error_rows INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    ended_at TEXT,
    error TEXT NOT NULL DEFAULT '',
    inserts INTEGER NOT NULL DEFAULT 0,
    updates INTEGER NOT NULL DEFAULT 0,
    deletes INTEGER NOT NULL DEFAULT 0,
    ddls INTEGER NOT NULL DEFAULT 0,
    truncates INTEGER NOT NULL DEFAULT 0,
    last_change_at TEXT,
    PRIMARY KEY (task, schema_name, table_name)
);
CREATE TABLE IF NOT EXISTS cdc_schemas (
    task TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    position TEXT NOT NULL,
    plans TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_errors (
    task TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_key TEXT NOT NULL,
    column_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    value TEXT NOT NULL DEFAULT ''
);
"""


class TableState(enum.StrEnum):
    BEFORE_LOAD = "Before load"
    FULL_LOAD = "Full load"
    COMPLETED = "Table completed"
    CANCELLED = "Table cancelled"  # the task stopped before the table was loaded
    ERROR = "Table error"


@dataclass(frozen=True)
class TaskRecord:
    name: str
    source: str
    target: str
    migration_type: str
    spec: str
    status: TaskStatus
    stop_reason: str
    created_at: str
    started_at: str | None
    stopped_at: str | None
    phase: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    file: str = ""  # the task file it was last run from (task start/resume/reload use it)
    pid: int | None = None  # the process running it, while it runs
    position: str = ""  # CDC: the source position the target holds everything up to


@dataclass(frozen=True)
class TableStats:
    schema: str
    name: str
    state: TableState
    full_load_rows: int
    estimated_rows: int
    error_rows: int
    started_at: str | None
    ended_at: str | None
    error: str
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    ddls: int = 0
    last_change_at: str | None = None


OPEN_TIMEOUT = 30.0  # seconds a state file another process holds may keep us waiting


def default_path() -> Path:
    env = os.environ.get("OPENDMS_STATE")
    if env:
        return Path(env)
    return Path.home() / ".opendms" / "state.db"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SideStore:
    """A part that keeps its own tables in the state file (handlers, workflows), on a
    connection of its own: WAL, and ``schema``'s tables made when missing."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            private_dir(path.parent)
            private_file(path)
            self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the state store {str(path)!r}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock, self.conn:
            yield self.conn


class StateStore:
    """Thread-safe access to the state file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                self.conn = self._open()
                break
            except sqlite3.OperationalError as exc:
                # SQLite answers "locked" at once, without waiting, when another
                # connection is opening or closing the file's WAL at the same moment
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error(exc) from exc
                time.sleep(0.05)
            except (OSError, sqlite3.Error) as exc:
                raise self._error(exc) from exc
        self.lock = threading.Lock()

    def _error(self, exc: Exception) -> ConfigError:
        return ConfigError(f"cannot open the state store {str(self.path)!r}: {exc}")

    def _open(self) -> sqlite3.Connection:
        private_dir(self.path.parent)
        private_file(self.path)  # it holds row values (data errors, validation)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # Progress rows are rewritten often; WAL+NORMAL survives a crash of
            # opendms (not of the OS) without an fsync per update.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Add columns that newer versions keep, to a state file made by an older one."""
        have = {r[1] for r in conn.execute("PRAGMA table_info(table_stats)").fetchall()}
        for column in ("inserts", "updates", "deletes", "ddls", "truncates"):
            if column not in have:
                conn.execute(
                    f"ALTER TABLE table_stats ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                )
        have_errors = {r[1] for r in conn.execute("PRAGMA table_info(data_errors)")}
        if "value" not in have_errors:
            conn.execute("ALTER TABLE data_errors ADD COLUMN value TEXT NOT NULL DEFAULT ''")
        if "last_change_at" not in have:
            conn.execute("ALTER TABLE table_stats ADD COLUMN last_change_at TEXT")
        have = {r[1] for r in conn.execute("PRAGMA table_info(tasks)").fetchall()}
        if "phase" not in have:
            conn.execute("ALTER TABLE tasks ADD COLUMN phase TEXT NOT NULL DEFAULT ''")
        if "metrics" not in have:
            conn.execute("ALTER TABLE tasks ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}'")
        if "file" not in have:
            conn.execute("ALTER TABLE tasks ADD COLUMN file TEXT NOT NULL DEFAULT ''")
            conn.execute("ALTER TABLE tasks ADD COLUMN pid INTEGER")
        if "position" not in have:
            conn.execute("ALTER TABLE tasks ADD COLUMN position TEXT NOT NULL DEFAULT ''")
        conn.commit()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock, self.conn:
            return self.conn.execute(sql, args).fetchall()

    def save_task(self, name: str, source: str, target: str, mtype: str, spec: str) -> bool:
        """Create a task (status ``creating``; True) or redefine one (its status is kept;
        False)."""
        with self.lock, self.conn:
            cursor = self.conn.execute(
                "INSERT INTO tasks (name, source, target, migration_type, spec, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                (name, source, target, mtype, spec, TaskStatus.CREATING.value, now()),
            )
            if cursor.rowcount > 0:
                return True
            self.conn.execute(
                "UPDATE tasks SET source=?, target=?, migration_type=?, spec=? WHERE name=?",
                (source, target, mtype, spec, name),
            )
            return False

    def set_file(self, name: str, file: str) -> None:
        self._exec("UPDATE tasks SET file=? WHERE name=?", (file, name))

    def set_pid(self, name: str, pid: int | None) -> None:
        self._exec("UPDATE tasks SET pid=? WHERE name=?", (pid, name))

    def set_status(
        self,
        name: str,
        status: TaskStatus,
        reason: str = "",
        *,
        allowed_from: Collection[TaskStatus] | None = None,
        run: str | AnyRun | None = ANY_RUN,
        stamp: bool = True,
    ) -> bool:
        """Write a task's status; True when written. Product code changes a status with
        :func:`opendms.state.status.transition`, which checks the move.

        ``allowed_from``: only when the task is in one of these statuses; ``run``: only in
        the run that started at that time. ``stamp``: ``starting`` begins a run (start
        time now, no stop reason, stop time or phase); ``stopped`` and ``failed`` end it
        (``reason``, stop time now, no pid). Without it only the status changes."""
        sets, args = ["status=?"], [status.value]
        if stamp and status is TaskStatus.STARTING:
            sets += ["stop_reason=''", "started_at=?", "stopped_at=NULL", "phase=''"]
            args.append(now())
        elif stamp and status in (TaskStatus.STOPPED, TaskStatus.FAILED):
            sets += ["stop_reason=?", "stopped_at=?", "pid=NULL"]
            args += [reason, now()]
        where = ["name=?"]
        conditions: list[str | None] = [name]
        if allowed_from is not None:
            where.append(f"status IN ({', '.join('?' * len(allowed_from))})")
            conditions += [s.value for s in allowed_from]
        if run is not ANY_RUN:
            where.append("started_at IS ?")
            conditions.append(run)
        sql = f"UPDATE tasks SET {', '.join(sets)} WHERE {' AND '.join(where)}"
        with self.lock, self.conn:
            return self.conn.execute(sql, (*args, *conditions)).rowcount > 0

    def set_phase(self, name: str, phase: str) -> None:
        """DMS's phases: full load, applying cached changes, ongoing replication."""
        self._exec("UPDATE tasks SET phase=? WHERE name=?", (phase, name))

    def set_position(self, name: str, position: str) -> None:
        """CDC: everything up to ``position`` is applied (shown by ``task status``)."""
        self._exec("UPDATE tasks SET position=? WHERE name=?", (position, name))

    def set_metrics(self, name: str, metrics: dict[str, float]) -> None:
        """CDC metrics: incoming changes, source/target latency (s), throughput (rows/s)."""
        self._exec("UPDATE tasks SET metrics=? WHERE name=?", (json.dumps(metrics), name))

    def task(self, name: str) -> TaskRecord | None:
        rows = self._exec("SELECT * FROM tasks WHERE name=?", (name,))
        return _task(rows[0]) if rows else None

    def tasks(self) -> list[TaskRecord]:
        return [_task(r) for r in self._exec("SELECT * FROM tasks ORDER BY name")]

    def reset_tables(self, task: str) -> None:
        self._exec("DELETE FROM table_stats WHERE task=?", (task,))
        self._exec("DELETE FROM data_errors WHERE task=?", (task,))

    def table_planned(
        self, task: str, schema: str, table: str, estimated: int, keep: bool = False
    ) -> None:
        """Start a table's statistics (``keep``: leave existing ones, when resuming)."""
        verb = "INSERT OR IGNORE" if keep else "INSERT OR REPLACE"
        self._exec(
            f"{verb} INTO table_stats (task, schema_name, table_name, state, "
            "estimated_rows) VALUES (?, ?, ?, ?, ?)",
            (task, schema, table, TableState.BEFORE_LOAD.value, estimated),
        )

    def table_started(self, task: str, schema: str, table: str) -> None:
        self._exec(
            "UPDATE table_stats SET state=?, started_at=?, full_load_rows=0 "
            "WHERE task=? AND schema_name=? AND table_name=?",
            (TableState.FULL_LOAD.value, now(), task, schema, table),
        )

    def table_progress(self, task: str, schema: str, table: str, rows: int, errors: int) -> None:
        self._exec(
            "UPDATE table_stats SET full_load_rows=?, error_rows=? "
            "WHERE task=? AND schema_name=? AND table_name=?",
            (rows, errors, task, schema, table),
        )

    def table_ended(
        self, task: str, schema: str, table: str, state: TableState, error: str = ""
    ) -> None:
        self._exec(
            "UPDATE table_stats SET state=?, ended_at=?, error=? "
            "WHERE task=? AND schema_name=? AND table_name=?",
            (state.value, now(), error, task, schema, table),
        )

    def tables(self, task: str) -> list[TableStats]:
        rows = self._exec(
            "SELECT schema_name, table_name, state, full_load_rows, estimated_rows, error_rows, "
            "started_at, ended_at, error, inserts, updates, deletes, ddls, last_change_at "
            "FROM table_stats WHERE task=? "
            "ORDER BY schema_name, table_name",
            (task,),
        )
        return [TableStats(r[0], r[1], TableState(r[2]), *r[3:]) for r in rows]

    def count_change(self, task: str, schema: str, table: str, op: str, count: int) -> None:
        """Add ``count`` applied changes of kind ``op`` (I, U, D, T, DDL) to a table's
        statistics. A TRUNCATE also counts in ``ddls``: DMS lists TRUNCATE TABLE among the
        DDL statements it replicates."""
        column = {"I": "inserts", "U": "updates", "D": "deletes", "T": "truncates", "DDL": "ddls"}[
            op
        ]
        also = ", ddls = ddls + ?" if op == "T" else ""
        args = (count, count) if op == "T" else (count,)
        self._exec(
            f"UPDATE table_stats SET {column} = {column} + ?{also}, last_change_at = ? "
            "WHERE task=? AND schema_name=? AND table_name=?",
            (*args, now(), task, schema, table),
        )

    def change_counts(self, task: str) -> dict[str, tuple[int, int, int, int]]:
        """Per table: (inserts, updates, deletes, truncates) applied by CDC."""
        rows = self._exec(
            "SELECT schema_name || '.' || table_name, inserts, updates, deletes, truncates "
            "FROM table_stats WHERE task=?",
            (task,),
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def data_error(
        self, task: str, table: str, row: str, column: str, reason: str, value: str = ""
    ) -> None:
        """Record a row an error policy skipped: its key, column, reason and value."""
        self._exec(
            "INSERT INTO data_errors (task, table_name, row_key, column_name, reason, at, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task, table, row, column, reason, now(), value),
        )

    def data_errors(self, task: str) -> list[tuple[str, str, str, str]]:
        rows = self._exec(
            "SELECT table_name, row_key, column_name, reason FROM data_errors WHERE task=? "
            "ORDER BY rowid",
            (task,),
        )
        return [tuple(r) for r in rows]

    def data_error_values(self, task: str) -> list[str]:
        """The recorded values of the task's data errors, in order."""
        rows = self._exec("SELECT value FROM data_errors WHERE task=? ORDER BY rowid", (task,))
        return [r[0] for r in rows]

    def count_errors(self, task: str, schema: str, table: str, count: int = 1) -> None:
        """Add ``count`` rows an error policy skipped to a table's error count."""
        self._exec(
            "UPDATE table_stats SET error_rows = error_rows + ? "
            "WHERE task=? AND schema_name=? AND table_name=?",
            (count, task, schema, table),
        )

    def save_schema(self, task: str, position: str, plans: str, fresh: bool = False) -> None:
        """The captured tables' columns as of ``position`` (CDC schema history); ``fresh``
        forgets the history first (a new full load)."""
        if fresh:
            self._exec("DELETE FROM cdc_schemas WHERE task=?", (task,))
        self._exec(
            "INSERT INTO cdc_schemas (task, position, plans) VALUES (?, ?, ?)",
            (task, position, plans),
        )

    def schemas(self, task: str) -> list[tuple[str, str]]:
        """(position, plans) versions of a task's CDC schema history, oldest first."""
        rows = self._exec(
            "SELECT position, plans FROM cdc_schemas WHERE task=? ORDER BY seq", (task,)
        )
        return [(r[0], r[1]) for r in rows]

    def delete_task(self, name: str) -> None:
        self._exec("DELETE FROM cdc_schemas WHERE task=?", (name,))
        self.reset_tables(name)
        self._exec("DELETE FROM tasks WHERE name=?", (name,))

    def close(self) -> None:
        self.conn.close()


def _task(row: Any) -> TaskRecord:
    return TaskRecord(
        name=row[0],
        source=row[1],
        target=row[2],
        migration_type=row[3],
        spec=row[4],
        status=TaskStatus(row[5]),
        stop_reason=row[6],
        created_at=row[7],
        started_at=row[8],
        stopped_at=row[9],
        phase=row[10],
        metrics=json.loads(row[11] or "{}"),
        file=row[12] or "",
        pid=row[13],
        position=row[14] or "",
    )
