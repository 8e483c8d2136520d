"""SQLite as a schema conversion source and target (``Engine.ddl_dialect``): no schemas,
constraints inside CREATE TABLE, INTEGER PRIMARY KEY AUTOINCREMENT row ids, enum labels
kept by CHECK constraints, 1 and 0 for booleans, and no comments."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.ddldialect import Comments, DdlDialect, Runner
from opendms.endpoints.sqlite import database_path
from opendms.endpoints.sqlite.types import to_declared
from opendms.model import ColumnType

__all__ = ["DIALECT"]


def _column_type(ctype: ColumnType, in_key: bool, same_engine: bool) -> str:
    return to_declared(ctype)


@contextmanager
def _session(url: EndpointURL, throwaway: bool, drop: list[str]) -> Iterator[Runner]:
    """The database file of ``url``, or (``throwaway``) a database in memory."""
    conn = sqlite3.connect(":memory:" if throwaway else database_path(url), isolation_level=None)

    def run(sql: str) -> None:
        conn.execute(sql)

    try:
        yield run
    finally:
        conn.close()


DIALECT = DdlDialect(
    name="sqlite",
    title="SQLite",
    sqlglot="sqlite",
    session=_session,
    column_type=_column_type,
    name_limit=1000,
    enum_note="columns use TEXT with a CHECK (... IN (...)) constraint",
    enum_checks=True,
    identity="PRIMARY KEY AUTOINCREMENT",
    identity_name="INTEGER PRIMARY KEY",
    rowid_type="INTEGER",
    boolean_literals=False,
    comments=Comments.NONE,
    inline_constraints=True,
    regexp=False,
    builtins_shadow=True,
    string_agg_note="string aggregation ({sql}) became GROUP_CONCAT; check the separator and "
    "the order of the values",
    search_index="an FTS5 table",
)
"""SQLite's DDL dialect."""
