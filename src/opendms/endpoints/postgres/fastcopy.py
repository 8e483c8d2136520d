"""PostgreSQL -> PostgreSQL raw binary COPY: the source's ``COPY ... TO STDOUT (FORMAT
binary)`` streamed into the target's ``COPY ... FROM STDIN (FORMAT binary)``.

Two drivers can carry the bytes (``OPENDMS_PG_COPY_DRIVER`` picks one, for
``bench/full_load.py --jobs pgcopy``, which times both in one run):

- ``asyncpg`` (the default): parses the COPY OUT stream in C and hands it on in ~256 KB
  chunks; both connections live on one event loop in the calling thread.
- ``psycopg`` (psycopg 3): both connections in the calling thread; libpq hands the
  source's rows on one COPY message each, joined here into blocks of up to 128 KB.

On the 1M-row ``trips`` table the whole task took 0.91-0.95x as long with asyncpg as with
psycopg (medians of four interleaved bench runs, 2026-12-04; about 1.0 s of client CPU
against 1.5 s), hence the default.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opendms.endpoints.engine import StopFlag
from opendms.errors import ConfigError, MissingExtraError, StopRequested

log = logging.getLogger("opendms.fullload")
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_DONE = None


@dataclass(frozen=True)
class CopySpec:
    """What to COPY out of the source: a table (+columns) or a query, under a snapshot."""

    dsn: str
    snapshot: str | None
    schema: str
    table: str
    columns: tuple[str, ...]
    query: str | None = None  # set when filters, segments or partitions apply


def asyncpg_module() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError("asyncpg", "postgresql") from exc
    return asyncpg


def rows_in_sample(chunk: bytes) -> tuple[int, int]:
    """(complete rows, their bytes) in the first chunk of a binary COPY stream.

    Used once per copy to turn bytes into an estimated row count for progress.
    """
    if not chunk.startswith(_SIGNATURE):
        return 0, 0
    pos = len(_SIGNATURE) + 4
    (ext,) = struct.unpack_from("!i", chunk, pos)
    pos += 4 + ext
    start, rows = pos, 0
    while pos + 2 <= len(chunk):
        (fields,) = struct.unpack_from("!h", chunk, pos)
        if fields < 0:
            break
        end = _tuple_end(chunk, pos + 2, fields)
        if end is None:
            break
        pos, rows = end, rows + 1
    return rows, pos - start


def _tuple_end(chunk: bytes, pos: int, fields: int) -> int | None:
    for _ in range(fields):
        if pos + 4 > len(chunk):
            return None
        (size,) = struct.unpack_from("!i", chunk, pos)
        pos += 4 + max(size, 0)
    return pos if pos <= len(chunk) else None


async def _source(spec: CopySpec, out: asyncio.Queue[bytes | None]) -> None:
    """COPY the source out into ``out``; ends with ``_DONE`` only when complete.

    On failure nothing more is queued: the consumer sees the task's exception
    (see :func:`_chunks`) and aborts its COPY, so no partial table commits.
    """
    asyncpg = asyncpg_module()
    conn = await asyncpg.connect(spec.dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if spec.snapshot:
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{spec.snapshot}'")
            if spec.query is not None:
                await conn.copy_from_query(spec.query, output=out.put, format="binary")
            else:
                await conn.copy_from_table(
                    spec.table,
                    schema_name=spec.schema,
                    columns=list(spec.columns),
                    output=out.put,
                    format="binary",
                )
    finally:
        await conn.close()
    await out.put(_DONE)  # waits for room: a full queue must not swallow the end mark


async def _next(queue: asyncio.Queue[bytes | None], reader: asyncio.Task[None]) -> bytes | None:
    """The next chunk; re-raises the reader's error if it died before finishing.

    ``asyncio.wait`` (not ``wait_for``) so a chunk taken from the queue is never lost
    to a timeout.
    """
    get = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
    if get in done:
        return get.result()
    if reader.exception() is not None:
        get.cancel()
        reader.result()  # raises the reader's exception
    return await get  # the reader finished: its end mark is in the queue


async def _chunks(
    queue: asyncio.Queue[bytes | None],
    reader: asyncio.Task[None],
    seen: Callable[[bytes], None],
    stop: StopFlag,
) -> AsyncIterator[bytes]:
    while (chunk := await _next(queue, reader)) is not _DONE:
        if stop.is_set():
            raise StopRequested
        seen(chunk)
        yield chunk


@dataclass(frozen=True)
class CopyTarget:
    """Where the rows go. ``freeze``: the table is new and this is its only writer, so
    it is truncated and loaded in one transaction with COPY FREEZE (rows land frozen,
    with hint bits set: the primary key build that follows reads them faster)."""

    dsn: str
    schema: str
    table: str
    columns: tuple[str, ...]
    freeze: bool = False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _write(conn: Any, target: CopyTarget, chunks: AsyncIterator[bytes]) -> str:
    args = {"schema_name": target.schema, "columns": list(target.columns), "format": "binary"}
    if not target.freeze:
        return str(await conn.copy_to_table(target.table, source=chunks, **args))
    name = f"{_quote(target.schema)}.{_quote(target.table)}"
    async with conn.transaction():
        await conn.execute(f"TRUNCATE {name}")
        return str(await conn.copy_to_table(target.table, source=chunks, freeze=True, **args))


async def _copy(
    spec: CopySpec, target: CopyTarget, seen: Callable[[bytes], None], stop: StopFlag
) -> int:
    asyncpg = asyncpg_module()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
    reader = asyncio.create_task(_source(spec, queue))
    conn = await asyncpg.connect(target.dsn)
    try:
        status = await _write(conn, target, _chunks(queue, reader, seen, stop))
    except BaseException:
        reader.cancel()
        raise
    finally:
        await conn.close()
    await reader
    return int(status.split()[-1])


class RowEstimator:
    """Turns chunk sizes into row counts for progress, from the first chunk's rows."""

    def __init__(self) -> None:
        self.row_bytes = 0.0
        self.bytes = 0
        self.rows = 0

    def add(self, chunk: bytes) -> int:
        """Rows (estimated) newly covered by ``chunk``."""
        if not self.row_bytes:
            rows, size = rows_in_sample(chunk)
            self.row_bytes = size / rows if rows else float(len(chunk) or 1)
        self.bytes += len(chunk)
        total = int(self.bytes / self.row_bytes)
        new, self.rows = total - self.rows, total
        return new


DRIVERS = ("asyncpg", "psycopg")  # the first is the default
DRIVER_ENV = "OPENDMS_PG_COPY_DRIVER"


def driver() -> str:
    """The driver that carries raw copies: ``$OPENDMS_PG_COPY_DRIVER``, else the default."""
    name = os.environ.get(DRIVER_ENV, "").strip().lower() or DRIVERS[0]
    if name not in DRIVERS:
        known = ", ".join(DRIVERS)
        raise ConfigError(f"unknown driver {name!r}; one of: {known}", where=DRIVER_ENV)
    return name


def copy_table(
    spec: CopySpec, target: CopyTarget, seen: Callable[[bytes], None], stop: StopFlag
) -> int:
    """Run one raw copy to completion; returns the rows the target reports."""
    name = driver()
    log.debug("raw COPY of %s.%s through %s", spec.schema, spec.table, name)
    if name == "psycopg":
        return _copy_psycopg(spec, target, seen, stop)
    return asyncio.run(_copy(spec, target, seen, stop))


# psycopg 3 ---------------------------------------------------------------------------

_BLOCK = 128 * 1024  # psycopg's largest single write; larger ones are split (and slower)


def _name(schema: str, table: str, columns: tuple[str, ...]) -> str:
    return f"{_quote(schema)}.{_quote(table)} ({', '.join(map(_quote, columns))})"


def _copy_out_sql(spec: CopySpec) -> str:
    if spec.query is not None:
        return f"COPY ({spec.query}) TO STDOUT (FORMAT binary)"
    return f"COPY {_name(spec.schema, spec.table, spec.columns)} TO STDOUT (FORMAT binary)"


def _copy_in_sql(target: CopyTarget) -> str:
    freeze = ", FREEZE" if target.freeze else ""
    name = _name(target.schema, target.table, target.columns)
    return f"COPY {name} FROM STDIN (FORMAT binary{freeze})"


def _connect(dsn: str, autocommit: bool) -> Any:
    """A psycopg connection with the dead-network timeouts of the other libpq
    connections, at both ends (a key the DSN sets wins)."""
    from psycopg.conninfo import conninfo_to_dict

    from opendms.endpoints.postgres.conn import LIBPQ_TIMEOUTS, require_psycopg, set_server_timeouts

    pg = require_psycopg()
    given = conninfo_to_dict(dsn)
    extra = {k: v for k, v in {**LIBPQ_TIMEOUTS, "connect_timeout": "10"}.items() if k not in given}
    conn = pg.connect(dsn, autocommit=autocommit, **extra)
    try:
        set_server_timeouts(conn, given)
    except BaseException:
        conn.close()
        raise
    return conn


def _blocks(rows: Any, seen: Callable[[bytes], None], stop: StopFlag) -> Iterator[bytes]:
    """The COPY OUT messages (one row each; the first also holds the header) joined into
    blocks of about ``_BLOCK`` bytes; checks ``stop`` and tells ``seen`` per block."""
    parts: list[Any] = []
    size = 0
    for row in rows:
        parts.append(row)
        size += len(row)
        if size >= _BLOCK:
            if stop.is_set():
                raise StopRequested
            block = b"".join(parts)
            parts, size = [], 0
            seen(block)
            yield block
    if stop.is_set():
        raise StopRequested
    if parts:
        block = b"".join(parts)
        seen(block)
        yield block


def _copy_psycopg(
    spec: CopySpec, target: CopyTarget, seen: Callable[[bytes], None], stop: StopFlag
) -> int:
    """The copy through psycopg: the target commits only when the source's COPY ended
    whole; any error (or a stop) aborts the target's COPY and cancels the source's."""
    with _connect(spec.dsn, autocommit=True) as src, _connect(target.dsn, False) as dst:
        src.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if spec.snapshot:
            src.execute(f"SET TRANSACTION SNAPSHOT '{spec.snapshot}'")
        into = dst.cursor()
        if target.freeze:
            into.execute(f"TRUNCATE {_quote(target.schema)}.{_quote(target.table)}")
        with (
            src.cursor().copy(_copy_out_sql(spec)) as rows,
            into.copy(_copy_in_sql(target)) as sink,
        ):
            for block in _blocks(rows, seen, stop):
                sink.write(block)
        count = into.rowcount
    return int(count)
