"""The one reader of MySQL/MariaDB information_schema for tables: their columns, checks,
keys and indexes, read by one query each and served both as the migration's
:class:`~opendms.model.Table` (:func:`describe`) and, through ``schemacatalog``, as the
conversion's schema objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opendms.endpoints.mysql.types import from_mysql
from opendms.endpoints.schemaobjects import Check
from opendms.errors import TableError
from opendms.model import Column, ColumnType, Index, Table, TableRef

SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")

SCHEMAS = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1"

TABLES = """
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COMMENT, TABLE_ROWS, TABLE_TYPE
FROM information_schema.TABLES WHERE {where}
"""

COLUMNS = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,
       CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION,
       EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

CHECKS = """
SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s ORDER BY 1
"""

INDEXES = """
SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX
"""


@dataclass(frozen=True)
class TableRow:
    """A table or view of information_schema.TABLES."""

    schema: str
    name: str
    comment: str
    rows: int  # the engine's estimate
    type: str  # BASE TABLE or VIEW


@dataclass(frozen=True)
class ColumnRow:
    """A column of information_schema.COLUMNS."""

    name: str
    native: str  # COLUMN_TYPE: ``int(10) unsigned``
    type: ColumnType
    nullable: bool
    default: str | None  # COLUMN_DEFAULT as the server shows it
    extra: str  # EXTRA, lower case: auto_increment, on update ..., virtual generated
    comment: str
    generation: str  # GENERATION_EXPRESSION

    def column(self) -> Column:
        """The migration's column."""
        return Column(self.name, self.type, nullable=self.nullable, default=self.default)


@dataclass(frozen=True)
class IndexRow:
    """An index of information_schema.STATISTICS (PRIMARY is the primary key)."""

    name: str
    unique: bool
    columns: tuple[str, ...]  # a functional key part (MySQL 8) shows as None
    prefixes: tuple[str, ...]  # ``column(length)`` of each prefix part
    type: str  # BTREE, HASH, FULLTEXT, SPATIAL, ...


def fetch_all(conn: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """The rows of one query."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def user_schemas(conn: Any) -> list[str]:
    """Every user database of the server."""
    return [r[0] for r in fetch_all(conn, SCHEMAS, ()) if r[0] not in SYSTEM]


def tables(conn: Any, schemas: list[str], kind: str = "BASE TABLE") -> list[TableRow]:
    """The tables (``kind`` ``VIEW``: the views) of ``schemas``, by schema and name."""
    marks = ", ".join(["%s"] * len(schemas))
    where = f"TABLE_TYPE = %s AND TABLE_SCHEMA IN ({marks}) ORDER BY 1, 2"
    return [_table_row(r) for r in fetch_all(conn, TABLES.format(where=where), (kind, *schemas))]


def table(conn: Any, ref: TableRef) -> TableRow:
    rows = fetch_all(conn, TABLES.format(where="TABLE_SCHEMA = %s AND TABLE_NAME = %s"), _args(ref))
    if not rows:
        raise TableError(f"{ref.schema}.{ref.name}", "does not exist on the source")
    return _table_row(rows[0])


def _table_row(r: Any) -> TableRow:
    return TableRow(r[0], r[1], r[2] or "", int(r[3] or 0), r[4])


def _args(ref: TableRef) -> tuple[str, str]:
    return (ref.schema, ref.name)


def checks(conn: Any, ref: TableRef) -> list[Check]:
    """The table's CHECK constraints, by name (none before MySQL 8.0.16)."""
    try:
        rows = fetch_all(conn, CHECKS, _args(ref))
    except Exception:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS
        return []
    return [Check(r[0], r[1]) for r in rows]


def is_json_check(check: Check) -> bool:
    """MariaDB stores JSON as LONGTEXT with a json_valid() check."""
    return check.expression.startswith("json_valid(`")


def columns(conn: Any, ref: TableRef, found: list[Check]) -> list[ColumnRow]:
    """The table's columns in order; the ``found`` checks tell JSON columns."""
    json_cols = {c.expression.split("`")[1] for c in found if is_json_check(c)}
    return [_column_row(r, r[0] in json_cols) for r in fetch_all(conn, COLUMNS, _args(ref))]


def _column_row(row: Any, is_json: bool) -> ColumnRow:
    name, dt, ct, nullable, default, length, precision, scale, dtp, extra, comment, gen = row
    scale = dtp if dt in ("datetime", "timestamp", "time") else scale
    ctype = from_mysql(dt, ct, length, precision, scale, is_json)
    return ColumnRow(
        name, ct, ctype, nullable == "YES", default, (extra or "").lower(), comment or "", gen or ""
    )


def indexes(conn: Any, ref: TableRef) -> list[IndexRow]:
    """The table's indexes, by name."""
    grouped: dict[str, tuple[bool, list[str], list[str], str]] = {}
    for name, non_unique, column, sub_part, kind in fetch_all(conn, INDEXES, _args(ref)):
        unique, cols, prefixes, _ = grouped.get(name, (not non_unique, [], [], kind))
        if sub_part is not None:
            prefixes.append(f"{column}({sub_part})")
        grouped[name] = (unique, [*cols, column], prefixes, kind)
    return [
        IndexRow(name, unique, tuple(cols), tuple(prefixes), kind)
        for name, (unique, cols, prefixes, kind) in grouped.items()
    ]


def list_tables(conn: Any, database: str, views: bool = False) -> list[TableRef]:
    """The base tables (or, with ``views``, the views) of the database or server."""
    schemas = [database] if database else user_schemas(conn)
    if not schemas:
        return []
    found = tables(conn, schemas, "VIEW" if views else "BASE TABLE")
    return [TableRef(t.schema, t.name) for t in found]


def describe(conn: Any, ref: TableRef) -> Table:
    """The migration's description of a table or view."""
    cols = tuple(c.column() for c in columns(conn, ref, checks(conn, ref)))
    found = indexes(conn, ref)
    pk = next((i.columns for i in found if i.name == "PRIMARY"), ())
    usable = tuple(
        Index(i.name, i.columns, i.unique)
        for i in found
        if i.name != "PRIMARY" and not i.prefixes and all(i.columns)
    )
    row = table(conn, ref)
    return Table(ref.schema, ref.name, cols, pk, usable, row.rows, view=row.type == "VIEW")
