"""Reading a full MySQL/MariaDB schema (tables, constraints, views, code) for conversion
(``Engine.source_catalog``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.catalog import SYSTEM
from opendms.endpoints.mysql.conn import connect, translate
from opendms.endpoints.mysql.ddldialect import DIALECT
from opendms.endpoints.mysql.types import from_mysql
from opendms.endpoints.schemaobjects import (
    Check,
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

TABLES = """
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES
WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({marks}) ORDER BY 1, 2
"""

COLUMNS = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,
       CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION,
       EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

CONSTRAINTS = """
SELECT tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA,
       k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE, rc.UPDATE_RULE
FROM information_schema.TABLE_CONSTRAINTS tc
JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA
  AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
  ON rc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND rc.TABLE_NAME = tc.TABLE_NAME
  AND rc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
WHERE tc.TABLE_SCHEMA = %s AND tc.TABLE_NAME = %s
  AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
ORDER BY tc.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""

CHECKS = """
SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s ORDER BY 1
"""

INDEXES = """
SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX
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


def _rows(conn: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


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
        known = _rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA", ())
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
    if database:
        return [database]
    rows = _rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1", ())
    return [r[0] for r in rows if r[0] not in SYSTEM]


def read(conn: Any, catalog: SourceCatalog) -> None:
    """Fills ``catalog`` from the databases it names."""
    schemas = tuple(catalog.schemas)
    mariadb = "mariadb" in str(_rows(conn, "SELECT VERSION()", ())[0][0]).lower()
    for schema, name, comment in _rows(conn, _in(TABLES, catalog.schemas), schemas):
        catalog.tables.append(_table(conn, schema, name, comment or "", mariadb))
    for schema, name, sql in _rows(conn, _in(VIEWS, catalog.schemas), schemas):
        catalog.views.append(ViewDef(schema, name, sql))
    for schema, name, kind, body in _rows(conn, _in(ROUTINES, catalog.schemas), schemas):
        kind_name = "procedures" if kind == "PROCEDURE" else "functions"
        sql = _show_create(conn, kind, schema, name) or f"{kind} {name}: {body or ''}"
        catalog.code.append(CodeObject(kind_name, schema, name, sql))
    for row in _rows(conn, _in(TRIGGERS, catalog.schemas), schemas):
        schema, name, table, timing, event, body = row
        sql = f"CREATE TRIGGER {name} {timing} {event} ON {table} FOR EACH ROW {body}"
        catalog.code.append(CodeObject("triggers", schema, name, sql, table))


def _show_create(conn: Any, kind: str, schema: str, name: str) -> str:
    """The full CREATE statement of a routine (empty without the privilege to see it)."""
    quoted = ".".join("`" + n.replace("`", "``") + "`" for n in (schema, name))
    try:
        rows = _rows(conn, f"SHOW CREATE {kind} {quoted}", ())
    except Exception:
        return ""
    return str(rows[0][2] or "") if rows and len(rows[0]) > 2 else ""


def _table(conn: Any, schema: str, name: str, comment: str, mariadb: bool) -> TableDef:
    checks = _checks(conn, schema, name)
    json_cols = {c.expression.split("`")[1] for c in checks if _is_json_check(c)}
    rows = _rows(conn, COLUMNS, (schema, name))
    table = TableDef(schema, name, [_column(r, r[0] in json_cols, mariadb) for r in rows])
    table.comment = comment
    table.checks = [c for c in checks if not _is_json_check(c)]
    _constraints(conn, table)
    _indexes(conn, table)
    _partitions(conn, table)
    return table


def _partitions(conn: Any, table: TableDef) -> None:
    for name, method, expression, values in _rows(conn, PARTITIONS, (table.schema, table.name)):
        table.partition_by = f"{method} ({expression})"
        table.partitions.append(Partition(name, f"VALUES {_values(method, values)}"))


def _values(method: str, values: str | None) -> str:
    if method.startswith("RANGE"):
        return f"LESS THAN ({values})" if values != "MAXVALUE" else "LESS THAN MAXVALUE"
    return f"IN ({values})" if method.startswith("LIST") else ""


def _is_json_check(check: Check) -> bool:
    return check.expression.startswith("json_valid(`")


def _checks(conn: Any, schema: str, name: str) -> list[Check]:
    try:
        rows = _rows(conn, CHECKS, (schema, name))
    except Exception:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS
        return []
    return [Check(r[0], r[1]) for r in rows]


def _column(row: Any, is_json: bool, mariadb: bool) -> ColumnDef:
    name, dt, ct, nullable, default, length, precision, scale, dtp, extra, comment, gen = row
    scale = dtp if dt in ("datetime", "timestamp", "time") else scale
    ctype = from_mysql(dt, ct, length, precision, scale, is_json)
    extra = (extra or "").lower()
    generated = gen or "" if "generated" in extra and "default_generated" not in extra else ""
    return ColumnDef(
        name,
        ct,
        ctype,
        nullable=nullable == "YES",
        default=None if generated else _default(default, extra, mariadb),
        identity="auto_increment" in extra,
        comment=comment or "",
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


def _constraints(conn: Any, table: TableDef) -> None:
    grouped: dict[str, list[Any]] = {}
    for row in _rows(conn, CONSTRAINTS, (table.schema, table.name)):
        grouped.setdefault(row[0], []).append(row)
    for name, rows in grouped.items():
        cols = tuple(r[2] for r in rows)
        kind = rows[0][1]
        if kind == "PRIMARY KEY":
            table.primary_key = cols
        elif kind == "UNIQUE":
            table.uniques.append(IndexDef(name, cols, True))
        else:
            first = rows[0]
            refs = tuple(r[5] for r in rows)
            fk = ForeignKey(name, cols, first[3], first[4], refs, first[6], first[7])
            table.foreign_keys.append(fk)


def _indexes(conn: Any, table: TableDef) -> None:
    """Non-unique indexes (unique ones are UNIQUE constraints), noting prefix parts."""
    grouped: dict[str, tuple[bool, list[str], list[str], str]] = {}
    for name, non_unique, column, sub_part, kind in _rows(
        conn, INDEXES, (table.schema, table.name)
    ):
        unique, cols, prefixes, _ = grouped.get(name, (not non_unique, [], [], ""))
        if sub_part is not None:
            prefixes.append(f"{column}({sub_part})")
        method = "" if kind in ("BTREE", "HASH") else kind.lower()
        grouped[name] = (unique, [*cols, column], prefixes, method)
    for name, (unique, cols, prefixes, method) in grouped.items():
        if unique or name == "PRIMARY":
            continue
        note = f"prefix index on {', '.join(prefixes)}" if prefixes else ""
        table.indexes.append(IndexDef(name, tuple(cols), False, note, method))
