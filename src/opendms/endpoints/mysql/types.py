"""MySQL/MariaDB types <-> canonical types (both directions as tables)."""

from __future__ import annotations

import re
from dataclasses import replace

from opendms.model import ColumnType, Kind, T, Table

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
    "time": Kind.INTERVAL,  # -838:59:59 .. 838:59:59: a duration, not a time of day
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
    """Canonical type of a MySQL column from its information_schema row; ``native`` keeps
    COLUMN_TYPE so a MySQL target recreates the column exactly."""
    ctype = _canonical(data_type.lower(), column_type, length, precision, scale, is_json)
    if ctype.kind is Kind.JSON or ctype.type_name is not None:
        return ctype  # MariaDB's JSON is LONGTEXT with a check; JSON recreates both
    return replace(ctype, native=column_type)


def _canonical(
    dt: str,
    column_type: str,
    length: int | None,
    precision: int | None,
    scale: int | None,
    is_json: bool,
) -> ColumnType:
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
    if dt in ("char", "varchar", "binary", "varbinary"):
        return T(kind, length=length, fixed=dt in ("char", "binary"))
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.INTERVAL):
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
KEY_VARCHAR = 768  # longest utf8mb4 VARCHAR an InnoDB key can hold (3072 bytes)
MAX_PRECISION, MAX_SCALE = 65, 30  # MySQL DECIMAL(M,D) limits
_LOB_NATIVE = re.compile(r"^(tiny|medium|long)?(text|blob)\b", re.I)


def _fsp(ctype: ColumnType) -> int:
    return 6 if ctype.precision is None else min(ctype.precision, 6)


def decimal_digits(ctype: ColumnType) -> tuple[int, int]:
    """(M, D) of the MySQL DECIMAL holding ``ctype``: the declared ones when MySQL allows
    them, else as many integer digits (up to 65) and fraction digits (up to 30) as fit;
    unconstrained numerics are DECIMAL(65,30). Values needing more are data errors."""
    if ctype.precision is None:
        return MAX_PRECISION, MAX_SCALE
    scale = min(max(ctype.scale or 0, 0), MAX_SCALE)
    whole = ctype.precision - (ctype.scale or 0)
    return min(max(whole + scale, scale, 1), MAX_PRECISION), scale


def native_type(ctype: ColumnType, in_key: bool = False) -> str | None:
    """The MySQL source's own column type, when a MySQL target can use it as it is
    (a TEXT/BLOB column cannot be part of a primary key without a prefix)."""
    native = ctype.native
    if native is None or (in_key and _LOB_NATIVE.match(native)):
        return None
    return native


def to_mysql(ctype: ColumnType, in_key: bool = False, key_length: int | None = None) -> str:
    """The MySQL column type for ``ctype``: its MySQL source's own type when it has one
    (MySQL -> MySQL keeps types exactly), else the closest lossless type. ``in_key``: part
    of the primary key, whose text or binary part is ``key_length`` characters or bytes
    (InnoDB keys hold 3072 bytes; see :func:`key_lengths`)."""
    native = native_type(ctype, in_key)
    if native is not None and key_length is None:
        return native
    kind = ctype.kind
    if kind is Kind.DECIMAL:
        return "DECIMAL({},{})".format(*decimal_digits(ctype))
    if kind is Kind.STRING:
        return _string(ctype, in_key, key_length)
    if kind is Kind.ENUM:
        labels = ", ".join("'" + v.replace("'", "''") + "'" for v in ctype.labels)
        return f"ENUM({labels})" if labels else "VARCHAR(255)"
    if kind is Kind.TIME:
        return f"TIME({_fsp(ctype)})"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return f"DATETIME({_fsp(ctype)})"
    if kind is Kind.BINARY and in_key:
        return f"VARBINARY({key_length or 3072})"
    return TO_MYSQL[kind]


def cast_type(ctype: ColumnType) -> str:
    """The ``CAST(... AS <type>)`` target for comparing a decimal key value exactly."""
    return "DECIMAL({},{})".format(*decimal_digits(ctype))


def _string(ctype: ColumnType, in_key: bool, key_length: int | None) -> str:
    length = ctype.length
    if key_length is not None and (length is None or length > key_length):
        return f"VARCHAR({key_length})"
    if length is not None and length <= 255 and ctype.fixed:
        return f"CHAR({length})"
    if length is not None and length <= MAX_VARCHAR:
        return f"VARCHAR({length})"
    if in_key:
        return f"VARCHAR({KEY_VARCHAR})"
    return "LONGTEXT"


KEY_BYTES = 3072  # longest InnoDB index key (DYNAMIC row format)
_FIXED_KEY_BYTES = {Kind.DECIMAL: 32, Kind.UUID: 144}  # upper bounds; other kinds: 16


def key_lengths(table: Table) -> dict[str, int]:
    """Characters (text) or bytes (binary) for the primary-key columns that need a bound so
    the whole key fits InnoDB's 3072 bytes (utf8mb4: 4 bytes a character): what the other
    key columns leave, shared equally; a column declared shorter than its share keeps its
    type and is not listed. Longer values are data errors (never a truncated key, which
    would make distinct rows collide)."""
    cols = [table.column(k) for k in table.primary_key]
    variable = {c.name: _natural_bytes(c.type) for c in cols if _variable(c.type)}
    fixed = sum(_FIXED_KEY_BYTES.get(c.type.kind, 16) for c in cols if c.name not in variable)
    sized = [w for w in variable.values() if w is not None]
    if len(sized) == len(variable) and fixed + sum(sized) <= KEY_BYTES:
        return {}  # the key fits as it is
    shares = _shares(KEY_BYTES - fixed, variable)
    return {
        name: share // (1 if table.column(name).type.kind is Kind.BINARY else 4)
        for name, share in shares.items()
        if variable[name] is None or share < (variable[name] or 0)
    }


def _variable(ctype: ColumnType) -> bool:
    return ctype.kind in (Kind.STRING, Kind.BINARY, Kind.JSON)


def _natural_bytes(ctype: ColumnType) -> int | None:
    """Key bytes of a text/binary column typed as it would be outside a tight key."""
    if ctype.length is None or (ctype.kind is not Kind.BINARY and ctype.length > MAX_VARCHAR):
        return None
    return ctype.length * (1 if ctype.kind is Kind.BINARY else 4)


def _shares(budget: int, wants: dict[str, int | None]) -> dict[str, int]:
    """``budget`` bytes shared equally; a column wanting less than its share takes what
    it wants and leaves the rest to the others."""
    out: dict[str, int] = {}
    left = dict(wants)
    while left:
        share = max(budget // len(left), 1)
        small = {n: w for n, w in left.items() if w is not None and w <= share}
        if not small:
            return out | {n: share for n in left}
        for name, want in small.items():
            out[name] = want
            budget -= want
            del left[name]
    return out
