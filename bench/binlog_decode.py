"""Binlog decode benchmark (not a test): opendms's decoder against mysql-replication.

    .venv/bin/python bench/binlog_decode.py [--rows 200000] [--url mysql://root@host:port/db]
    .venv/bin/python bench/binlog_decode.py --smoke     # tiny sizes, seconds (the test suite)

On a private MariaDB (or ``--url``), fills a ``trips`` table (bench/trips.py),
runs one UPDATE of every row and times reading that transaction's row events:

(a) ``pymysqlreplication.BinLogStreamReader`` (only UpdateRowsEvent, reading rows);
(b) opendms's MySqlChangeSource stream (network + decode + Change objects);
(c) opendms's BinlogDecoder alone on events already received (pure decode).

The functions are importable (bench/cdc.py): each returns (rows, seconds).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchError, smoke_option, smoke_sizes
from opendms.changes import BinlogPosition, Op
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder
from opendms.endpoints.mysql.binlogclient import BinlogClient
from opendms.endpoints.mysql.changesource import MySqlChangeSource
from opendms.endpoints.mysql.conn import connect
from opendms.model import TableRef
from trips import mysql_ddl, mysql_fill


def _execute(url: str, *sql: str) -> list[tuple[Any, ...]]:
    conn = connect(EndpointURL.parse(url))
    try:
        rows: list[tuple[Any, ...]] = []
        with conn.cursor() as cur:
            for stmt in sql:
                cur.execute(stmt)
                rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        return rows
    finally:
        conn.close()


def position(url: str) -> BinlogPosition:
    """The server's current binlog end."""
    pos = MySqlChangeSource(EndpointURL.parse(url), "bench-position").current_position()
    assert isinstance(pos, BinlogPosition)
    return pos


def setup_trips(url: str, rows: int) -> tuple[BinlogPosition, BinlogPosition]:
    """Create and fill ``trips``, then UPDATE every row; the binlog range of the UPDATE."""
    _execute(url, "DROP TABLE IF EXISTS trips", mysql_ddl(), mysql_fill(rows))
    start = position(url)
    _execute(url, "UPDATE trips SET fare_amount = fare_amount + 1, status = 'Updated'")
    return start, position(url)


def decode_with_mysql_replication(
    url: str, start: BinlogPosition, end: BinlogPosition
) -> tuple[int, float]:
    """Rows of the UPDATE read through pymysqlreplication (values decoded)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import UpdateRowsEvent

    parts = urlsplit(url)
    settings = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "passwd": parts.password or "",
    }
    began = time.perf_counter()
    stream = BinLogStreamReader(
        connection_settings=settings,
        server_id=4_000_000_001,
        log_file=start.file,
        log_pos=start.offset,
        resume_stream=True,
        blocking=False,
        only_events=[UpdateRowsEvent],
    )
    rows = 0
    try:
        for event in stream:
            for row in event.rows:
                rows += len(row["after_values"]) > 0
            if (stream.log_file, stream.log_pos) >= (end.file, end.offset):
                break
    finally:
        stream.close()
    return rows, time.perf_counter() - began


def decode_with_opendms(
    url: str, start: BinlogPosition, end: BinlogPosition, table: str = "trips"
) -> tuple[int, float]:
    """Rows of the UPDATE through MySqlChangeSource.stream (network, decode, Change objects)."""
    endpoint = EndpointURL.parse(url)
    capture = MySqlChangeSource(endpoint, "bench-binlog-decode")
    capture.prepare([TableRef(endpoint.database, table)])
    stop = threading.Event()
    rows = 0
    began = time.perf_counter()
    try:
        for txn in capture.stream(start, stop):
            if txn is not None:
                rows += sum(1 for c in txn.changes if c.op is Op.UPDATE)
                if txn.end >= end:
                    break
            elif capture.caught_up():
                break
    finally:
        capture.close()
    return rows, time.perf_counter() - began


def fetch_events(url: str, start: BinlogPosition, end: BinlogPosition) -> list[bytes]:
    """The raw events from ``start`` to ``end`` (for decoder-only timing)."""
    client = BinlogClient(EndpointURL.parse(url), 4_000_000_002)
    client.connect()
    client.dump(start.file, start.offset)
    events: list[bytes] = []
    try:
        while True:
            batch = client.read_events(2.0)
            if not batch:
                return events
            events += batch
            last = batch[-1]
            log_pos = int.from_bytes(last[13:17], "little")
            if log_pos >= end.offset and start.file == end.file:
                return events
    finally:
        client.close()


def decode_events_only(
    events: list[bytes], start: BinlogPosition, schema: str, table: str = "trips"
) -> tuple[int, float]:
    """Pure decode time of already received events (no network)."""
    decoder = BinlogDecoder(file=start.file, offset=start.offset, captured={(schema, table)})
    rows = 0
    began = time.perf_counter()
    for event in events:
        txn = decoder.feed(event)
        if txn is not None:
            rows += len(txn.changes)
    return rows, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--url", help="an existing MySQL/MariaDB database (default: private)")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=2000)
    if args.url:
        run(args.url, args.rows)
        return
    from tests.support.servers import MariaDBServer

    with MariaDBServer() as server:
        run(server.create_database("bench"), args.rows)


def run(url: str, rows: int) -> None:
    print(f"filling trips with {rows} rows and updating them all ...", flush=True)
    start, end = setup_trips(url, rows)
    print(f"UPDATE binlog range {start} .. {end}")
    theirs, their_s = decode_with_mysql_replication(url, start, end)
    ours, our_s = decode_with_opendms(url, start, end)
    schema = EndpointURL.parse(url).database
    events = fetch_events(url, start, end)
    pure, pure_s = decode_events_only(events, start, schema)
    if not theirs == ours == pure == rows:
        raise BenchError(f"decoded {theirs}/{ours}/{pure} rows, expected {rows} each")
    print(f"\n{'reader':<42}{'rows':>9}{'seconds':>9}{'rows/s':>10}")
    for name, n, secs in (
        ("mysql-replication BinLogStreamReader", theirs, their_s),
        ("opendms MySqlChangeSource.stream", ours, our_s),
        ("opendms BinlogDecoder (events in memory)", pure, pure_s),
    ):
        print(f"{name:<42}{n:>9}{secs:>9.2f}{n / secs:>10.0f}")
    print(f"\nstream ratio: {their_s / our_s:.1f}x   decoder-only ratio: {their_s / pure_s:.1f}x")


if __name__ == "__main__":
    main()
