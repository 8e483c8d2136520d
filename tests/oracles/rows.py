"""Plain-SQL readers of database tables, and the values their rows are compared by.

Written from the drivers' documented behaviour and the README (section "Types"), not
from opendms's code: each reader runs its own ``SELECT`` with psycopg, pymysql or
sqlite3 and normalises every value by the column's declared type on that engine, so
that a source row and the target row opendms made of it compare equal wherever the
README's type mapping says the value is carried unchanged:

* decimals are :class:`~decimal.Decimal` (exact; a SQLite ``REAL`` in a ``DECIMAL``
  column by its shortest repr, the README's rule for SQLite decimals);
* timestamps without a zone are naive, with a zone UTC-aware (MariaDB ``TIMESTAMP`` is
  read in a UTC session; SQLite ``TIMESTAMPTZ`` text without a zone is UTC);
* intervals (PostgreSQL ``interval``, SQLite ``INTERVAL`` ISO 8601 text, MySQL ``TIME``
  which the README carries as an interval) are ``(months, days, microseconds)``;
* JSON is parsed (MariaDB: columns with a ``json_valid`` check, i.e. ``JSON``);
* booleans are :class:`bool` (MariaDB ``TINYINT(1)`` and SQLite ``BOOLEAN`` holding 0 or
  1; any other value stays an int, so a wrong value is never hidden);
* a MariaDB ``FLOAT`` is read as its exact float32 value (cast to ``DOUBLE``);
* UUIDs are text, binary values :class:`bytes`, arrays lists.

Where a target loses information by design, the tests say so with :func:`convert` and
the value functions below, naming the README rule.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql

Row = dict[str, Any]
Key = str | Sequence[str]
_DURATION = re.compile(
    r"^(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$"
)
_MICROS = 1_000_000


# -- value functions ---------------------------------------------------------------------


def interval(text: str) -> tuple[int, int, int]:
    """An ISO 8601 duration (PostgreSQL's ``iso_8601`` style, opendms's ``P0M1DT7200S``)
    as (months, days, microseconds)."""
    m = _DURATION.match(text)
    assert m, f"not an ISO 8601 duration: {text!r}"
    neg, years, months, weeks, days, hours, minutes, seconds = m.groups()
    sign = -1 if neg else 1
    total_months = int(years or 0) * 12 + int(months or 0)
    total_days = int(weeks or 0) * 7 + int(days or 0)
    micros = (int(hours or 0) * 3600 + int(minutes or 0) * 60) * _MICROS
    micros += int(Decimal(seconds or 0) * _MICROS)
    return sign * total_months, sign * total_days, sign * micros


def time_of_day(value: tuple[int, int, int]) -> dt.time:
    """An interval of less than a day (how a MariaDB ``TIME`` is read) as a time of day."""
    months, days, micros = value
    assert months == days == 0 and 0 <= micros < 86_400 * _MICROS, value
    return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()


def naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """An aware timestamp as the naive UTC one a zone-less column holds."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def json_text(value: str | None) -> Any:
    """JSON held as text, parsed."""
    return None if value is None else json.loads(value)


def convert(rows: Iterable[Row], **functions: Callable[[Any], Any]) -> list[Row]:
    """``rows`` with the named columns passed through their functions (NULL stays)."""
    return [
        {c: (functions[c](v) if c in functions and v is not None else v) for c, v in r.items()}
        for r in rows
    ]


def by_key(rows: Iterable[Row], key: str = "id") -> dict[Any, Row]:
    """Rows by the value of their key column."""
    return {r[key]: r for r in rows}


def _plain(value: Any) -> Any:
    """Driver objects as plain comparable values: UUID as text, aware timestamps in UTC,
    memoryview as bytes, arrays element by element."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _bool01(value: Any) -> Any:
    return bool(value) if isinstance(value, int) and value in (0, 1) else value


def _order(key: Key, quote: str) -> str:
    names = [key] if isinstance(key, str) else list(key)
    return ", ".join(f"{quote}{n}{quote}" for n in names)


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_schema(conn: psycopg.Connection[Any], table: str) -> str:
    """The one schema holding ``table`` (a MySQL source's tables land in a schema named
    after its database), else ``public``."""
    found = conn.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = %s "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        (table,),
    ).fetchall()
    return str(found[0][0]) if len(found) == 1 else "public"


def _pg_types(conn: psycopg.Connection[Any], schema: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (f'"{schema}"."{table}"',),
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def read_postgres(url: str, table: str, key: Key = "id", schema: str | None = None) -> list[Row]:
    """Every row of ``table`` ordered by ``key`` (intervals read as ISO 8601 text)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        conn.execute("SET TIME ZONE 'UTC'")
        schema = schema or _pg_schema(conn, table)
        types = _pg_types(conn, schema, table)
        exprs = [_pg_select(n, t) for n, t in types]
        sql = f'SELECT {", ".join(exprs)} FROM "{schema}"."{table}" ORDER BY {_order(key, chr(34))}'
        data = conn.execute(sql).fetchall()
    return [{n: _pg_value(v, t) for (n, t), v in zip(types, row, strict=True)} for row in data]


_PG_ARRAY_ELEMENTS = {
    "integer",
    "bigint",
    "smallint",
    "text",
    "character varying",
    "character",
    "numeric",
    "boolean",
    "double precision",
    "real",
    "uuid",
    "date",
    "timestamp without time zone",
    "timestamp with time zone",
    "bytea",
    "json",
    "jsonb",
}


def _pg_select(name: str, kind: str) -> str:
    """Intervals as ISO 8601 text; arrays of types psycopg does not know (enums,
    domains) as text arrays, which psycopg reads as lists."""
    if kind == "interval":
        return f'"{name}"::text'
    if kind.endswith("[]") and kind[:-2].split("(")[0] not in _PG_ARRAY_ELEMENTS:
        return f'"{name}"::text[]'
    return f'"{name}"'


def _pg_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "interval":
        return interval(value)
    return _plain(value)


# -- MariaDB / MySQL -----------------------------------------------------------------------


def mysql_connect(url: str) -> pymysql.connections.Connection[Any]:
    """An autocommit pymysql connection for ``mysql://user:pw@host:port/db`` in a UTC
    session (so ``TIMESTAMP`` values read and written are UTC)."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


def _mysql_types(cur: Any, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT column_name, column_type FROM information_schema.columns "
        "WHERE table_schema = database() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    types = [(str(n), str(t).lower()) for n, t in cur.fetchall()]
    cur.execute(
        "SELECT check_clause FROM information_schema.check_constraints "
        "WHERE constraint_schema = database() AND table_name = %s",
        (table,),
    )
    checks = {str(c).replace(" ", "") for (c,) in cur.fetchall()}
    return [(n, "json" if f"json_valid(`{n}`)" in checks else t) for n, t in types]


def read_mysql(url: str, table: str, key: Key = "id") -> list[Row]:
    """Every row of ``table`` in the URL's database, ordered by ``key``."""
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            types = _mysql_types(cur, table)
            exprs = [_mysql_select(n, t) for n, t in types]
            cur.execute(f"SELECT {', '.join(exprs)} FROM `{table}` ORDER BY {_order(key, '`')}")
            names = [d[0] for d in cur.description]
            data = cur.fetchall()
    finally:
        conn.close()
    kinds = dict(types)
    return [{n: _mysql_value(v, kinds[n]) for n, v in zip(names, row, strict=True)} for row in data]


def _mysql_select(name: str, kind: str) -> str:
    """A FLOAT is sent as text rounded to 6 digits; as a DOUBLE it is the exact float32."""
    if kind.startswith("float"):
        return f"CAST(`{name}` AS DOUBLE) AS `{name}`"
    return f"`{name}`"


def _mysql_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return json.loads(value)
    if kind == "tinyint(1)":
        return _bool01(value)
    if kind.startswith("timestamp"):
        return value.replace(tzinfo=dt.UTC)  # read in a UTC session
    if isinstance(value, dt.timedelta):  # TIME: carried as an interval (README "Types")
        return (0, 0, value // dt.timedelta(microseconds=1))
    return _plain(value)


# -- SQLite ----------------------------------------------------------------------------------


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative.db`` / ``sqlite:////abs.db`` (or a plain path)."""
    return url.removeprefix("sqlite:///")


def read_sqlite(url: str, table: str, key: Key = "id") -> list[Row]:
    """Every row of ``table`` ordered by ``key``, by each column's declared type."""
    conn = sqlite3.connect(sqlite_path(url))
    try:
        types = [
            (str(r[1]), str(r[2]).upper()) for r in conn.execute(f'PRAGMA table_info("{table}")')
        ]
        data = conn.execute(f'SELECT * FROM "{table}" ORDER BY {_order(key, chr(34))}').fetchall()
    finally:
        conn.close()
    return [{n: _sqlite_value(v, t) for (n, t), v in zip(types, row, strict=True)} for row in data]


def _sqlite_value(value: Any, declared: str) -> Any:
    if value is None:
        return None
    base = declared.split("(")[0].strip()
    convert_one = _SQLITE.get(base)
    return convert_one(value) if convert_one else value


def _sqlite_decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _sqlite_timestamp(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return _plain(parsed)  # type: ignore[no-any-return]


def _sqlite_timestamptz(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:  # README: text without a zone in a TIMESTAMPTZ column is UTC
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _sqlite_text_or(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    return lambda v: parse(v) if isinstance(v, str) else v


_SQLITE: Mapping[str, Callable[[Any], Any]] = {
    "BOOLEAN": _bool01,
    "BOOL": _bool01,
    "DECIMAL": _sqlite_decimal,
    "NUMERIC": _sqlite_decimal,
    "DECIMAL_TEXT": _sqlite_decimal,
    "NUMERIC_TEXT": _sqlite_decimal,
    "DATE": _sqlite_text_or(dt.date.fromisoformat),
    "TIME": _sqlite_text_or(dt.time.fromisoformat),
    "DATETIME": _sqlite_timestamp,
    "TIMESTAMP": _sqlite_timestamp,
    "TIMESTAMPTZ": _sqlite_timestamptz,
    "JSON": _sqlite_text_or(json.loads),
    "JSON_TEXT": _sqlite_text_or(json.loads),
    "INTERVAL": _sqlite_text_or(interval),
    "UUID": lambda v: str(uuid.UUID(str(v))),
    "BLOB": bytes,
    "REAL": float,
    "DOUBLE": float,
    "FLOAT": float,
}


# -- any engine ------------------------------------------------------------------------------


def read_rows(url: str, table: str, key: Key = "id") -> list[Row]:
    """Every row of ``table`` at a ``postgresql://``, ``mysql://``/``mariadb://`` or
    ``sqlite://`` URL, ordered by ``key``, normalised as this module says."""
    scheme = urlsplit(url).scheme
    if scheme.startswith("postgres"):
        return read_postgres(url, table, key)
    if scheme in ("mysql", "mariadb"):
        return read_mysql(url, table, key)
    if scheme == "sqlite":
        return read_sqlite(url, table, key)
    raise AssertionError(f"no reader for {url!r}")


def run_sql(url: str, statements: Sequence[str]) -> None:
    """Run ``statements`` one by one, autocommit (a MariaDB session in UTC)."""
    scheme = urlsplit(url).scheme
    if scheme.startswith("postgres"):
        with psycopg.connect(url, autocommit=True) as pg:
            for sql in statements:
                pg.execute(sql.encode())  # bytes: no parameter parsing, '%' stays
        return
    if scheme == "sqlite":
        lite = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            for sql in statements:
                lite.execute(sql)
        finally:
            lite.close()
        return
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()
