"""MySQL/MariaDB target: CREATE TABLE from canonical types, LOAD DATA LOCAL INFILE.

A URL with a database puts every table there; without one, each table goes
to the database named after its source schema. LOAD DATA turns bad values into
warnings, so any warning fails the batch instead of altering data silently.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection, target_index_name, too_long
from opendms.endpoints.mysql.conn import connect, translate
from opendms.endpoints.mysql.source import quote
from opendms.endpoints.mysql.tsv import batch_tsv
from opendms.endpoints.mysql.types import KEY_VARCHAR, MAX_VARCHAR, to_mysql
from opendms.errors import DataError, EndpointError
from opendms.model import Index, Kind, Table

_MIN_DT, _MAX_DT = -30610224000000000, 253402300799999999  # 1000-01-01 .. 9999-12-31 (us)


class MySQLTarget:
    """Creates and loads tables on one MySQL/MariaDB server."""

    def __init__(self, url: EndpointURL) -> None:
        self.url = url
        self.conn = connect(url, local_infile=True)
        self.lock = threading.Lock()

    def database(self, table: Table) -> str:
        return self.url.database or table.schema

    def qualified(self, table: Table) -> str:
        return f"{quote(self.database(table))}.{quote(table.name)}"

    def create_sql(self, table: Table) -> str:
        key = set(table.primary_key)
        cols = [
            f"{quote(c.name)} {to_mysql(c.type, c.name in key)}{'' if c.nullable else ' NOT NULL'}"
            for c in table.columns
        ]
        if table.primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(map(quote, table.primary_key)) + ")")
        body = ",\n  ".join(cols)
        return (
            f"CREATE TABLE {self.qualified(table)} (\n  {body}\n) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        )

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        try:
            with self.lock, self.conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        except Exception as exc:
            raise translate(exc, self.url) from exc

    def run_ddl(self, table: Table, statements: list[str]) -> None:
        """Replace ``table`` with one created by converted DDL."""
        self._execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database(table))}")
        self._execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
        self._execute(f"USE {quote(self.database(table))}")
        for sql in statements:
            self._execute(sql)

    def prepare(self, table: Table, mode: PrepMode) -> None:
        self._execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database(table))}")
        exists = self._exists(table)
        if mode is PrepMode.DROP_AND_CREATE or not exists:
            self._execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
            self._execute(self.create_sql(table))
        elif mode is PrepMode.TRUNCATE_BEFORE_LOAD:
            self._execute(f"TRUNCATE TABLE {self.qualified(table)}")

    def _exists(self, table: Table) -> bool:
        return bool(
            self._execute(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                (self.database(table), table.name),
            )
        )

    def drop_table(self, table: Table) -> None:
        self._execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")

    def rename_table(self, old: Table, new: Table) -> None:
        if self._exists(old) and not self._exists(new):
            self._execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database(new))}")
            self._execute(f"RENAME TABLE {self.qualified(old)} TO {self.qualified(new)}")

    def writer(self, table: Table, segment: int | None) -> MySQLWriter:
        return MySQLWriter(self, table)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        out: list[Rejection] = []
        key = set(table.primary_key)
        for col in table.columns:
            array = batch.column(col.name)
            for row, reason in _unrepresentable(array, col.type.kind, col.name in key):
                out.append(Rejection(row, col.name, reason))
        return out + too_long(table, batch, MAX_VARCHAR)

    def finish(self, table: Table) -> None:
        for idx in table.indexes:
            self._create_index(table, idx)

    def _create_index(self, table: Table, idx: Index) -> None:
        """Creates ``idx`` unless the table already has an index of that name
        (a re-run with TRUNCATE_BEFORE_LOAD or DO_NOTHING)."""
        name = target_index_name(table.name, idx.name)[:64]
        if self._execute(_HAS_INDEX, (self.database(table), table.name, name)):
            return
        unique = "UNIQUE " if idx.unique else ""
        cols = ", ".join(_index_part(table, c) for c in idx.columns)
        self._execute(f"CREATE {unique}INDEX {quote(name)} ON {self.qualified(table)} ({cols})")

    def close(self) -> None:
        self.conn.close()


_HAS_INDEX = (
    "SELECT 1 FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s AND INDEX_NAME=%s LIMIT 1"
)


def _index_part(table: Table, name: str) -> str:
    ctype = table.column(name).type
    if ctype.kind in (Kind.STRING, Kind.BINARY, Kind.JSON) and (ctype.length or 10**9) > 768:
        return f"{quote(name)}(255)"
    return quote(name)


def _mask_rows(mask: pa.Array[Any]) -> list[int]:
    loose: Any = mask  # the stubs' fill_null rejects a bool fill value
    filled = pc.fill_null(loose, False)
    if not pc.any(filled).as_py():
        return []
    return [i for i, v in enumerate(filled.to_pylist()) if v]


def _unrepresentable(array: pa.Array[Any], kind: Kind, in_key: bool) -> list[tuple[int, str]]:
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        bad = pc.invert(pc.is_finite(array))
        return [(r, "MySQL has no NaN or Infinity") for r in _mask_rows(bad)]
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        raw = pc.cast(pc.cast(array, pa.timestamp("us")), pa.int64())
        bad = pc.or_(pc.less(raw, pa.scalar(_MIN_DT)), pc.greater(raw, pa.scalar(_MAX_DT)))
        return [(r, "outside DATETIME range 1000-9999") for r in _mask_rows(bad)]
    if kind is Kind.DECIMAL and pa.types.is_decimal256(array.type):
        array = pc.cast(array, pa.string())
    if kind is Kind.DECIMAL and pa.types.is_string(array.type):
        rows = [i for i, v in enumerate(array.to_pylist()) if v is not None and not _fits_65_30(v)]
        return [(r, "needs more than DECIMAL(65,30) holds") for r in rows]
    if kind is Kind.STRING and in_key:
        text: Any = array  # the stubs type utf8_length per concrete string array class
        bad = pc.greater(pc.utf8_length(text), pa.scalar(KEY_VARCHAR))
        return [(r, f"key longer than {KEY_VARCHAR} characters") for r in _mask_rows(bad)]
    return []


def _fits_65_30(text: str) -> bool:
    """Whether an unconstrained numeric fits MySQL's widest DECIMAL without rounding."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    if not value.is_finite():
        return False
    _sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    frac = max(-exponent, 0)
    whole = max(len(digits) + exponent, 0)
    return frac <= 30 and whole <= 35


class MySQLWriter:
    """LOAD DATA LOCAL INFILE per batch from a temporary TSV file."""

    def __init__(self, target: MySQLTarget, table: Table) -> None:
        self.target = target
        self.table = table
        self.rows = 0
        self.conn = connect(target.url, local_infile=True)
        fd, self.path = tempfile.mkstemp(prefix="opendms-", suffix=".tsv")
        os.close(fd)

    def _load_sql(self) -> str:
        targets: list[str] = []
        sets: list[str] = []
        for col in self.table.columns:
            if col.type.kind is Kind.BINARY:
                var = f"@v{len(sets)}"
                targets.append(var)
                sets.append(f"{quote(col.name)} = UNHEX({var})")
            else:
                targets.append(quote(col.name))
        path = self.path.replace("\\", "\\\\").replace("'", "\\'")
        sql = (
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {self.target.qualified(self.table)} "
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
            f"LINES TERMINATED BY '\\n' ({', '.join(targets)})"
        )
        return sql + (" SET " + ", ".join(sets) if sets else "")

    def write(self, batch: pa.RecordBatch) -> None:
        with open(self.path, "wb") as out:
            out.write(batch_tsv(batch, self.table.columns))
        try:
            with self.conn.cursor() as cur:
                cur.execute("BEGIN")
                loaded = cur.execute(self._load_sql())
                warnings = self._warnings(cur)
                if warnings or loaded != batch.num_rows:
                    cur.execute("ROLLBACK")
                    raise DataError(
                        self.table.qualified,
                        f"MySQL would alter values (loaded {loaded} of {batch.num_rows}): "
                        + "; ".join(warnings[:3]),
                    )
                cur.execute("COMMIT")
        except (DataError, EndpointError):
            raise
        except Exception as exc:
            raise translate(exc, self.target.url) from exc
        self.rows += batch.num_rows

    def _warnings(self, cur: Any) -> list[str]:
        cur.execute("SHOW WARNINGS LIMIT 5")
        return [f"{r[2]}" for r in cur.fetchall()]

    def close(self) -> int:
        self._cleanup()
        return self.rows

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.conn.close()
