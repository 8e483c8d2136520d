"""Reading table definitions from MySQL/MariaDB information_schema."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.mysql.types import from_mysql
from opendms.model import Column, Index, Table, TableRef

SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")

LIST_TABLES = """
SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_TYPE = {kind} AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema',
  'performance_schema', 'sys') {only}
ORDER BY 1, 2
"""

COLUMNS = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,
       CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

JSON_CHECKS = """
SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s
"""

INDEXES = """
SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX
"""


def list_tables(conn: Any, database: str, views: bool = False) -> list[TableRef]:
    """The base tables (or, with ``views``, the views) of the database or server."""
    only = "AND TABLE_SCHEMA = %s" if database else ""
    kind = "'VIEW'" if views else "'BASE TABLE'"
    with conn.cursor() as cur:
        cur.execute(LIST_TABLES.format(only=only, kind=kind), (database,) if database else ())
        return [TableRef(r[0], r[1]) for r in cur.fetchall()]


def _json_columns(conn: Any, ref: TableRef) -> set[str]:
    """MariaDB stores JSON as LONGTEXT with a json_valid() check."""
    with conn.cursor() as cur:
        try:
            cur.execute(JSON_CHECKS, (ref.schema, ref.name))
        except Exception:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS
            return set()
        clauses = [r[0] for r in cur.fetchall()]
    return {c.split("`")[1] for c in clauses if c.startswith("json_valid(`")}


def describe(conn: Any, ref: TableRef) -> Table:
    json_cols = _json_columns(conn, ref)
    with conn.cursor() as cur:
        cur.execute(COLUMNS, (ref.schema, ref.name))
        rows = cur.fetchall()
    columns = tuple(_column(r, r[0] in json_cols) for r in rows)
    pk, indexes = _indexes(conn, ref)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_ROWS, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (ref.schema, ref.name),
        )
        rows_estimate, kind = cur.fetchone()
    view = kind == "VIEW"
    return Table(ref.schema, ref.name, columns, pk, indexes, int(rows_estimate or 0), view=view)


def _column(row: Any, is_json: bool) -> Column:
    name, dt, ct, nullable, default, length, precision, scale, dtp = row
    scale = dtp if dt in ("datetime", "timestamp", "time") else scale
    ctype = from_mysql(dt, ct, length, precision, scale, is_json)
    return Column(name, ctype, nullable=nullable == "YES", default=default)


def _indexes(conn: Any, ref: TableRef) -> tuple[tuple[str, ...], tuple[Index, ...]]:
    with conn.cursor() as cur:
        cur.execute(INDEXES, (ref.schema, ref.name))
        rows = cur.fetchall()
    grouped: dict[str, tuple[bool, list[str], bool]] = {}
    for name, non_unique, column, sub_part in rows:
        unique, cols, prefix = grouped.get(name, (not non_unique, [], False))
        grouped[name] = (unique, [*cols, column], prefix or sub_part is not None)
    pk = tuple(grouped.pop("PRIMARY", (True, [], False))[1])
    indexes = tuple(
        Index(name, tuple(cols), unique)
        for name, (unique, cols, prefix) in grouped.items()
        if not prefix and all(cols)
    )
    return pk, indexes
