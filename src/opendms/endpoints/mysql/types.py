"""MySQL/MariaDB types <-> canonical types (both directions as tables)."""

from __future__ import annotations

import re

from opendms.model import ColumnType, Kind, T

# information_schema DATA_TYPE -> kind (signed); unsigned variants below.
FROM_MYSQL: dict[str, Kind] = {
    "tinyint": Kind.INT16,
    "smallint": Kind.INT16,
    "mediumint": Kind.INT32,
    "int": Kind.INT32,
    "integer": Kind.INT32,
    "bigint": Kind.INT64,
    "float": Kind.FLOAT32,
    "double": Kind.FLOAT64,
    "decimal": Kind.DECIMAL,
    "char": Kind.STRING,
    "varchar": Kind.STRING,
    "tinytext": Kind.STRING,
    "text": Kind.STRING,
    "mediumtext": Kind.STRING,
    "longtext": Kind.STRING,
    "set": Kind.STRING,
    "binary": Kind.BINARY,
    "varbinary": Kind.BINARY,
    "tinyblob": Kind.BINARY,
    "blob": Kind.BINARY,
    "mediumblob": Kind.BINARY,
    "longblob": Kind.BINARY,
    "date": Kind.DATE,
    "datetime": Kind.TIMESTAMP,
    "timestamp": Kind.TIMESTAMPTZ,
    "time": Kind.TIME,
    "year": Kind.INT16,
    "json": Kind.JSON,
    "enum": Kind.ENUM,
    "uuid": Kind.UUID,
}

UNSIGNED: dict[str, ColumnType] = {
    "tinyint": T(Kind.INT16),
    "smallint": T(Kind.INT32),
    "mediumint": T(Kind.INT32),
    "int": T(Kind.INT64),
    "integer": T(Kind.INT64),
    "bigint": T(Kind.DECIMAL, precision=20, scale=0),
}

_ENUM_LABEL = re.compile(r"'((?:[^']|'')*)'")


def enum_labels(column_type: str) -> tuple[str, ...]:
    """Labels of ``enum('a','b')`` as written in COLUMN_TYPE."""
    return tuple(m.replace("''", "'") for m in _ENUM_LABEL.findall(column_type))


def from_mysql(
    data_type: str,
    column_type: str,
    length: int | None,
    precision: int | None,
    scale: int | None,
    is_json: bool = False,
) -> ColumnType:
    """Canonical type of a MySQL column from its information_schema row."""
    dt = data_type.lower()
    if is_json:
        return T(Kind.JSON)
    if "unsigned" in column_type.lower() and dt in UNSIGNED:
        return UNSIGNED[dt]
    if dt == "bit":
        return T(Kind.BOOL) if (precision or 1) == 1 else T(Kind.INT64)
    kind = FROM_MYSQL.get(dt)
    if kind is None:
        return T(Kind.BINARY, type_name=column_type)
    if kind is Kind.DECIMAL:
        return T(Kind.DECIMAL, precision=precision, scale=scale or 0)
    if kind is Kind.ENUM:
        return T(Kind.ENUM, labels=enum_labels(column_type))
    if dt in ("char", "varchar"):
        return T(Kind.STRING, length=length, fixed=dt == "char")
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.TIME):
        return T(kind, precision=scale)
    return T(kind)


TO_MYSQL: dict[Kind, str] = {
    Kind.BOOL: "BOOLEAN",
    Kind.INT16: "SMALLINT",
    Kind.INT32: "INT",
    Kind.INT64: "BIGINT",
    Kind.FLOAT32: "FLOAT",
    Kind.FLOAT64: "DOUBLE",
    Kind.BINARY: "LONGBLOB",
    Kind.DATE: "DATE",
    Kind.INTERVAL: "VARCHAR(100)",
    Kind.JSON: "JSON",
    Kind.UUID: "CHAR(36)",
    Kind.ARRAY: "JSON",
}

MAX_VARCHAR = 16383  # utf8mb4 row-size limit for one VARCHAR
KEY_VARCHAR = 768  # longest utf8mb4 VARCHAR an InnoDB key can hold


def _fsp(ctype: ColumnType) -> int:
    return 6 if ctype.precision is None else min(ctype.precision, 6)


def to_mysql(ctype: ColumnType, in_key: bool = False) -> str:
    """The MySQL column type for ``ctype`` (``in_key``: part of the primary key)."""
    kind = ctype.kind
    if kind is Kind.DECIMAL:
        if ctype.precision is None or ctype.precision > 65:
            return "DECIMAL(65,30)"  # rows needing more are data errors (see target.reject)
        return f"DECIMAL({ctype.precision},{ctype.scale or 0})"
    if kind is Kind.STRING:
        return _string(ctype, in_key)
    if kind is Kind.ENUM:
        labels = ", ".join("'" + v.replace("'", "''") + "'" for v in ctype.labels)
        return f"ENUM({labels})" if labels else "VARCHAR(255)"
    if kind is Kind.TIME:
        return f"TIME({_fsp(ctype)})"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return f"DATETIME({_fsp(ctype)})"
    if kind is Kind.BINARY and in_key:
        return "VARBINARY(3072)"
    return TO_MYSQL[kind]


def _string(ctype: ColumnType, in_key: bool) -> str:
    if ctype.length is not None and ctype.length <= 255 and ctype.fixed:
        return f"CHAR({ctype.length})"
    if ctype.length is not None and ctype.length <= MAX_VARCHAR:
        return f"VARCHAR({ctype.length})"
    if in_key:
        return f"VARCHAR({KEY_VARCHAR})"
    return "LONGTEXT"
