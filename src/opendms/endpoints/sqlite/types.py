"""SQLite declared types <-> canonical types."""

from __future__ import annotations

import re

from opendms.model import ColumnType, Kind, T

_DECL = re.compile(r"^\s*([A-Za-z_ ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

# Matched on the upper-cased base name, first exact, then by SQLite affinity rules.
FROM_SQLITE: dict[str, Kind] = {
    "BOOLEAN": Kind.BOOL,
    "BOOL": Kind.BOOL,
    "TINYINT": Kind.INT16,
    "SMALLINT": Kind.INT16,
    "INT2": Kind.INT16,
    "MEDIUMINT": Kind.INT32,
    "INT": Kind.INT64,
    "INTEGER": Kind.INT64,
    "BIGINT": Kind.INT64,
    "INT8": Kind.INT64,
    "REAL": Kind.FLOAT64,
    "DOUBLE": Kind.FLOAT64,
    "DOUBLE PRECISION": Kind.FLOAT64,
    "FLOAT": Kind.FLOAT64,
    "DECIMAL": Kind.DECIMAL,
    "NUMERIC": Kind.DECIMAL,
    "DECIMAL_TEXT": Kind.DECIMAL,
    "NUMERIC_TEXT": Kind.DECIMAL,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "DATETIME": Kind.TIMESTAMP,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMPTZ": Kind.TIMESTAMPTZ,
    "BLOB": Kind.BINARY,
    "JSON": Kind.JSON,
    "JSON_TEXT": Kind.JSON,
    "UUID": Kind.UUID,
    "INTERVAL": Kind.INTERVAL,
}


def from_declared(declared: str) -> ColumnType:
    """Canonical type for a column declared as ``declared`` in SQLite."""
    m = _DECL.match(declared or "")
    if not m or not declared.strip():
        return T(Kind.STRING)
    base = m.group(1).upper().strip()
    size = int(m.group(2)) if m.group(2) else None
    scale = int(m.group(3)) if m.group(3) else None
    kind = FROM_SQLITE.get(base)
    if kind is Kind.DECIMAL:
        return T(Kind.DECIMAL, precision=size, scale=(scale or 0) if size else None)
    if kind is not None:
        return T(kind)
    return _by_affinity(base, size)


def _by_affinity(base: str, size: int | None) -> ColumnType:
    if "INT" in base:
        return T(Kind.INT64)
    if "CHAR" in base or "CLOB" in base or "TEXT" in base:
        return T(Kind.STRING, length=size, fixed=base in ("CHAR", "CHARACTER", "NCHAR"))
    if "REAL" in base or "FLOA" in base or "DOUB" in base:
        return T(Kind.FLOAT64)
    return T(Kind.STRING)


TO_SQLITE: dict[Kind, str] = {
    Kind.BOOL: "BOOLEAN",
    Kind.INT16: "SMALLINT",
    Kind.INT32: "INT",
    Kind.INT64: "BIGINT",
    Kind.FLOAT32: "REAL",
    Kind.FLOAT64: "DOUBLE",
    Kind.BINARY: "BLOB",
    Kind.DATE: "DATE",
    Kind.TIME: "TIME",
    Kind.TIMESTAMP: "DATETIME",
    Kind.TIMESTAMPTZ: "TIMESTAMPTZ",
    Kind.INTERVAL: "INTERVAL",
    Kind.JSON: "JSON_TEXT",
    Kind.UUID: "UUID",
    Kind.ENUM: "TEXT",
    Kind.ARRAY: "JSON_TEXT",
}


# JSON is declared JSON_TEXT: a plain ``JSON`` column has NUMERIC affinity, which
# would store the document ``1.50`` as the REAL 1.5 (and round big numbers).

# SQLite's NUMERIC affinity turns decimal text into a REAL even when digits are
# lost; a REAL keeps 15 significant digits, so wider decimals are declared with
# TEXT affinity (the name still says what they are, and we read them back).
EXACT_REAL_DIGITS = 15


def to_declared(ctype: ColumnType) -> str:
    """The SQLite declared type that keeps ``ctype`` readable by us again."""
    if ctype.kind is Kind.DECIMAL:
        if ctype.precision is None:
            return "NUMERIC_TEXT"
        name = "DECIMAL" if ctype.precision <= EXACT_REAL_DIGITS else "DECIMAL_TEXT"
        return f"{name}({ctype.precision},{ctype.scale or 0})"
    if ctype.kind is Kind.STRING:
        if ctype.length is None:
            return "TEXT"
        return f"{'CHAR' if ctype.fixed else 'VARCHAR'}({ctype.length})"
    return TO_SQLITE[ctype.kind]
