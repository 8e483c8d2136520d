"""Reading a SQLite database (tables, keys, indexes, views, triggers) for conversion
(``Engine.source_catalog``)."""

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
from opendms.endpoints.sqlite import database_path
from opendms.endpoints.sqlite.ddldialect import DIALECT
from opendms.endpoints.sqlite.types import from_declared
from opendms.errors import DatabaseMissingError

SCHEMA = "main"
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


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(conn: Any, name: str) -> TableDef:
    info = conn.execute(f"PRAGMA table_info({_q(name)})").fetchall()
    keyed = sorted((r[5], r[1]) for r in info if r[5])
    cols = [
        ColumnDef(
            r[1],
            r[2] or "",
            from_declared(r[2] or ""),
            nullable=not r[3] and r[5] == 0,
            default=r[4],
            identity=_rowid_alias(r, keyed),
        )
        for r in info
    ]
    table = TableDef(SCHEMA, name, cols, tuple(c for _, c in keyed))
    _foreign_keys(conn, table)
    _indexes(conn, table)
    return table


def _rowid_alias(row: Any, keyed: list[tuple[int, str]]) -> bool:
    """``INTEGER PRIMARY KEY`` aliases the rowid: SQLite numbers new rows itself."""
    return len(keyed) == 1 and row[5] == 1 and (row[2] or "").upper() == "INTEGER"


def _foreign_keys(conn: Any, table: TableDef) -> None:
    grouped: dict[int, list[Any]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({_q(table.name)})").fetchall():
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


def _indexes(conn: Any, table: TableDef) -> None:
    for _, name, unique, origin, *_ in conn.execute(f"PRAGMA index_list({_q(table.name)})"):
        if origin == "pk":
            continue
        cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({_q(name)})").fetchall())
        if name.startswith("sqlite_autoindex_"):
            name = f"{table.name}_{'_'.join(cols)}_key"
        definition = IndexDef(name, cols, bool(unique))
        if origin == "u":
            table.uniques.append(definition)
        elif all(cols):
            table.indexes.append(definition)
