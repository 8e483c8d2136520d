"""Reading a full MySQL/MariaDB schema for conversion (``Engine.source_catalog``): the
tables, their columns, checks, keys and indexes as :mod:`.catalog` reads them, and on top
of them foreign keys, partitions, views and code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql import catalog as reader
from opendms.endpoints.mysql.catalog import fetch_all
from opendms.endpoints.mysql.conn import connect, translate
from opendms.endpoints.mysql.ddldialect import DIALECT
from opendms.endpoints.schemaobjects import (
    CodeObject,
    ColumnDef,
    ForeignKey,
    IndexDef,
    Partition,
    SourceCatalog,
    TableDef,
    ViewDef,
)
from opendms.errors import OpenDMSError
from opendms.model import TableRef

FOREIGN_KEYS = """
SELECT tc.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA,
       k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE, rc.UPDATE_RULE
FROM information_schema.TABLE_CONSTRAINTS tc
JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA
  AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
  ON rc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND rc.TABLE_NAME = tc.TABLE_NAME
  AND rc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
WHERE tc.TABLE_SCHEMA = %s AND tc.TABLE_NAME = %s
  AND tc.CONSTRAINT_TYPE = 'FOREIGN KEY'
ORDER BY tc.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""

PARTITIONS = """
SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION
FROM information_schema.PARTITIONS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND PARTITION_NAME IS NOT NULL
ORDER BY PARTITION_ORDINAL_POSITION
"""

VIEWS = """
SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS
WHERE TABLE_SCHEMA IN ({marks}) ORDER BY 1, 2
"""

ROUTINES = """
SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION
FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({marks}) ORDER BY 1, 2
"""

TRIGGERS = """
SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION,
       ACTION_STATEMENT
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({marks}) ORDER BY 1, 3, 2
"""

_TIME_DEFAULTS = ("current_timestamp", "now(", "curdate(", "current_date", "localtimestamp")


def _in(sql: str, schemas: list[str]) -> str:
    return sql.format(marks=", ".join(["%s"] * len(schemas)))


def read_catalog(url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
    """Everything conversion reads from the databases ``schemas`` of ``url`` (the URL's
    database, else every user database, when none is named)."""
    catalog = SourceCatalog(DIALECT.name, str(url), list(schemas))
    conn = connect(url)
    try:
        if not catalog.schemas:
            catalog.schemas = default_schemas(conn, url.database)
        known = fetch_all(conn, reader.SCHEMAS, ())
        catalog.check_schemas({r[0] for r in known})
        read(conn, catalog)
    except Exception as exc:
        if isinstance(exc, OpenDMSError):
            raise
        raise translate(exc, url) from exc
    finally:
        conn.close()
    return catalog


def default_schemas(conn: Any, database: str) -> list[str]:
    """The URL's database, or every user database of the server."""
    return [database] if database else reader.user_schemas(conn)


def read(conn: Any, catalog: SourceCatalog) -> None:
    """Fills ``catalog`` from the databases it names."""
    schemas = tuple(catalog.schemas)
    mariadb = "mariadb" in str(fetch_all(conn, "SELECT VERSION()", ())[0][0]).lower()
    for row in reader.tables(conn, catalog.schemas):
        catalog.tables.append(_table(conn, row, mariadb))
    for schema, name, sql in fetch_all(conn, _in(VIEWS, catalog.schemas), schemas):
        catalog.views.append(ViewDef(schema, name, sql))
    for schema, name, kind, body in fetch_all(conn, _in(ROUTINES, catalog.schemas), schemas):
        kind_name = "procedures" if kind == "PROCEDURE" else "functions"
        sql = _show_create(conn, kind, schema, name) or f"{kind} {name}: {body or ''}"
        catalog.code.append(CodeObject(kind_name, schema, name, sql))
    for row in fetch_all(conn, _in(TRIGGERS, catalog.schemas), schemas):
        schema, name, table, timing, event, body = row
        sql = f"CREATE TRIGGER {name} {timing} {event} ON {table} FOR EACH ROW {body}"
        catalog.code.append(CodeObject("triggers", schema, name, sql, table))


def _show_create(conn: Any, kind: str, schema: str, name: str) -> str:
    """The full CREATE statement of a routine (empty without the privilege to see it)."""
    quoted = ".".join("`" + n.replace("`", "``") + "`" for n in (schema, name))
    try:
        rows = fetch_all(conn, f"SHOW CREATE {kind} {quoted}", ())
    except Exception:
        return ""
    return str(rows[0][2] or "") if rows and len(rows[0]) > 2 else ""


def _table(conn: Any, row: reader.TableRow, mariadb: bool) -> TableDef:
    ref = TableRef(row.schema, row.name)
    checks = reader.checks(conn, ref)
    columns = reader.columns(conn, ref, checks)
    table = TableDef(row.schema, row.name, [_column(c, mariadb) for c in columns])
    table.comment = row.comment
    table.checks = [c for c in checks if not reader.is_json_check(c)]
    _foreign_keys(conn, table)
    for index in reader.indexes(conn, ref):
        _index(table, index)
    _partitions(conn, table)
    return table


def _partitions(conn: Any, table: TableDef) -> None:
    for name, method, expression, values in fetch_all(conn, PARTITIONS, (table.schema, table.name)):
        table.partition_by = f"{method} ({expression})"
        table.partitions.append(Partition(name, f"VALUES {_values(method, values)}"))


def _values(method: str, values: str | None) -> str:
    if method.startswith("RANGE"):
        return f"LESS THAN ({values})" if values != "MAXVALUE" else "LESS THAN MAXVALUE"
    return f"IN ({values})" if method.startswith("LIST") else ""


def _column(col: reader.ColumnRow, mariadb: bool) -> ColumnDef:
    extra = col.extra
    generated = col.generation if "generated" in extra and "default_generated" not in extra else ""
    return ColumnDef(
        col.name,
        col.native,
        col.type,
        nullable=col.nullable,
        default=None if generated else _default(col.default, extra, mariadb),
        identity="auto_increment" in extra,
        comment=col.comment,
        generated=generated,
        on_update=extra[extra.index("on update") :] if "on update" in extra else "",
    )


def _default(value: str | None, extra: str, mariadb: bool) -> str | None:
    """The default as a SQL expression (MySQL 8 shows literals unquoted)."""
    if value is None or (mariadb and value.upper() == "NULL"):
        return None
    if mariadb or "default_generated" in extra or value.lower().startswith(_TIME_DEFAULTS):
        return value
    return "'" + value.replace("'", "''") + "'"


def _foreign_keys(conn: Any, table: TableDef) -> None:
    grouped: dict[str, list[Any]] = {}
    for row in fetch_all(conn, FOREIGN_KEYS, (table.schema, table.name)):
        grouped.setdefault(row[0], []).append(row)
    for name, rows in grouped.items():
        first = rows[0]
        cols = tuple(r[1] for r in rows)
        refs = tuple(r[4] for r in rows)
        fk = ForeignKey(name, cols, first[2], first[3], refs, first[5], first[6])
        table.foreign_keys.append(fk)


def _index(table: TableDef, index: reader.IndexRow) -> None:
    """The primary key, a unique key or an index (noting prefix parts)."""
    if index.name == "PRIMARY":
        table.primary_key = index.columns
    elif index.unique:
        table.uniques.append(IndexDef(index.name, index.columns, True))
    else:
        note = f"prefix index on {', '.join(index.prefixes)}" if index.prefixes else ""
        method = "" if index.type in ("BTREE", "HASH") else index.type.lower()
        table.indexes.append(IndexDef(index.name, index.columns, False, note, method))
