"""Reading a SQLite database for conversion (``Engine.source_catalog``): the tables, their
columns, keys and indexes as :mod:`.catalog` reads them, and on top of them foreign keys,
views and triggers."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.schemaobjects import (
    CodeObject,
    ColumnDef,
    ForeignKey,
    IndexDef,
    SourceCatalog,
    TableDef,
    ViewDef,
)
from opendms.endpoints.sqlite import catalog as reader
from opendms.endpoints.sqlite import database_path
from opendms.endpoints.sqlite.ddldialect import DIALECT
from opendms.errors import DatabaseMissingError

SCHEMA = reader.SCHEMA
_AS = re.compile(r"\sAS\s", re.I)


def read_catalog(url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
    """Everything conversion reads from the database file of ``url`` (its one schema,
    ``main``, whatever ``schemas`` names)."""
    path = database_path(url)
    if not Path(path).is_file():
        raise DatabaseMissingError(str(url), f"database file {path!r} does not exist")
    catalog = SourceCatalog(DIALECT.name, str(url), [SCHEMA])
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
        ).fetchall()
        for kind, name, table, sql in objects:
            _object(conn, catalog, kind, name, table, sql or "")
    finally:
        conn.close()
    return catalog


def _object(conn: Any, catalog: SourceCatalog, kind: str, name: str, table: str, sql: str) -> None:
    if kind == "table":
        catalog.tables.append(_table(conn, name))
    elif kind == "view":
        catalog.views.append(ViewDef(SCHEMA, name, _after_as(sql) or sql))
    elif kind == "trigger":
        catalog.code.append(CodeObject("triggers", SCHEMA, name, sql, table))


def _after_as(sql: str) -> str:
    """The SELECT of ``CREATE VIEW name AS SELECT ...``."""
    found = _AS.search(sql)
    return sql[found.end() :].strip() if found else ""


def _table(conn: Any, name: str) -> TableDef:
    columns = reader.columns(conn, name)
    key = reader.primary_key(columns)
    cols = [
        ColumnDef(
            c.name,
            c.declared,
            c.type,
            nullable=c.nullable,
            default=c.default,
            identity=_rowid_alias(c, key),
        )
        for c in columns
    ]
    table = TableDef(SCHEMA, name, cols, key)
    _foreign_keys(conn, table)
    for index in reader.indexes(conn, name):
        _index(table, index)
    return table


def _rowid_alias(col: reader.ColumnRow, key: tuple[str, ...]) -> bool:
    """``INTEGER PRIMARY KEY`` aliases the rowid: SQLite numbers new rows itself."""
    return len(key) == 1 and col.key == 1 and col.declared.upper() == "INTEGER"


def _foreign_keys(conn: Any, table: TableDef) -> None:
    grouped: dict[int, list[Any]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({reader.quote(table.name)})").fetchall():
        grouped.setdefault(row[0], []).append(row)
    for fk_id, rows in sorted(grouped.items()):
        first = rows[0]
        fk = ForeignKey(
            f"{table.name}_fk{fk_id}",
            tuple(r[3] for r in rows),
            SCHEMA,
            first[2],
            tuple(r[4] or r[3] for r in rows),
            first[6],
            first[5],
        )
        table.foreign_keys.append(fk)


def _index(table: TableDef, index: reader.IndexRow) -> None:
    """A UNIQUE constraint (its automatic index named as PostgreSQL would) or an index."""
    if index.origin == "pk":
        return
    name = index.name
    if name.startswith("sqlite_autoindex_"):
        name = f"{table.name}_{'_'.join(index.columns)}_key"
    definition = IndexDef(name, index.columns, index.unique)
    if index.origin == "u":
        table.uniques.append(definition)
    elif all(index.columns):
        table.indexes.append(definition)
