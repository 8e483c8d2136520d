"""The one reader of a SQLite database's tables: their columns, keys and indexes, read
from the PRAGMAs once each and served both as the migration's
:class:`~opendms.model.Table` (:func:`describe`) and, through ``schemacatalog``, as the
conversion's schema objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opendms.endpoints.sqlite.types import from_declared
from opendms.errors import TableError
from opendms.model import Column, ColumnType, Index, Table, TableRef

SCHEMA = "main"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ColumnRow:
    """A column of ``PRAGMA table_info``."""

    name: str
    declared: str  # the declared type as written ("" when none)
    not_null: bool
    default: str | None  # the default expression as written
    key: int  # position in the primary key (1-based); 0 when not in it

    @property
    def type(self) -> ColumnType:
        return from_declared(self.declared)

    @property
    def nullable(self) -> bool:
        return not self.not_null and not self.key

    def column(self) -> Column:
        """The migration's column."""
        return Column(self.name, self.type, nullable=self.nullable, default=self.default)


@dataclass(frozen=True)
class IndexRow:
    """An index of ``PRAGMA index_list``."""

    name: str
    unique: bool
    origin: str  # "c" CREATE INDEX, "u" a UNIQUE constraint, "pk" the PRIMARY KEY
    columns: tuple[str, ...]  # an expression part shows as None


def columns(conn: Any, table: str) -> list[ColumnRow]:
    """The table's columns, in order."""
    info = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    return [ColumnRow(r[1], r[2] or "", bool(r[3]), r[4], int(r[5])) for r in info]


def primary_key(cols: list[ColumnRow]) -> tuple[str, ...]:
    """The primary key's columns, in key order."""
    return tuple(c.name for c in sorted((c for c in cols if c.key), key=lambda c: c.key))


def indexes(conn: Any, table: str) -> list[IndexRow]:
    """The table's indexes, as SQLite lists them."""
    out = []
    for row in conn.execute(f"PRAGMA index_list({quote(table)})").fetchall():
        info = conn.execute(f"PRAGMA index_info({quote(row[1])})").fetchall()
        out.append(IndexRow(row[1], bool(row[2]), row[3], tuple(c[2] for c in info)))
    return out


def list_tables(conn: Any) -> list[TableRef]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'opendms_%' ORDER BY name"
    ).fetchall()
    return [TableRef(SCHEMA, r[0]) for r in rows]


def list_views(conn: Any) -> list[TableRef]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type='view' ORDER BY name").fetchall()
    return [TableRef(SCHEMA, r[0]) for r in rows]


def describe(conn: Any, ref: TableRef) -> Table:
    """The migration's description of a table or view (its rows counted)."""
    kind = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (ref.name,)).fetchone()
    if kind is None:
        raise TableError(f"{ref.schema}.{ref.name}", "does not exist on the source")
    cols = columns(conn, ref.name)
    count = conn.execute(f"SELECT count(*) FROM {quote(ref.name)}").fetchone()[0]
    view = kind[0] == "view"
    created = tuple(  # automatic key and UNIQUE indexes are the table's own
        Index(i.name, i.columns, i.unique)
        for i in indexes(conn, ref.name)
        if i.origin == "c" and all(i.columns)
    )
    pk = primary_key(cols)
    cols_out = tuple(c.column() for c in cols)
    return Table(ref.schema, ref.name, cols_out, pk, created, int(count), view=view)
