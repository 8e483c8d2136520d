"""The engine side of a row applier: SQL dialect, session (statements, transactions)
and checkpoint store, as the hooks :class:`opendms.endpoints.apply.rows.RowApplier` calls."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from opendms.changes import ApplyPlan, ColumnChange
from opendms.model import ColumnType, Table

Stmt = tuple[str, tuple[Any, ...]]
CHECKPOINTS = "opendms_checkpoints"


@dataclass(frozen=True)
class StatementError:
    """A statement the target refused (``conflict``: a duplicate key)."""

    message: str
    conflict: bool


Result = int | StatementError  # affected rows (-1: not counted) or the refusal


class SqlSession(abc.ABC):
    """SQL dialect, statement session and checkpoint store of one DB-API target."""

    placeholder = "?"
    null_safe = " IS "
    transactional_ddl = True  # False: DDL commits implicitly (MySQL)

    @abc.abstractmethod
    def q(self, name: str) -> str: ...

    @abc.abstractmethod
    def table_sql(self, table: Table) -> str: ...

    def key_sql(self, ctype: ColumnType) -> str:
        """The SQL for one key value in a WHERE clause."""
        return self.placeholder

    def key_param(self, value: Any, ctype: ColumnType) -> Any:
        """A stored value as the parameter compared in a WHERE clause."""
        return value

    @abc.abstractmethod
    def one_row(self, table: str, where: str) -> tuple[str, str]:
        """(WHERE clause, statement suffix) touching at most one row matching ``where``."""
        ...

    @abc.abstractmethod
    def upsert_suffix(self, table: Table, cols: tuple[str, ...]) -> str: ...

    @abc.abstractmethod
    def stored(self, array: pa.Array[Any], ctype: ColumnType) -> list[Any]:
        """Values as the full-load writer stores them (the statement parameters)."""
        ...

    @abc.abstractmethod
    def execute_each(self, stmts: list[Stmt], checked: bool) -> list[Result]:
        """Run ``stmts`` in order; one result per statement, ending early at a statement
        error that is not a conflict. ``checked``: affected-row counts are needed."""
        ...

    def insert(
        self, table: Table, cols: tuple[str, ...], rows: list[list[Any]], upsert: bool
    ) -> list[Result]:
        sql = self.insert_sql(table, cols, upsert)
        return self.execute_each([(sql, tuple(r)) for r in rows], checked=False)

    @abc.abstractmethod
    def alter_column(self, tmap: ApplyPlan, cc: ColumnChange) -> None: ...

    @abc.abstractmethod
    def ensure_checkpoints(self) -> None: ...

    @abc.abstractmethod
    def save_checkpoint(self, position: str) -> None:
        """Upsert the checkpoint row inside the open transaction."""
        ...

    @abc.abstractmethod
    def begin(self) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def savepoint(self, name: str, action: str) -> None:
        """``action``: SAVEPOINT, ROLLBACK TO SAVEPOINT or RELEASE SAVEPOINT."""
        ...

    @abc.abstractmethod
    def read_checkpoint(self) -> str | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def insert_sql(self, table: Table, cols: tuple[str, ...], upsert: bool) -> str: ...
