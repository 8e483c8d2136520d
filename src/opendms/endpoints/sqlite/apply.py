"""Applying captured changes to a SQLite target (see :mod:`opendms.endpoints.apply`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from opendms.changes import ApplyPlan, ColumnChange
from opendms.endpoints.apply.policy import OnError
from opendms.endpoints.apply.rows import RowApplier
from opendms.endpoints.apply.session import CHECKPOINTS, Result, StatementError, Stmt
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.pyvalues import python_values
from opendms.endpoints.sqlite import database_path
from opendms.endpoints.sqlite.source import quote
from opendms.endpoints.sqlite.target import SQLiteTarget
from opendms.endpoints.sqlite.types import to_declared
from opendms.errors import EndpointError, OpenDMSError, ResourceError, TableError
from opendms.model import ColumnType, Table

log = logging.getLogger("opendms.apply")
_INDEX_SQL = "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql NOT NULL"


class SqliteApplier(RowApplier):
    """Applies changes to a SQLite target through its own connection (WAL, one writer).

    SQLite DDL is transactional, so a whole batch, DDL included, is one transaction.
    """

    def __init__(
        self,
        target: SQLiteTarget,
        task: str,
        plans: list[ApplyPlan],
        policies: Mapping[str, str] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        super().__init__(target, task, plans, policies, on_error)
        self.url: EndpointURL = target.url
        try:
            self.conn = sqlite3.connect(
                database_path(self.url), timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise EndpointError(str(self.url), f"cannot open the database: {exc}") from exc

    def _fail(self, exc: sqlite3.Error, what: str) -> OpenDMSError:
        """A missing table or column is a TableError; a locked or full database is a
        ResourceError (retried); anything else an EndpointError."""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        low = first.lower()
        if low.startswith(("no such table", "no such column")) or "has no column" in low:
            return TableError("", first)
        if (
            "database is locked" in low
            or "disk is full" in low
            or "database or disk is full" in low
        ):
            return ResourceError(str(self.url), f"{what}: {first}")
        return EndpointError(str(self.url), f"{what}: {first}")

    def _run(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._fail(exc, sql.split(" (", 1)[0][:80]) from exc

    # -- hooks --

    def q(self, name: str) -> str:
        return quote(name)

    def table_sql(self, table: Table) -> str:
        return quote(table.name)

    def one_row(self, table: str, where: str) -> tuple[str, str]:
        return f"rowid = (SELECT rowid FROM {table} WHERE {where} LIMIT 1)", ""

    def upsert_suffix(self, table: Table, cols: tuple[str, ...]) -> str:
        pk = table.primary_key
        if not pk or not set(pk) <= set(cols):
            return ""
        conflict = ", ".join(quote(k) for k in pk)
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in cols if c not in pk)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        return f" ON CONFLICT ({conflict}) {action}"

    def stored(self, array: pa.Array[Any], ctype: ColumnType) -> list[Any]:
        return python_values(array, ctype)  # exactly what SQLiteWriter binds

    def execute_each(self, stmts: list[Stmt], checked: bool) -> list[Result]:
        if len(stmts) > 1 and len({sql for sql, _ in stmts}) == 1:
            done = self._many(stmts[0][0], [args for _, args in stmts], checked)
            if done is not None:
                return done
        out: list[Result] = []
        for sql, args in stmts:
            result = self._one(sql, args)
            out.append(result)
            if isinstance(result, StatementError) and not result.conflict:
                break
        return out

    def _many(self, sql: str, rows: list[tuple[Any, ...]], checked: bool) -> list[Result] | None:
        """executemany under a savepoint; None (rolled back) when a row needs a closer look."""
        self._run("SAVEPOINT opendms_many")
        try:
            cur = self.conn.executemany(sql, rows)
            ok = not checked or cur.rowcount == len(rows)
        except sqlite3.IntegrityError:
            ok = False
        except sqlite3.Error as exc:
            raise self._fail(exc, "apply") from exc
        if not ok:
            self._run("ROLLBACK TO opendms_many")
        self._run("RELEASE opendms_many")
        return [1 if checked else -1] * len(rows) if ok else None

    def _one(self, sql: str, args: tuple[Any, ...]) -> Result:
        try:
            return self.conn.execute(sql, args).rowcount
        except sqlite3.IntegrityError as exc:
            return StatementError(str(exc), str(exc).startswith("UNIQUE constraint failed"))
        except sqlite3.Error as exc:
            raise self._fail(exc, "apply") from exc

    def begin(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._run("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rollback failed: %s", exc)

    def savepoint(self, name: str, action: str) -> None:
        self._run(f"{action} {name}")

    # -- checkpoints --

    def ensure_checkpoints(self) -> None:
        self._run(
            f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} "
            "(task TEXT PRIMARY KEY, position TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )

    def save_checkpoint(self, position: str) -> None:
        self._run(
            f"INSERT INTO {CHECKPOINTS} (task, position, applied_at) "
            "VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now')) ON CONFLICT (task) DO UPDATE "
            "SET position = excluded.position, applied_at = excluded.applied_at",
            (self.task, position),
        )

    def read_checkpoint(self) -> str | None:
        self.ensure_checkpoints()
        self.ready = True
        row = self._run(
            f"SELECT position FROM {CHECKPOINTS} WHERE task = ?", (self.task,)
        ).fetchone()
        return str(row[0]) if row else None

    # -- DDL --

    def alter_column(self, tmap: ApplyPlan, cc: ColumnChange) -> None:
        """Column DDL, skipped when already done (SQLite DDL is transactional)."""
        name = tmap.target_name(cc)
        if name is None:
            return
        table = quote(tmap.target.name)
        info = self._run(f"PRAGMA table_info({table})").fetchall()
        present = {str(r[1]).lower(): r for r in info}
        if cc.action == "add" and name.lower() not in present:
            assert cc.ctype is not None
            # SQLite cannot add a NOT NULL column without a default: added columns are nullable
            self._run(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {to_declared(cc.ctype)}")
        elif cc.action == "drop" and name.lower() in present:
            self._run(f"ALTER TABLE {table} DROP COLUMN {quote(name)}")
        elif cc.action == "rename" and name.lower() in present:
            new = cc.new_name or name
            self._run(f"ALTER TABLE {table} RENAME COLUMN {quote(name)} TO {quote(new)}")
        elif cc.action == "alter_type" and name.lower() in present:
            assert cc.ctype is not None
            self._retype(tmap.target.name, info, name, to_declared(cc.ctype))

    def _retype(self, table: str, info: list[Any], column: str, declared: str) -> None:
        """Change a declared type by rebuilding the table (SQLite has no ALTER COLUMN TYPE).

        The declared type decides the column's affinity, so keeping the old one would
        store new values differently from a full load (``'007'`` as 7 in an INT column).
        Copying through the new declaration converts stored values like a CAST does.
        """
        if any(str(r[1]).lower() == column.lower() and str(r[2]) == declared for r in info):
            return
        defs = []
        for _cid, name, decl, notnull, default, _pk in info:
            typ = declared if str(name).lower() == column.lower() else decl
            text = f"{quote(name)} {typ}" + (" NOT NULL" if notnull else "")
            defs.append(text + (f" DEFAULT {default}" if default is not None else ""))
        pk = [str(r[1]) for r in sorted(info, key=lambda r: r[5]) if r[5]]
        if pk:
            defs.append("PRIMARY KEY (" + ", ".join(quote(k) for k in pk) + ")")
        indexes = self._run(_INDEX_SQL, (table,)).fetchall()
        names = ", ".join(quote(str(r[1])) for r in info)
        temp = quote(f"{table}__opendms_retype")
        self._run(f"CREATE TABLE {temp} (" + ", ".join(defs) + ")")
        self._run(f"INSERT INTO {temp} ({names}) SELECT {names} FROM {quote(table)}")
        self._run(f"DROP TABLE {quote(table)}")
        self._run(f"ALTER TABLE {temp} RENAME TO {quote(table)}")
        for (sql,) in indexes:
            self._run(sql)

    def close(self) -> None:
        self.conn.close()
