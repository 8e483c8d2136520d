"""The "every type" table: one spec, created natively on each source engine.

``COLUMNS`` lists each column's canonical kind and its DDL per engine (``None``:
the engine has no such type). ``ROWS`` holds canonical Python values; NULLs,
empty strings, text beyond the BMP, extreme numerics and timestamps included.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opendms.model import Kind


@dataclass(frozen=True)
class Col:
    name: str
    kind: Kind
    pg: str | None
    mysql: str | None
    sqlite: str | None
    element: Kind | None = None
    mysql_kind: Kind | None = None  # canonical kind when read from MySQL, if different


COLUMNS = [
    Col("id", Kind.INT32, "integer PRIMARY KEY", "INT PRIMARY KEY", "INTEGER PRIMARY KEY"),
    Col("i16", Kind.INT16, "smallint", "SMALLINT", "SMALLINT"),
    Col("i64", Kind.INT64, "bigint", "BIGINT", "BIGINT"),
    Col("dec", Kind.DECIMAL, "numeric(12,4)", "DECIMAL(12,4)", "DECIMAL(12,4)"),
    Col("big", Kind.DECIMAL, "numeric(38,10)", "DECIMAL(38,10)", None),
    Col("free", Kind.DECIMAL, "numeric", None, None),
    Col("f32", Kind.FLOAT32, "real", "FLOAT", None),
    Col("f64", Kind.FLOAT64, "double precision", "DOUBLE", "DOUBLE"),
    Col("txt", Kind.STRING, "text", "TEXT", "TEXT"),
    Col("vc", Kind.STRING, "varchar(20)", "VARCHAR(20)", "VARCHAR(20)"),
    Col("ch", Kind.STRING, "char(5)", "CHAR(5)", "CHAR(5)"),
    Col("flag", Kind.BOOL, "boolean", "BOOLEAN", "BOOLEAN", mysql_kind=Kind.INT16),
    Col("d", Kind.DATE, "date", "DATE", "DATE"),
    Col("tm", Kind.TIME, "time", "TIME(6)", "TIME", mysql_kind=Kind.INTERVAL),
    Col("ts", Kind.TIMESTAMP, "timestamp", "DATETIME(6)", "DATETIME"),
    Col("tstz", Kind.TIMESTAMPTZ, "timestamptz", "TIMESTAMP(6) NULL", None),
    Col("bin", Kind.BINARY, "bytea", "LONGBLOB", "BLOB"),
    Col("js", Kind.JSON, "jsonb", "JSON", "JSON"),
    Col("u", Kind.UUID, "uuid", None, "UUID"),
    Col("e", Kind.ENUM, "mood", "ENUM('sad','ok','happy')", None),
    Col("iv", Kind.INTERVAL, "interval", None, None),
    Col("arr", Kind.ARRAY, "integer[]", None, None, element=Kind.INT32),
    Col("ubig", Kind.DECIMAL, None, "BIGINT UNSIGNED", None),
    Col("yr", Kind.INT16, None, "YEAR", None),
]

_ROW1 = {
    "id": 1,
    "i16": 12,
    "i64": 1234567890123,
    "dec": Decimal("1234.5678"),
    "big": Decimal("1234567890123456789012345678.0123456789"),
    "free": Decimal("123456789012345678901234567890.123456789012345678901234567890"),
    "f32": 1.5,
    "f64": 3.141592653589793,
    "txt": "héllo 𝄞 😀 \t tab\nnewline \\ backslash 'quote\" NULL",
    "vc": "varchar",
    "ch": "abcde",
    "flag": True,
    "d": dt.date(2024, 2, 29),
    "tm": dt.time(12, 34, 56, 789012),
    "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "tstz": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "bin": b"\x00\x01\xff\t\n\\",
    "js": {"a": [1, 2, {"b": None}], "u": "𝄞"},
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "e": "happy",
    "iv": (14, 3, 14706700000),
    "arr": [1, None, 3],
    "ubig": Decimal("18446744073709551615"),
    "yr": 2024,
}
_ROW3 = {
    "id": 3,
    "i16": -32768,
    "i64": -9223372036854775808,
    "dec": Decimal("-99999999.9999"),
    "big": Decimal("9999999999999999999999999999.9999999999"),
    "free": Decimal("-0.000000000000000000000000000001"),
    "f32": -3.4028234663852886e38,
    "f64": 1.7976931348623157e308,
    "txt": "",
    "vc": "",
    "ch": "zzzzz",
    "flag": False,
    "d": dt.date(1000, 1, 1),
    "tm": dt.time(0, 0, 0),
    "ts": dt.datetime(1000, 1, 1, 0, 0, 0),
    "tstz": dt.datetime(1970, 1, 2, 0, 0, 0),
    "bin": b"",
    "js": [],
    "u": "00000000-0000-0000-0000-000000000000",
    "e": "sad",
    "iv": (0, 0, -1),
    "arr": [],
    "ubig": Decimal("0"),
    "yr": 1901,
}
_ROW4 = {
    "id": 4,
    "i16": 32767,
    "i64": 9223372036854775807,
    "dec": Decimal("0.0001"),
    "f32": 1.0e-10,
    "f64": 5e-324,
    "d": dt.date(9999, 12, 31),
    "tm": dt.time(23, 59, 59, 999999),
    "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "tstz": dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
    "js": "just a string",
    "txt": "ünïcödé ✓ 𠜎",
}
ROWS: list[dict[str, Any]] = [
    _ROW1,
    {"id": 2},
    _ROW3,
    _ROW4,
]


def columns_for(engine: str) -> list[Col]:
    return [c for c in COLUMNS if getattr(c, engine) is not None]


def source_kind(col: Col, engine: str) -> Kind:
    return (col.mysql_kind or col.kind) if engine == "mysql" else col.kind


def expected(engine: str) -> list[dict[str, Any]]:
    """Canonical expected rows of the table as created on ``engine``."""
    out = []
    for row in ROWS:
        values: dict[str, Any] = {c.name: row.get(c.name) for c in columns_for(engine)}
        if engine == "mysql" and values.get("flag") is not None:
            values["flag"] = int(values["flag"])
        if engine == "mysql" and values.get("tm") is not None:  # a MySQL TIME is a duration
            tm = values["tm"]
            values["tm"] = (
                0,
                0,
                ((tm.hour * 60 + tm.minute) * 60 + tm.second) * 10**6 + tm.microsecond,
            )
        if values.get("js") is not None:
            values["js"] = json.dumps(values["js"])
        out.append(values)
    return out


def kinds(engine: str) -> dict[str, tuple[Kind, Kind | None]]:
    return {c.name: (source_kind(c, engine), c.element) for c in columns_for(engine)}


# -- creating the table on each engine ----------------------------------------


def _pg_value(col: Col, value: Any) -> Any:
    from psycopg.types.json import Jsonb

    if value is None:
        return None
    if col.kind is Kind.JSON:
        return Jsonb(value)
    if col.kind is Kind.INTERVAL:
        months, days, micros = value
        return f"{months} months {days} days {micros} microseconds"
    if col.kind is Kind.UUID:
        return uuid.UUID(value)
    if col.kind is Kind.TIMESTAMPTZ:
        return value.replace(tzinfo=dt.UTC)
    return value


def create_pg(url: str, table: str = "everything") -> None:
    import psycopg

    cols = columns_for("pg")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
        ddl = ", ".join(f'"{c.name}" {c.pg}' for c in cols)
        conn.execute(f"CREATE TABLE {table} ({ddl})")
        conn.execute(f"CREATE INDEX {table}_vc ON {table} (vc)")
        marks = ", ".join(["%s"] * len(cols))
        names = ", ".join(f'"{c.name}"' for c in cols)
        for row in ROWS:
            values = [_pg_value(c, row.get(c.name)) for c in cols]
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)


def _mysql_value(col: Col, value: Any) -> Any:
    if value is None:
        return None
    if col.kind is Kind.JSON:
        return json.dumps(value)
    if col.kind is Kind.BOOL:
        return int(value)
    return value


def create_mysql(url: str, table: str = "everything") -> None:
    from tests.integration.readback import mysql_connect

    cols = columns_for("mysql")
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            ddl = ", ".join(f"`{c.name}` {c.mysql}" for c in cols)
            cur.execute(f"CREATE TABLE {table} ({ddl}) CHARSET utf8mb4")
            cur.execute(f"CREATE INDEX {table}_vc ON {table} (vc)")
            marks = ", ".join(["%s"] * len(cols))
            names = ", ".join(f"`{c.name}`" for c in cols)
            for row in ROWS:
                values = [_mysql_value(c, row.get(c.name)) for c in cols]
                cur.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
        conn.commit()
    finally:
        conn.close()


def _sqlite_value(col: Col, value: Any) -> Any:
    if value is None:
        return None
    if col.kind is Kind.JSON:
        return json.dumps(value)
    if col.kind is Kind.DECIMAL:
        return str(value)
    if col.kind in (Kind.DATE, Kind.TIME, Kind.TIMESTAMP):
        return value.isoformat(sep=" ") if col.kind is Kind.TIMESTAMP else value.isoformat()
    if col.kind is Kind.BOOL:
        return int(value)
    return value


def create_sqlite(path: str, table: str = "everything") -> None:
    cols = columns_for("sqlite")
    with sqlite3.connect(path) as conn:
        ddl = ", ".join(f'"{c.name}" {c.sqlite}' for c in cols)
        conn.execute(f"CREATE TABLE {table} ({ddl})")
        conn.execute(f"CREATE INDEX {table}_vc ON {table} (vc)")
        marks = ", ".join(["?"] * len(cols))
        names = ", ".join(f'"{c.name}"' for c in cols)
        for row in ROWS:
            values = [_sqlite_value(c, row.get(c.name)) for c in cols]
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
