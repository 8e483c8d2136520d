"""MySQL/MariaDB target: CREATE TABLE from canonical types, LOAD DATA LOCAL INFILE.

A URL with a database puts every table there; without one, each table goes
to the database named after its source schema; a missing database is created. LOAD
DATA turns bad values into warnings, so any warning fails the batch instead of altering
data silently; :meth:`MySQLTarget.reject` finds the values that would warn first, row
by row, so they are data errors of their rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection, target_index_name, too_long
from opendms.endpoints.mysql.conn import connect, translate
from opendms.endpoints.mysql.source import quote
from opendms.endpoints.mysql.tsv import batch_tsv
from opendms.endpoints.mysql.types import MAX_VARCHAR, decimal_digits, key_lengths, to_mysql
from opendms.endpoints.mysql.values import decimal_misfits, interval_misfits, is_bit
from opendms.endpoints.pyvalues import negative_zero_rows as signed_zeros
from opendms.errors import DataError, EndpointError, OpenDMSError
from opendms.model import Column, Index, Kind, Table

log = logging.getLogger("opendms.mysql")
_MIN_DT, _MAX_DT = -30610224000000000, 253402300799999999  # 1000-01-01 .. 9999-12-31 (us)


class MySQLTarget:
    """Creates and loads tables on one MySQL/MariaDB server."""

    # Several writers may load one table at once (ParallelLoadThreads): each has its own
    # connection and TSV file and commits each LOAD DATA on its own.

    def __init__(self, url: EndpointURL) -> None:
        self.url = url
        self.conn = connect(url, database="", local_infile=True)  # the database may be missing
        self.lock = threading.Lock()
        self._collation: str | None = None

    def database(self, table: Table) -> str:
        return self.url.database or table.schema

    def qualified(self, table: Table) -> str:
        return f"{quote(self.database(table))}.{quote(table.name)}"

    def create_sql(self, table: Table) -> str:
        lengths = key_lengths(table)
        cols = [self._column_sql(table, c, lengths.get(c.name)) for c in table.columns]
        if table.primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(map(quote, table.primary_key)) + ")")
        body = ",\n  ".join(cols)
        return (
            f"CREATE TABLE {self.qualified(table)} (\n  {body}\n) "
            f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={self.collation()}"
        )

    def _column_sql(self, table: Table, col: Column, key_length: int | None) -> str:
        in_key = col.name in table.primary_key
        # Explicit NULL: a TIMESTAMP column is NOT NULL by default on older servers.
        null = " NULL" if col.nullable and not in_key else " NOT NULL"
        return f"{quote(col.name)} {to_mysql(col.type, in_key, key_length)}{null}"

    def collation(self) -> str:
        """A binary utf8mb4 collation that compares trailing spaces too (NO PAD) when the
        server has one, so keys differing only in trailing spaces stay distinct."""
        if self._collation is None:
            found = self._execute(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS "
                "WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')"
            )
            self._collation = str(found[0][0]) if found else "utf8mb4_bin"
        return self._collation

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """One statement on the admin connection, which reconnects when the server
        restarted since the last one (a lost connection during it still raises)."""
        try:
            with self.lock:
                self._reconnect_if_lost()
                with self.conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall()
        except OpenDMSError:
            raise
        except Exception as exc:
            raise translate(exc, self.url) from exc

    def _reconnect_if_lost(self) -> None:
        try:
            self.conn.ping(reconnect=False)
        except Exception:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = connect(self.url, database="", local_infile=True)

    def run_ddl(self, table: Table, statements: list[str]) -> None:
        """Replace ``table`` with one created by converted DDL."""
        self._execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database(table))}")
        self._execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
        self._execute(f"USE {quote(self.database(table))}")
        for sql in statements:
            self._execute(sql)

    def prepare(self, table: Table, mode: PrepMode) -> None:
        self._execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database(table))}")
        self._explicit_timestamps()
        exists = self._exists(table)
        if mode is PrepMode.DROP_AND_CREATE or not exists:
            self._execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
            self._execute(self.create_sql(table))
        elif mode is PrepMode.TRUNCATE_BEFORE_LOAD:
            self._execute(f"TRUNCATE TABLE {self.qualified(table)}")

    def _explicit_timestamps(self) -> None:
        """TIMESTAMP columns get no automatic DEFAULT / ON UPDATE (servers before MariaDB
        10.10 and MySQL 8.0 add them unless told), so CDC updates never rewrite them."""
        with contextlib.suppress(EndpointError):
            self._execute("SET SESSION explicit_defaults_for_timestamp = ON")

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

    def writer(self, table: Table, segment: int | str | None) -> MySQLWriter:
        return MySQLWriter(self, table)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        out: list[Rejection] = []
        lengths = key_lengths(table)
        for col in table.columns:
            if col.name not in batch.schema.names:
                continue  # a CDC run carrying some of the columns
            array = batch.column(col.name)
            for row, reason in _unrepresentable(array, col, lengths.get(col.name)):
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
        cols, whole = _index_parts(table, idx)
        if idx.unique and not whole:
            log.warning(
                "table %s: index %s created without UNIQUE: InnoDB can index only a prefix of "
                "its long text, and equal prefixes of distinct values would collide",
                table.qualified,
                idx.name,
            )
        unique = "UNIQUE " if idx.unique and whole else ""
        self._execute(f"CREATE {unique}INDEX {quote(name)} ON {self.qualified(table)} ({cols})")

    def close(self) -> None:
        """Close the connection; one the server already dropped has nothing to say."""
        with contextlib.suppress(Exception):
            self.conn.close()


_HAS_INDEX = (
    "SELECT 1 FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s AND INDEX_NAME=%s LIMIT 1"
)


def _index_parts(table: Table, idx: Index) -> tuple[str, bool]:
    """The column list of a secondary index within InnoDB's 3072 key bytes (text and
    binary columns shortened to prefixes as needed), and whether it has no prefix."""
    created = _as_created(table)
    prefixes = key_lengths(replace(created, primary_key=idx.columns))
    parts = [quote(c) + (f"({prefixes[c]})" if c in prefixes else "") for c in idx.columns]
    return ", ".join(parts), not prefixes


def _as_created(table: Table) -> Table:
    """``table`` with its key columns as long as :meth:`MySQLTarget.create_sql` made them."""
    lengths = key_lengths(table)
    columns = tuple(
        replace(c, type=replace(c.type, length=lengths[c.name])) if c.name in lengths else c
        for c in table.columns
    )
    return replace(table, columns=columns)


def _mask_rows(mask: pa.Array[Any]) -> list[int]:
    loose: Any = mask  # the stubs' fill_null rejects a bool fill value
    filled = pc.fill_null(loose, False)
    if not pc.any(filled).as_py():
        return []
    return [i for i, v in enumerate(filled.to_pylist()) if v]


def _unrepresentable(
    array: pa.Array[Any], col: Column, key_length: int | None
) -> list[tuple[int, str]]:
    kind = col.type.kind
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        bad = pc.invert(pc.is_finite(array))
        out = [(r, "MySQL has no NaN or Infinity") for r in _mask_rows(bad)]
        return out + [
            (r, "MySQL stores -0.0 as 0 (the sign would be lost)") for r in signed_zeros(array)
        ]
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        raw = pc.cast(pc.cast(array, pa.timestamp("us")), pa.int64())
        bad = pc.or_(pc.less(raw, pa.scalar(_MIN_DT)), pc.greater(raw, pa.scalar(_MAX_DT)))
        return [(r, "outside DATETIME range 1000-9999") for r in _mask_rows(bad)]
    if kind is Kind.DECIMAL:
        precision, scale = decimal_digits(col.type)
        reason = f"needs more digits than DECIMAL({precision},{scale}) holds"
        return [(r, reason) for r in decimal_misfits(array, precision, scale)]
    if kind is Kind.INTERVAL:
        return interval_misfits(array, col.type)
    if key_length is not None and kind in (Kind.STRING, Kind.BINARY):
        values: Any = array  # the stubs type these kernels per concrete array class
        size = pc.utf8_length(values) if kind is Kind.STRING else pc.binary_length(values)
        bad = pc.greater(size, pa.scalar(key_length))
        unit = "characters" if kind is Kind.STRING else "bytes"
        reason = f"key value longer than {key_length} {unit} (InnoDB keys hold 3072 bytes)"
        return [(r, reason) for r in _mask_rows(bad)]
    return []


_LOAD_CONVERSION = {Kind.BINARY: "UNHEX({})"}


class MySQLWriter:
    """LOAD DATA LOCAL INFILE per batch from a temporary TSV file."""

    def __init__(self, target: MySQLTarget, table: Table) -> None:
        self.target = target
        self.table = table
        self.rows = 0
        self.conn = connect(target.url, database="", local_infile=True)
        fd, self.path = tempfile.mkstemp(prefix="opendms-", suffix=".tsv")
        os.close(fd)

    def _load_sql(self) -> str:
        targets: list[str] = []
        sets: list[str] = []
        for col in self.table.columns:
            convert = _LOAD_CONVERSION.get(col.type.kind)
            if is_bit(col.type):
                convert = "CAST({} AS UNSIGNED)"  # BIT(n) takes numbers, not their text
            if convert is not None:
                var = f"@v{len(sets)}"
                targets.append(var)
                sets.append(f"{quote(col.name)} = {convert.format(var)}")
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
