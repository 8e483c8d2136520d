"""Read a migrated table back from any endpoint as canonical Python values.

Values are normalised by the canonical kind of the *source* column, so one
expected row list serves every target: decimals as Decimal, timestamps as naive
UTC datetimes, JSON parsed, intervals as (months, days, microseconds), arrays
as lists, booleans as bool.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from opendms.model import Kind

Row = dict[str, Any]
_DURATION = re.compile(
    r"^(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?$"
)


def parse_duration(text: str) -> tuple[int, int, int]:
    m = _DURATION.match(text)
    assert m, f"not an ISO duration: {text!r}"
    neg, y, mo, w, d, h, mi, s = m.groups()
    months = int(y or 0) * 12 + int(mo or 0)
    days = int(w or 0) * 7 + int(d or 0)
    micros = round((int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)) * 1_000_000)
    sign = -1 if neg else 1
    return sign * months, sign * days, sign * micros


def norm(value: Any, kind: Kind, element: Kind | None = None) -> Any:
    """Canonical Python form of one value read from any target."""
    if value is None:
        return None
    fn = _NORMALISERS.get(kind)
    if kind is Kind.ARRAY:
        items = json.loads(value) if isinstance(value, str) else list(value)
        assert element is not None
        return [norm(v, element) for v in items]
    return fn(value) if fn else value


def _decimal(v: Any) -> Any:
    if isinstance(v, float):
        return Decimal(repr(v))
    return Decimal(str(v)) if not isinstance(v, Decimal) else v


def _timestamp(v: Any) -> dt.datetime:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v  # type: ignore[no-any-return]


def _date(v: Any) -> dt.date:
    return dt.date.fromisoformat(v) if isinstance(v, str) else v


def _time(v: Any) -> dt.time:
    if isinstance(v, dt.timedelta):
        return (dt.datetime.min + v).time()
    if isinstance(v, str):
        return dt.time.fromisoformat(v)
    return v  # type: ignore[no-any-return]


def _interval(v: Any) -> tuple[int, int, int]:
    if isinstance(v, dt.timedelta):  # a MySQL TIME
        return (0, 0, v // dt.timedelta(microseconds=1))
    if isinstance(v, str):
        return parse_duration(v)
    if isinstance(v, tuple):
        return cast(tuple[int, int, int], v)
    if hasattr(v, "months"):
        return (v.months, v.days, v.nanoseconds // 1000)
    raise AssertionError(f"interval of unexpected type {type(v)}")


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str | bytes) else v


def _bool(v: Any) -> bool:
    return bool(int(v)) if isinstance(v, str) else bool(v)


def _float(v: Any) -> float:
    return float(v)


def _float32(v: Any) -> float:
    """Round to float32 so values read back as text or double compare exactly."""
    return float(struct.unpack("f", struct.pack("f", float(v)))[0])


_NORMALISERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.DECIMAL: _decimal,
    Kind.TIMESTAMP: _timestamp,
    Kind.TIMESTAMPTZ: _timestamp,
    Kind.DATE: _date,
    Kind.TIME: _time,
    Kind.INTERVAL: _interval,
    Kind.JSON: _json,
    Kind.BOOL: _bool,
    Kind.UUID: lambda v: str(uuid.UUID(str(v))),
    Kind.BINARY: lambda v: bytes.fromhex(v) if isinstance(v, str) else bytes(v),
    Kind.FLOAT32: _float32,
    Kind.FLOAT64: _float,
    Kind.INT16: int,
    Kind.INT32: int,
    Kind.INT64: int,
}


def read_postgres(url: str, schema: str, table: str, key: str) -> list[Row]:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (f'"{schema}"."{table}"',),
            ).fetchall()
        ]
        exprs = [f'"{c}"' for c in cols]
        types = conn.execute(
            f'SELECT {", ".join(f"pg_typeof({e})::text" for e in exprs)} FROM "{schema}"."{table}" '
            "LIMIT 1"
        ).fetchone()
        if types:
            exprs = [
                f"{e}::text" if t in ("interval", "numeric", "json", "jsonb") else e
                for e, t in zip(exprs, types, strict=True)
            ]
        rows = conn.execute(
            f'SELECT {", ".join(exprs)} FROM "{schema}"."{table}" ORDER BY "{key}"'
        ).fetchall()
    return [dict(zip(cols, r, strict=True)) for r in rows]


def read_mysql(url: str, database: str, table: str, key: str) -> list[Row]:
    import pymysql

    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
    )
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (database, table),
            )
            exprs = [
                f"CAST(`{r['COLUMN_NAME']}` AS DOUBLE) AS `{r['COLUMN_NAME']}`"
                if r["DATA_TYPE"] == "float"
                else f"`{r['COLUMN_NAME']}`"
                for r in cur.fetchall()
            ]
            cur.execute(f"SELECT {', '.join(exprs)} FROM `{table}` ORDER BY `{key}`")
            return list(cur.fetchall())
    finally:
        conn.close()


def read_sqlite(path: str, table: str, key: str) -> list[Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY "{key}"').fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def read_lake(
    filesystem: pafs.FileSystem, folder: str, key: str, fmt: str = "parquet"
) -> list[Row]:
    if fmt == "csv":
        raise AssertionError("use read_lake_csv for CSV files")
    table = ds.dataset(folder, filesystem=filesystem, format=cast(Any, fmt)).to_table()
    rows: list[Row] = table.sort_by(key).to_pylist()
    return rows


def lake_table(filesystem: pafs.FileSystem, folder: str) -> pa.Table:
    return ds.dataset(folder, filesystem=filesystem, format="parquet").to_table()


def normalise_rows(rows: list[Row], kinds: dict[str, tuple[Kind, Kind | None]]) -> list[Row]:
    return [
        {name: norm(row[name], kind, element) for name, (kind, element) in kinds.items()}
        for row in rows
    ]


def mysql_connect(url: str, database: str | None = None) -> Any:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database or parts.path.lstrip("/") or None,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
    )


def read_lake_duckdb(pattern: str, key: str) -> list[Row]:
    """The same files read by DuckDB (UTC session), as Python rows."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rel = con.execute(f"SELECT * FROM read_parquet('{pattern}') ORDER BY \"{key}\"")
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def s3_filesystem(url: str) -> tuple[pafs.S3FileSystem, str]:
    """A pyarrow S3 filesystem for an ``s3://bucket/prefix?endpoint_url=...`` URL, and the root."""
    from urllib.parse import parse_qs

    parts = urlsplit(url)
    endpoint = parse_qs(parts.query)["endpoint_url"][0]
    scheme, host = endpoint.split("://")
    assert scheme in ("http", "https"), endpoint
    fs = pafs.S3FileSystem(
        endpoint_override=host, scheme=cast(Literal["http", "https"], scheme), region="us-east-1"
    )
    return fs, parts.netloc + parts.path
