"""PostgreSQL types <-> canonical types (both directions as tables)."""

from __future__ import annotations

import re

from opendms.model import ColumnType, Kind, T

# format_type() base names -> canonical kind.
FROM_PG: dict[str, Kind] = {
    "smallint": Kind.INT16,
    "integer": Kind.INT32,
    "bigint": Kind.INT64,
    "real": Kind.FLOAT32,
    "double precision": Kind.FLOAT64,
    "numeric": Kind.DECIMAL,
    "text": Kind.STRING,
    "character varying": Kind.STRING,
    "character": Kind.STRING,
    "boolean": Kind.BOOL,
    "date": Kind.DATE,
    "time without time zone": Kind.TIME,
    "timestamp without time zone": Kind.TIMESTAMP,
    "timestamp with time zone": Kind.TIMESTAMPTZ,
    "interval": Kind.INTERVAL,
    "bytea": Kind.BINARY,
    "json": Kind.JSON,
    "jsonb": Kind.JSON,
    "uuid": Kind.UUID,
}

TO_PG: dict[Kind, str] = {
    Kind.BOOL: "boolean",
    Kind.INT16: "smallint",
    Kind.INT32: "integer",
    Kind.INT64: "bigint",
    Kind.FLOAT32: "real",
    Kind.FLOAT64: "double precision",
    Kind.BINARY: "bytea",
    Kind.DATE: "date",
    Kind.TIME: "time",
    Kind.TIMESTAMP: "timestamp",
    Kind.TIMESTAMPTZ: "timestamptz",
    Kind.INTERVAL: "interval",
    Kind.JSON: "json",
    Kind.UUID: "uuid",
}

_TYPMOD = re.compile(r"^(.*?)\s*\((\d+)(?:,\s*(-?\d+))?\)(.*)$")


def split_typmod(formatted: str) -> tuple[str, int | None, int | None]:
    """``numeric(10,2)`` -> ("numeric", 10, 2); ``timestamp(3) with time zone`` handled."""
    m = _TYPMOD.match(formatted)
    if not m:
        return formatted, None, None
    base = (m.group(1) + m.group(4)).strip()
    return base, int(m.group(2)), int(m.group(3)) if m.group(3) else None


def from_pg(formatted: str, typtype: str, labels: tuple[str, ...] = ()) -> ColumnType:
    """Canonical type of a column whose ``format_type`` is ``formatted``.

    ``typtype`` is pg_type.typtype of the base type ('e' for enums).
    Types without a canonical kind travel as text and keep their native name
    in ``type_name`` so a PostgreSQL target recreates them exactly.
    """
    if formatted.endswith("[]"):
        element = from_pg(formatted[:-2], typtype, labels)
        return T(Kind.ARRAY, element=element)
    if typtype == "e":
        return T(Kind.ENUM, labels=labels, type_name=formatted)
    base, first, second = split_typmod(formatted)
    kind = FROM_PG.get(base)
    if kind is None:
        return T(Kind.STRING, type_name=formatted)
    if kind is Kind.DECIMAL:
        return T(Kind.DECIMAL, precision=first, scale=second or 0 if first else None)
    if kind is Kind.STRING and base != "text":
        return T(Kind.STRING, length=first, fixed=base == "character")
    if kind is Kind.JSON:
        return T(Kind.JSON, binary_json=base == "jsonb")
    if kind in (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return T(kind, precision=first)
    return T(kind)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_pg(ctype: ColumnType, same_engine: bool = False) -> str:
    """The PostgreSQL type name for ``ctype``.

    ``same_engine`` keeps native names carried in ``type_name`` (PG -> PG).
    """
    kind = ctype.kind
    if kind is Kind.ARRAY:
        assert ctype.element is not None
        return to_pg(ctype.element, same_engine) + "[]"
    if ctype.type_name and (same_engine or kind is Kind.ENUM):
        return ctype.type_name
    if kind is Kind.DECIMAL:
        if ctype.precision is None:
            return "numeric"
        return f"numeric({ctype.precision},{ctype.scale or 0})"
    if kind is Kind.STRING:
        if ctype.length is None:
            return "text"
        return f"{'char' if ctype.fixed else 'varchar'}({ctype.length})"
    if kind is Kind.JSON:
        return "jsonb" if ctype.binary_json else "json"
    if kind is Kind.ENUM:
        return "text"
    if kind in (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ) and ctype.precision is not None:
        return f"{TO_PG[kind]}({ctype.precision})"
    return TO_PG[kind]
